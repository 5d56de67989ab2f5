//! The neural feature profile, `U = f(W1·X1 + b1, …, Wn·Xn + bn)`: a user tower (one layer per
//! feature group — numbers z-scored, text categories hashed into buckets — summed, then a ReLU
//! and a projection) trained jointly with item vectors so that `U · item` ranks what the user
//! interacts with (BPR loss, one sampled negative per positive). Because the profile comes from
//! features alone, it serves users with little or no history. The encoding of a features table
//! ([`feature_spec`], [`encode`]) is saved with the model, so profiles encode new rows the same way.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, Optimizer, VarBuilder, VarMap};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result as DfResult, exec_datafusion_err};
use serde_json::{Value, json};

/// Buckets a text feature is hashed into.
pub const BUCKETS: usize = 32;

/// The encoding of every feature column, by column name, in column order.
pub type FeatureSpec = Vec<(String, Feature)>;

/// How one feature column is encoded.
#[derive(Debug, Clone)]
pub enum Feature {
    /// A number, z-scored with the training mean and deviation (NULL → 0).
    Number { mean: f64, deviation: f64 },
    /// A category, hashed into [`BUCKETS`] one-hot slots.
    Category,
}

impl Feature {
    pub fn width(&self) -> usize {
        match self {
            Feature::Number { .. } => 1,
            Feature::Category => BUCKETS,
        }
    }
}

/// The bucket of a category value (FNV-1a).
pub fn bucket(value: &str) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in value.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % BUCKETS as u64) as usize
}

/// Settings of the model and its training.
#[derive(Debug, Clone, Copy)]
pub struct TwoTowerConfig {
    pub inputs: usize,
    pub items: usize,
    pub dim: usize,
    pub hidden: usize,
    pub epochs: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

/// The user tower and the item vectors.
pub struct TwoTower {
    first: Linear,
    second: Linear,
    items: Embedding,
}

impl TwoTower {
    pub fn new(config: &TwoTowerConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            first: candle_nn::linear(config.inputs, config.hidden, vb.pp("first"))?,
            second: candle_nn::linear(config.hidden, config.dim, vb.pp("second"))?,
            items: candle_nn::embedding(config.items, config.dim, vb.pp("items"))?,
        })
    }

    /// User profiles `(n, dim)` from encoded features `(n, inputs)`.
    pub fn users(&self, features: &Tensor) -> Result<Tensor> {
        self.second.forward(&self.first.forward(features)?.relu()?)
    }

    pub fn item_vectors(&self) -> Result<Vec<f32>> {
        self.items.embeddings().flatten_all()?.to_vec1::<f32>()
    }
}

/// Trains on (user row, item) positives, `features` being `users × inputs` row-major.
pub fn train(
    features: &[f32],
    positives: &[(u32, u32)],
    config: &TwoTowerConfig,
    mut on_epoch: impl FnMut(usize, f32) -> bool,
) -> Result<(VarMap, f32)> {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let model = TwoTower::new(config, VarBuilder::from_varmap(&varmap, DType::F32, &device))?;
    let mut random = super::als::SplitMix::new(config.seed);
    super::training::seeded_init(&varmap, &mut random)?;
    let users = features.len() / config.inputs.max(1);
    let features = Tensor::from_vec(features.to_vec(), (users, config.inputs), &device)?;
    let mut optimizer = super::training::optimizer(&varmap, config.learning_rate)?;
    let mut order: Vec<usize> = (0..positives.len()).collect();
    let mut loss = f32::NAN;
    for epoch in 1..=config.epochs {
        super::training::shuffle(&mut order, &mut random);
        let (mut total, mut batches) = (0.0f32, 0);
        for chunk in order.chunks(1024) {
            let user_rows: Vec<u32> = chunk.iter().map(|&p| positives[p].0).collect();
            let liked: Vec<u32> = chunk.iter().map(|&p| positives[p].1).collect();
            let other: Vec<u32> = chunk
                .iter()
                .map(|_| ((random.next_f32() * config.items as f32) as usize % config.items) as u32)
                .collect();
            let n = chunk.len();
            let u = model.users(&features.index_select(&Tensor::from_vec(user_rows, n, &device)?, 0)?)?;
            let liked = model.items.forward(&Tensor::from_vec(liked, n, &device)?)?;
            let other = model.items.forward(&Tensor::from_vec(other, n, &device)?)?;
            let margin = (u.mul(&liked)?.sum(1)? - u.mul(&other)?.sum(1)?)?;
            // BPR: −log σ(margin), written stably as softplus(−margin).
            let batch_loss = margin.neg()?.exp()?.affine(1.0, 1.0)?.log()?.mean_all()?;
            optimizer.backward_step(&batch_loss)?;
            total += batch_loss.to_scalar::<f32>()?;
            batches += 1;
        }
        loss = total / batches.max(1) as f32;
        if !loss.is_finite() || !on_epoch(epoch, loss) {
            break;
        }
    }
    Ok((varmap, loss))
}

