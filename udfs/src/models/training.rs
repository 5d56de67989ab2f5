//! Pieces every candle training loop here shares: seeded initial weights (candle's CPU
//! generator cannot be seeded), the optimiser, and a seeded shuffle.

use candle_core::{Device, Result, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};

use super::als::SplitMix;

/// Sets every variable of `varmap` — except layer norms, which keep their ones and zeros — to
/// uniform ±1/√fan_in drawn from `random` in name order, so a seed fixes the initial model.
pub fn seeded_init(varmap: &VarMap, random: &mut SplitMix) -> Result<()> {
    let data = varmap.data().lock().expect("variables");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names.into_iter().filter(|n| !n.contains("norm")) {
        let var = &data[name];
        let dims = var.as_tensor().dims().to_vec();
        let bound = 1.0 / (*dims.last().unwrap_or(&1) as f32).sqrt();
        let values: Vec<f32> = (0..var.as_tensor().elem_count())
            .map(|_| (random.next_f32() * 2.0 - 1.0) * bound)
            .collect();
        var.set(&Tensor::from_vec(values, dims, &Device::Cpu)?)?;
    }
    Ok(())
}

/// AdamW over every variable of `varmap`, without weight decay.
pub fn optimizer(varmap: &VarMap, learning_rate: f64) -> Result<AdamW> {
    AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: learning_rate,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
}

/// Shuffles `order` in place (Fisher–Yates) with `random`.
pub fn shuffle(order: &mut [usize], random: &mut SplitMix) {
    for i in (1..order.len()).rev() {
        order.swap(i, (random.next_f32() * (i + 1) as f32) as usize % (i + 1));
    }
}
