//! Softmax cross-entropy over a full catalogue as one candle operation, logits included.
//! Written with candle's elementary operations, the loss of `hidden · itemsᵀ` materialises a
//! `(rows, items)` logit matrix and a dozen temporaries of its size forward and backward (the
//! product, max, exp, sum, log, gather, the gradient of each, and a zeroed accumulator per
//! node) — most of the time of training went to allocating them. Fused, the logits are made
//! in blocks of rows that stay in cache and never exist whole; as the loss is the end of the
//! graph, its gradients are computed in the same pass (three matrix products in all, the
//! least there can be) and the backward pass only scales them.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::matrix::{View, multiply, multiply_transposed};
use crate::simd::simd_versions;

/// Rows whose logits are held at once: a block of 64 rows × a few thousand items fits in L2.
const BLOCK: usize = 64;

/// The mean over rows of `−log softmax(hidden · itemsᵀ)[target]`, a scalar that
/// back-propagates into `hidden` `(rows, dim)` and `items` `(catalogue, dim)` (both f32).
/// `targets` holds one row of `items` per row of `hidden`.
pub fn softmax_cross_entropy(hidden: &Tensor, items: &Tensor, targets: Vec<u32>) -> Result<Tensor> {
    let (rows, dim) = hidden.dims2()?;
    let (catalogue, item_dim) = items.dims2()?;
    if targets.len() != rows || item_dim != dim || targets.iter().any(|&t| t as usize >= catalogue) {
        candle_core::bail!(
            "softmax_cross_entropy: {rows} rows of {dim} against {catalogue} items of {item_dim}, {} targets (expected one per row, each below {catalogue})",
            targets.len()
        );
    }
    hidden.contiguous()?.apply_op2(
        &items.contiguous()?,
        SoftmaxCrossEntropy {
            targets,
            gradients: Mutex::new(None),
        },
    )
}

struct SoftmaxCrossEntropy {
    targets: Vec<u32>,
    /// The gradients of the summed loss with respect to hidden and items, from the forward
    /// pass.
    gradients: Mutex<Option<(Vec<f32>, Vec<f32>)>>,
}

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(values), Some((start, end))) => Ok(&values[start..end]),
        _ => candle_core::bail!("softmax_cross_entropy: expects contiguous f32 tensors"),
    }
}

/// The logits `block (rows × dim) · itemsᵀ` into `out`.
fn block_logits(out: &mut [f32], block: &[f32], items: &[f32], dim: usize) {
    let (rows, catalogue) = (block.len() / dim, items.len() / dim);
    multiply(
        &mut out[..rows * catalogue],
        catalogue,
        false,
        (rows, catalogue, dim),
        View::rows(block, dim),
        View::transposed(items, dim),
    );
}

/// `e^x` for `x ≤ 0` to a few ulps, in a form the compiler vectorises (the C library's `expf`
/// is a call per element and was a fifth of training time): `2^n · e^r` with `n` the nearest
/// integer to `x·log2 e`, `r = x − n·ln 2` (ln 2 in two parts, so that `r` is exact) and `e^r`,
/// `|r| ≤ ½ ln 2`, from its Taylor series. Below −87 it returns `e^−87` (≈ 1.6e−38).
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting it rounds to an integer
    const LN_2_HIGH: f32 = 0.693_145_75; // few significant bits: n · LN_2_HIGH is exact
    const LN_2_LOW: f32 = 1.428_606_8e-6;
    let x = x.max(-87.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // n as an integer, read off the bits of `shifted` (whose units are 1): `n as i32` is a
    // saturating conversion the compiler does one element at a time.
    let exponent = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = (x - n * LN_2_HIGH) - n * LN_2_LOW;
    // Plain multiply-adds: `mul_add` is a library call unless the build targets FMA.
    let p = 1.0 / 5040.0f32;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    f32::from_bits(((exponent + 127) << 23) as u32) * p
}

/// Lanes of independent accumulators: a float sum or maximum folded one element at a time
/// is a dependency chain the compiler must not reorder, so it would not vectorise.
pub(super) const LANES: usize = 16;

#[inline(always)]
pub(crate) fn maximum(row: &[f32]) -> f32 {
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut maxima = [f32::NEG_INFINITY; LANES];
    for chunk in chunks {
        for (m, &x) in maxima.iter_mut().zip(chunk) {
            *m = if x > *m { x } else { *m };
        }
    }
    maxima
        .into_iter()
        .chain(rest.iter().copied())
        .fold(f32::NEG_INFINITY, f32::max)
}