/// Loads a saved model's variables.
pub fn load(config: &TwoTowerConfig, tensors: std::collections::HashMap<String, Tensor>) -> Result<TwoTower> {
    TwoTower::new(config, VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu))
}

/// The encoding of each feature column (columns 1.. of the features table).
pub fn feature_spec(batch: &RecordBatch) -> DfResult<FeatureSpec> {
    let schema = batch.schema();
    (1..batch.num_columns())
        .map(|c| {
            let name = schema.field(c).name().clone();
            let column = batch.column(c);
            if column.data_type().is_numeric() {
                let values = cast(column, &DataType::Float64)?;
                let values: Vec<f64> = values.as_primitive::<Float64Type>().iter().flatten().collect();
                let n = values.len().max(1) as f64;
                let mean = values.iter().sum::<f64>() / n;
                let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                let deviation = if variance > 0.0 { variance.sqrt() } else { 1.0 };
                Ok((name, Feature::Number { mean, deviation }))
            } else {
                Ok((name, Feature::Category))
            }
        })
        .collect()
}

/// Each row's features as `inputs` floats, row-major.
pub fn encode(batch: &RecordBatch, spec: &[(String, Feature)]) -> DfResult<Vec<f32>> {
    let width: usize = spec.iter().map(|(_, f)| f.width()).sum();
    let mut out = vec![0.0f32; batch.num_rows() * width];
    let mut offset = 0;
    for (name, feature) in spec {
        let column = batch.column_by_name(name).ok_or_else(|| {
            exec_datafusion_err!("the features table has no column '{name}', which the model was trained on")
        })?;
        match feature {
            Feature::Number { mean, deviation } => {
                let values = cast(column, &DataType::Float64)?;
                let values = values.as_primitive::<Float64Type>();
                for row in 0..batch.num_rows() {
                    if values.is_valid(row) {
                        out[row * width + offset] = ((values.value(row) - mean) / deviation) as f32;
                    }
                }
            }
            Feature::Category => {
                let values = cast(column, &DataType::Utf8)?;
                let values = values.as_string::<i32>();
                for row in 0..batch.num_rows() {
                    if values.is_valid(row) {
                        out[row * width + offset + bucket(values.value(row))] = 1.0;
                    }
                }
            }
        }
        offset += feature.width();
    }
    Ok(out)
}

pub fn spec_json(spec: &[(String, Feature)]) -> Value {
    Value::Array(
        spec.iter()
            .map(|(name, feature)| match feature {
                Feature::Number { mean, deviation } => {
                    json!({"name": name, "kind": "number", "mean": mean, "deviation": deviation})
                }
                Feature::Category => json!({"name": name, "kind": "category", "buckets": BUCKETS}),
            })
            .collect(),
    )
}

pub fn spec_from_json(value: &Value) -> Option<FeatureSpec> {
    value
        .as_array()?
        .iter()
        .map(|f| {
            let name = f["name"].as_str()?.to_string();
            let feature = match f["kind"].as_str()? {
                "number" => Feature::Number {
                    mean: f["mean"].as_f64()?,
                    deviation: f["deviation"].as_f64()?,
                },
                _ => Feature::Category,
            };
            Some((name, feature))
        })
        .collect()
}
