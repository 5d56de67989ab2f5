//! Softmax cross-entropy over a full catalogue as one candle operation, logits included.
//! Written with candle's elementary operations, the loss of `hidden · itemsᵀ` materialises a
//! `(rows, items)` logit matrix and a dozen temporaries of its size forward and backward (the
//! product, max, exp, sum, log, gather, the gradient of each, and a zeroed accumulator per
//! node) — most of the time of training went to allocating them. Fused, the logits are made
//! in blocks of rows that stay in cache, forward and again backward, and never exist whole.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

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
            normalisers: Mutex::new(Vec::new()),
        },
    )
}

struct SoftmaxCrossEntropy {
    targets: Vec<u32>,
    /// Each row's `log Σ exp(logit)`, kept from the forward pass for the backward.
    normalisers: Mutex<Vec<f32>>,
}

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(values), Some((start, end))) => Ok(&values[start..end]),
        _ => candle_core::bail!("softmax_cross_entropy: expects contiguous f32 tensors"),
    }
}

fn cpu_f32(tensor: &Tensor, use_values: impl FnOnce(&[f32]) -> Result<Vec<f32>>) -> Result<Vec<f32>> {
    let (storage, layout) = tensor.storage_and_layout();
    let Storage::Cpu(storage) = &*storage else {
        candle_core::bail!("softmax_cross_entropy: expects tensors on the CPU");
    };
    use_values(contiguous_f32(storage, layout)?)
}

/// A row-major view: values with the strides of a row and of a column.
struct View<'a> {
    values: &'a [f32],
    row_stride: usize,
    column_stride: usize,
}

impl View<'_> {
    fn fits(&self, rows: usize, columns: usize) -> bool {
        rows == 0
            || columns == 0
            || (rows - 1) * self.row_stride + (columns - 1) * self.column_stride < self.values.len()
    }
}