/// Replaces each `x` of `row` by `e^(x − shift)` and returns their sum.
#[inline(always)]
pub(crate) fn exponentiate(row: &mut [f32], shift: f32) -> f32 {
    let mut chunks = row.chunks_exact_mut(LANES);
    let mut sums = [0f32; LANES];
    for chunk in chunks.by_ref() {
        for (s, x) in sums.iter_mut().zip(chunk) {
            *x = exp_nonpositive(*x - shift);
            *s += *x;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp_nonpositive(*x - shift);
        sum += *x;
    }
    sum
}

/// Loss and gradients of one block of rows: turns `logits` (the block's, `rows × catalogue`)
/// into `softmax − one-hot`, writes the block's hidden gradient into `grad_block` and adds its
/// share to `grad_items`; returns the block's summed loss.
fn block_loss_and_gradients(
    logits: &mut [f32],
    grad_block: &mut [f32],
    grad_items: &mut [f32],
    (block, items, dim): (&[f32], &[f32], usize),
    targets: &[u32],
) -> f64 {
    let (rows, catalogue) = (targets.len(), items.len() / dim);
    let logits = &mut logits[..rows * catalogue];
    block_logits(logits, block, items, dim);
    let loss = softmax_minus_one_hot(logits, catalogue, targets);
    // `(itemsᵀ · logitsᵀ)ᵀ`: gemm reads the logits as they lie (see `matrix`).
    multiply_transposed(
        grad_block,
        dim,
        false,
        (dim, rows, catalogue),
        View::transposed(items, dim),
        View::transposed(logits, catalogue),
    );
    multiply(
        grad_items,
        dim,
        true,
        (catalogue, dim, rows),
        View::transposed(logits, catalogue),
        View::rows(block, dim),
    );
    loss
}

simd_versions! {
    /// Turns each row of `logits` (`catalogue` wide, one row per target) into
    /// `softmax − one-hot(target)` and returns the rows' summed loss, `Σ −log softmax[target]`.
    fn softmax_minus_one_hot(logits: &mut [f32], catalogue: usize, targets: &[u32]) -> f64 {
        let mut loss = 0.0;
        for (row, &target) in logits.chunks_mut(catalogue).zip(targets) {
            let target = target as usize;
            let (max, target_logit) = (maximum(row), row[target]);
            let sum = exponentiate(row, max);
            loss += f64::from(max + sum.ln() - target_logit);
            let inverse = 1.0 / sum;
            row.iter_mut().for_each(|p| *p *= inverse);
            row[target] -= 1.0;
        }
        loss
    }
}

simd_versions! {
    /// Softmax of `row · scale`, in place.
    pub(crate) fn softmax_in_place(row: &mut [f32], scale: f32) {
        row.iter_mut().for_each(|w| *w *= scale);
        let sum = exponentiate(row, maximum(row));
        let inverse = 1.0 / sum;
        row.iter_mut().for_each(|w| *w *= inverse);
    }
}

impl CustomOp2 for SoftmaxCrossEntropy {
    fn name(&self) -> &'static str {
        "softmax-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        hidden: &CpuStorage,
        hidden_layout: &Layout,
        items: &CpuStorage,
        items_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (hidden, items) = (
            contiguous_f32(hidden, hidden_layout)?,
            contiguous_f32(items, items_layout)?,
        );
        let (dim, catalogue) = (hidden_layout.dims()[1], items_layout.dims()[0]);
        let mut grad_hidden = vec![0f32; hidden.len()];
        // One contiguous run of blocks per thread, each run summed in order and the runs added
        // in order: a model depends on the seed and the thread count, not on which thread
        // stole which block.
        let blocks = self.targets.len().div_ceil(BLOCK).max(1);
        let per_run = blocks.div_ceil(rayon::current_num_threads().clamp(1, blocks));
        let runs: Vec<(f64, Vec<f32>)> = grad_hidden
            .par_chunks_mut(per_run * BLOCK * dim)
            .zip(hidden.par_chunks(per_run * BLOCK * dim))
            .zip(self.targets.par_chunks(per_run * BLOCK))
            .map(|((grad_run, run), targets)| {
                let mut logits = vec![0f32; BLOCK * catalogue];
                let mut grad_items = vec![0f32; items.len()];
                let mut loss = 0.0;
                let blocks = grad_run
                    .chunks_mut(BLOCK * dim)
                    .zip(run.chunks(BLOCK * dim))
                    .zip(targets.chunks(BLOCK));
                for ((grad_block, block), targets) in blocks {
                    loss += block_loss_and_gradients(
                        &mut logits,
                        grad_block,
                        &mut grad_items,
                        (block, items, dim),
                        targets,
                    );
                }
                (loss, grad_items)
            })
            .collect();
        let (mut total, mut grad_items) = (0.0, vec![0f32; items.len()]);
        for (loss, grad) in runs {
            total += loss;
            grad_items.iter_mut().zip(grad).for_each(|(a, b)| *a += b);
        }
        *self.gradients.lock().expect("gradients") = Some((grad_hidden, grad_items));
        let loss = (total / self.targets.len().max(1) as f64) as f32;
        Ok((CpuStorage::F32(vec![loss]), Shape::from(())))
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        items: &Tensor,
        _loss: &Tensor,
        grad_loss: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let scale = f64::from(grad_loss.to_scalar::<f32>()?) / self.targets.len().max(1) as f64;
        let Some((grad_hidden, grad_items)) = self.gradients.lock().expect("gradients").take() else {
            candle_core::bail!("softmax_cross_entropy: back-propagated twice");
        };
        let device = hidden.device();
        Ok((
            Some((Tensor::from_vec(grad_hidden, hidden.shape(), device)? * scale)?),
            Some((Tensor::from_vec(grad_items, items.shape(), device)? * scale)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{D, Device, Var};

    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| (((i + seed) * 7919) % 13) as f32 / 6.0 - 1.0).collect()
    }

    /// Loss and both gradients agree with candle's matmul and log-softmax written out, over
    /// more rows than one block and a catalogue that is not a multiple of the vector lanes.
    #[test]
    fn matches_the_composed_loss() -> Result<()> {
        let device = Device::Cpu;
        let (rows, dim, catalogue) = (150, 8, 37);
        let targets: Vec<u32> = (0..rows as u32).map(|r| (r * 5) % catalogue as u32).collect();
        type LossAndGradients = (f32, Vec<Vec<f32>>, Vec<Vec<f32>>);
        let run = |fused: bool| -> Result<LossAndGradients> {
            let hidden = Var::from_vec(values(rows * dim, 1), (rows, dim), &device)?;
            let items = Var::from_vec(values(catalogue * dim, 2), (catalogue, dim), &device)?;
            let loss = if fused {
                softmax_cross_entropy(hidden.as_tensor(), items.as_tensor(), targets.clone())?
            } else {
                let logits = hidden.as_tensor().matmul(&items.as_tensor().t()?)?;
                let index = Tensor::from_vec(targets.clone(), (rows, 1), &device)?;
                let picked = candle_nn::ops::log_softmax(&logits, D::Minus1)?.gather(&index, 1)?;
                (picked.sum_all()? * (-1.0 / rows as f64))?
            };
            let grads = loss.backward()?;
            let grad = |v: &Var| grads.get(v).expect("gradient").to_vec2::<f32>();
            Ok((loss.to_scalar::<f32>()?, grad(&hidden)?, grad(&items)?))
        };
        let (fused, reference) = (run(true)?, run(false)?);
        assert!(
            (fused.0 - reference.0).abs() < 1e-5,
            "loss {} vs {}",
            fused.0,
            reference.0
        );
        for (a, b) in [(&fused.1, &reference.1), (&fused.2, &reference.2)] {
            for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
        }
        Ok(())
    }

    #[test]
    fn exp_is_accurate_over_the_range_softmax_uses() {
        for i in 0..=17_400 {
            let x = -(i as f32) / 200.0;
            let (fast, exact) = (exp_nonpositive(x), x.exp());
            assert!(
                (fast - exact).abs() <= 4.0 * f32::EPSILON * exact,
                "exp({x}) = {fast}, expected {exact}"
            );
        }
        assert_eq!(
            exp_nonpositive(-1e9),
            exp_nonpositive(-126.0 / std::f32::consts::LOG2_E)
        );
    }

    #[test]
    fn refuses_a_target_outside_the_catalogue() -> Result<()> {
        let hidden = Tensor::zeros((2, 4), candle_core::DType::F32, &Device::Cpu)?;
        let items = Tensor::zeros((3, 4), candle_core::DType::F32, &Device::Cpu)?;
        assert!(softmax_cross_entropy(&hidden, &items, vec![0, 3]).is_err());
        Ok(())
    }
}