/// `out (m × n, row-major) = [out +] a (m × k) · b (k × n)`, single-threaded (callers run
/// blocks in parallel).
fn multiply(out: &mut [f32], accumulate: bool, (m, n, k): (usize, usize, usize), a: View, b: View) {
    assert!(
        out.len() >= m * n && a.fits(m, k) && b.fits(k, n),
        "multiply: views out of bounds"
    );
    // SAFETY: the assertion above keeps every index gemm touches inside the three slices,
    // and `out` is borrowed mutably, so it overlaps neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.values.as_ptr(),
            a.column_stride as isize,
            a.row_stride as isize,
            b.values.as_ptr(),
            b.column_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The logits `block (rows × dim) · itemsᵀ` into `out`.
fn block_logits(out: &mut [f32], block: &[f32], items: &[f32], dim: usize) {
    let (rows, catalogue) = (block.len() / dim, items.len() / dim);
    multiply(
        &mut out[..rows * catalogue],
        false,
        (rows, catalogue, dim),
        View {
            values: block,
            row_stride: dim,
            column_stride: 1,
        },
        View {
            values: items,
            row_stride: 1,
            column_stride: dim,
        },
    );
}

/// `e^x` for `x ≤ 0` to within 2e-7 relative, in a form the compiler vectorises (the C
/// library's `expf` is a call per element and was a fifth of training time): `2^n · 2^f` with
/// `n` the nearest integer to `x·log2 e` and `2^f`, `|f| ≤ ½`, from its Taylor series.
fn exp_nonpositive(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting it rounds to an integer
    let t = x.max(-126.0 / std::f32::consts::LOG2_E) * std::f32::consts::LOG2_E;
    let n = (t + ROUND) - ROUND;
    let f = t - n;
    // Plain multiply-adds: `mul_add` is a library call unless the build targets FMA.
    let p = 1.540_353e-4f32;
    let p = p * f + 1.333_355_8e-3;
    let p = p * f + 9.618_129e-3;
    let p = p * f + 5.550_411e-2;
    let p = p * f + 0.240_226_5;
    let p = p * f + std::f32::consts::LN_2;
    let p = p * f + 1.0;
    f32::from_bits(((n as i32 + 127) << 23) as u32) * p
}

/// Lanes of independent accumulators: a float sum or maximum folded one element at a time
/// is a dependency chain the compiler must not reorder, so it would not vectorise.
const LANES: usize = 16;

fn log_sum_exp(row: &[f32]) -> f32 {
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut maxima = [f32::NEG_INFINITY; LANES];
    for chunk in chunks.clone() {
        for (m, &x) in maxima.iter_mut().zip(chunk) {
            *m = if x > *m { x } else { *m };
        }
    }
    let max = maxima
        .into_iter()
        .chain(rest.iter().copied())
        .fold(f32::NEG_INFINITY, f32::max);
    let mut sums = [0f32; LANES];
    for chunk in chunks {
        for (s, &x) in sums.iter_mut().zip(chunk) {
            *s += exp_nonpositive(x - max);
        }
    }
    let sum: f32 = sums.iter().sum::<f32>() + rest.iter().map(|&x| exp_nonpositive(x - max)).sum::<f32>();
    max + sum.ln()
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
        let blocks: Vec<(Vec<f32>, f64)> = hidden
            .par_chunks(BLOCK * dim)
            .zip(self.targets.par_chunks(BLOCK))
            .map_init(
                || vec![0f32; BLOCK * catalogue],
                |logits, (block, targets)| {
                    block_logits(logits, block, items, dim);
                    let mut loss = 0.0;
                    let normalisers = logits
                        .chunks(catalogue)
                        .zip(targets)
                        .map(|(row, &target)| {
                            let normaliser = log_sum_exp(row);
                            loss += f64::from(normaliser - row[target as usize]);
                            normaliser
                        })
                        .collect();
                    (normalisers, loss)
                },
            )
            .collect();
        let total: f64 = blocks.iter().map(|(_, loss)| loss).sum();
        *self.normalisers.lock().expect("normalisers") = blocks.into_iter().flat_map(|(n, _)| n).collect();
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
        let scale = grad_loss.to_scalar::<f32>()? / self.targets.len().max(1) as f32;
        let (rows, dim) = hidden.dims2()?;
        let catalogue = items.dim(0)?;
        let normalisers = self.normalisers.lock().expect("normalisers");
        let mut grad_hidden = vec![0f32; rows * dim];
        let grad_items = cpu_f32(items, |items| {
            cpu_f32(hidden, |hidden| {
                Ok(grad_hidden
                    .par_chunks_mut(BLOCK * dim)
                    .zip(hidden.par_chunks(BLOCK * dim))
                    .zip(self.targets.par_chunks(BLOCK).zip(normalisers.par_chunks(BLOCK)))
                    .fold(
                        || (vec![0f32; BLOCK * catalogue], vec![0f32; catalogue * dim]),
                        |(mut gradient, mut grad_items), ((grad_block, block), (targets, normalisers))| {
                            let n = targets.len();
                            block_logits(&mut gradient, block, items, dim);
                            // softmax − one-hot, scaled: the gradient of the block's logits.
                            for ((row, &normaliser), &target) in
                                gradient.chunks_mut(catalogue).zip(normalisers).zip(targets)
                            {
                                for g in row.iter_mut() {
                                    *g = exp_nonpositive(*g - normaliser) * scale;
                                }
                                row[target as usize] -= scale;
                            }
                            let gradient_view = |row_stride, column_stride| View {
                                values: &gradient[..n * catalogue],
                                row_stride,
                                column_stride,
                            };
                            multiply(
                                grad_block,
                                false,
                                (n, dim, catalogue),
                                gradient_view(catalogue, 1),
                                View {
                                    values: items,
                                    row_stride: dim,
                                    column_stride: 1,
                                },
                            );
                            multiply(
                                &mut grad_items,
                                true,
                                (catalogue, dim, n),
                                gradient_view(1, catalogue),
                                View {
                                    values: block,
                                    row_stride: dim,
                                    column_stride: 1,
                                },
                            );
                            (gradient, grad_items)
                        },
                    )
                    .map(|(_, grad_items)| grad_items)
                    .reduce(
                        || vec![0f32; catalogue * dim],
                        |mut a, b| {
                            a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                            a
                        },
                    ))
            })
        })?;
        let device = hidden.device();
        Ok((
            Some(Tensor::from_vec(grad_hidden, (rows, dim), device)?),
            Some(Tensor::from_vec(grad_items, (catalogue, dim), device)?),
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
        let run = |fused: bool| -> Result<(f32, Vec<Vec<f32>>, Vec<Vec<f32>>)> {
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
        for i in 0..=20_000 {
            let x = -(i as f32) / 200.0;
            let (fast, exact) = (exp_nonpositive(x), x.exp());
            assert!(
                (fast - exact).abs() <= 3e-7 * exact,
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
