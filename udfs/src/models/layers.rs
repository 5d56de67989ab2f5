//! Candle operations of the SASRec encoder with a backward pass written for the CPU: layer
//! norm, adding one row to every row of a matrix (biases, position embeddings), and the causal
//! attention softmax. candle's own fused layer norm records no backward pass, its composed one
//! allocates a dozen temporaries, the gradient of a broadcast addition sums over the leading
//! dimensions with a division per element, and a scaled, masked softmax is seven operations
//! forward and more backward — together most of a training step's time.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

/// Rows handled by one task: enough to amortise scheduling, few enough to share the work.
const ROWS_PER_TASK: usize = 256;

/// The contiguous f32 values of a CPU tensor, for `f` to read.
fn with_values<R>(tensor: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let tensor = tensor.contiguous()?;
    let (storage, layout) = tensor.storage_and_layout();
    match &*storage {
        Storage::Cpu(storage) => f(values(storage, layout)?),
        _ => candle_core::bail!("layers: expects f32 tensors on the CPU"),
    }
}

fn values<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(values), Some((start, end))) => Ok(&values[start..end]),
        _ => candle_core::bail!("layers: expects contiguous f32 tensors"),
    }
}

/// Sums `partials` (each `width` long) into one.
fn sum_partials(partials: impl ParallelIterator<Item = Vec<f32>>, width: usize) -> Vec<f32> {
    partials.reduce(
        || vec![0.0; width],
        |mut a, b| {
            a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
            a
        },
    )
}

/// `x + row`, `row` added to every row of `x` (the last dimension of `x` is `row`'s length).
pub fn add_rows(x: &Tensor, row: &Tensor) -> Result<Tensor> {
    let width = row.dims1()?;
    if x.dims().last() != Some(&width) {
        candle_core::bail!("add_rows: rows of {:?} against a row of {width}", x.dims());
    }
    x.contiguous()?.apply_op2(&row.contiguous()?, AddRows)
}

struct AddRows;

impl CustomOp2 for AddRows {
    fn name(&self) -> &'static str {
        "add-rows"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        row: &CpuStorage,
        row_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, row) = (values(x, x_layout)?, values(row, row_layout)?);
        let mut out = x.to_vec();
        out.par_chunks_mut(row.len() * ROWS_PER_TASK).for_each(|rows| {
            for out in rows.chunks_mut(row.len()) {
                out.iter_mut().zip(row).for_each(|(o, r)| *o += r);
            }
        });
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, row: &Tensor, _out: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let width = row.dims1()?;
        let grad_row = with_values(grad, |grad| {
            Ok(sum_partials(
                grad.par_chunks(width * ROWS_PER_TASK).map(|rows| {
                    let mut sums = vec![0f32; width];
                    for g in rows.chunks(width) {
                        sums.iter_mut().zip(g).for_each(|(s, g)| *s += g);
                    }
                    sums
                }),
                width,
            ))
        })?;
        Ok((
            Some(grad.clone()),
            Some(Tensor::from_vec(grad_row, width, row.device())?),
        ))
    }
}

/// Layer norm over the last dimension: `(x − mean) / √(variance + eps) · weight + bias`.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
    let width = weight.dims1()?;
    if x.dims().last() != Some(&width) || bias.dims1()? != width {
        candle_core::bail!(
            "layer_norm: rows of {:?}, weight {:?}, bias {:?}",
            x.dims(),
            weight.dims(),
            bias.dims()
        );
    }
    x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, LayerNorm { eps })
}

struct LayerNorm {
    eps: f32,
}

impl LayerNorm {
    /// The mean of `row` and `1 / √(variance + eps)`.
    fn moments(&self, row: &[f32]) -> (f32, f32) {
        let n = row.len() as f32;
        let mean = row.iter().sum::<f32>() / n;
        let variance = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
        (mean, 1.0 / (variance + self.eps).sqrt())
    }
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "layer-norm-with-backward"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, weight, bias) = (
            values(x, x_layout)?,
            values(weight, weight_layout)?,
            values(bias, bias_layout)?,
        );
        let width = weight.len();
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(width * ROWS_PER_TASK)
            .zip(x.par_chunks(width * ROWS_PER_TASK))
            .for_each(|(out, x)| {
                for (out, x) in out.chunks_mut(width).zip(x.chunks(width)) {
                    let (mean, inverse) = self.moments(x);
                    for (((o, x), w), b) in out.iter_mut().zip(x).zip(weight).zip(bias) {
                        *o = (x - mean) * inverse * w + b;
                    }
                }
            });
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }

    /// With `x̂ = (x − mean)·inverse` and `g = grad · weight`:
    /// `dx = inverse · (g − mean(g) − x̂ · mean(g · x̂))`, `dweight = Σ grad · x̂`, `dbias = Σ grad`.
    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let width = weight.dims1()?;
        let (grad_x, sums) = with_values(x, |x| {
            with_values(weight, |weight| {
                with_values(grad, |grad| {
                    let mut grad_x = vec![0f32; x.len()];
                    let sums = sum_partials(
                        grad_x
                            .par_chunks_mut(width * ROWS_PER_TASK)
                            .zip(x.par_chunks(width * ROWS_PER_TASK))
                            .zip(grad.par_chunks(width * ROWS_PER_TASK))
                            .map(|((grad_x, x), grad)| {
                                // dweight then dbias, side by side.
                                let mut sums = vec![0f32; 2 * width];
                                let mut normed = vec![0f32; width];
                                let rows = grad_x.chunks_mut(width).zip(x.chunks(width)).zip(grad.chunks(width));
                                for ((grad_x, x), grad) in rows {
                                    let (mean, inverse) = self.moments(x);
                                    normed.iter_mut().zip(x).for_each(|(n, x)| *n = (x - mean) * inverse);
                                    let (mut mean_g, mut mean_g_normed) = (0f32, 0f32);
                                    for ((g, w), n) in grad.iter().zip(weight).zip(&normed) {
                                        mean_g += g * w;
                                        mean_g_normed += g * w * n;
                                    }
                                    mean_g /= width as f32;
                                    mean_g_normed /= width as f32;
                                    for (((dx, g), w), n) in grad_x.iter_mut().zip(grad).zip(weight).zip(&normed) {
                                        *dx = inverse * (g * w - mean_g - n * mean_g_normed);
                                    }
                                    let (grad_weight, grad_bias) = sums.split_at_mut(width);
                                    for (((dw, db), g), n) in
                                        grad_weight.iter_mut().zip(grad_bias).zip(grad).zip(&normed)
                                    {
                                        *dw += g * n;
                                        *db += g;
                                    }
                                }
                                sums
                            }),
                        2 * width,
                    );
                    Ok((grad_x, sums))
                })
            })
        })?;
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(grad_x, x.shape(), device)?),
            Some(Tensor::from_vec(sums[..width].to_vec(), width, device)?),
            Some(Tensor::from_vec(sums[width..].to_vec(), width, device)?),
        ))
    }
}

/// Attention weights from `scores` `(batch, heads, length, length)`: for each query `i` the
/// softmax of `scale · scores` over the keys `j ≤ i` that `keys[b · length + j]` allows, zero
/// elsewhere; a query that sees no key (padding) gets a row of zeros.
pub fn causal_softmax(scores: &Tensor, keys: Vec<bool>, scale: f32) -> Result<Tensor> {
    let (batch, _, length, columns) = scores.dims4()?;
    if columns != length || keys.len() != batch * length {
        candle_core::bail!(
            "causal_softmax: scores {:?} against {} key flags",
            scores.dims(),
            keys.len()
        );
    }
    scores.contiguous()?.apply_op1(CausalSoftmax { keys, scale })
}

struct CausalSoftmax {
    keys: Vec<bool>,
    scale: f32,
}

impl CausalSoftmax {
    /// The keys row `row` of the scores (`row` counted over batch, heads and queries) may see.
    fn visible(&self, row: usize, heads: usize, length: usize) -> impl Fn(usize) -> bool + '_ {
        let (batch, query) = (row / (heads * length), row % length);
        let keys = &self.keys[batch * length..(batch + 1) * length];
        move |j| j <= query && keys[j]
    }
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, scores: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let scores = values(scores, layout)?;
        let (_, heads, length, _) = layout.shape().dims4()?;
        let mut out = vec![0f32; scores.len()];
        out.par_chunks_mut(length * ROWS_PER_TASK)
            .zip(scores.par_chunks(length * ROWS_PER_TASK))
            .enumerate()
            .for_each(|(task, (out, scores))| {
                let rows = out.chunks_mut(length).zip(scores.chunks(length));
                for (r, (out, scores)) in rows.enumerate() {
                    let visible = self.visible(task * ROWS_PER_TASK + r, heads, length);
                    let max = (0..length)
                        .filter(|&j| visible(j))
                        .map(|j| scores[j])
                        .fold(f32::NEG_INFINITY, f32::max);
                    if max == f32::NEG_INFINITY {
                        continue;
                    }
                    let mut sum = 0.0;
                    for j in (0..length).filter(|&j| visible(j)) {
                        out[j] = super::cross_entropy::exp_nonpositive(self.scale * (scores[j] - max));
                        sum += out[j];
                    }
                    out.iter_mut().for_each(|p| *p /= sum);
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    /// `dscores = scale · y · (grad − Σ grad · y)` row by row, `y` the weights.
    fn bwd(&self, scores: &Tensor, weights: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let length = scores.dim(3)?;
        let grad_scores = with_values(weights, |weights| {
            with_values(grad, |grad| {
                let mut grad_scores = vec![0f32; weights.len()];
                grad_scores
                    .par_chunks_mut(length * ROWS_PER_TASK)
                    .zip(weights.par_chunks(length * ROWS_PER_TASK))
                    .zip(grad.par_chunks(length * ROWS_PER_TASK))
                    .for_each(|((out, weights), grad)| {
                        let rows = out
                            .chunks_mut(length)
                            .zip(weights.chunks(length))
                            .zip(grad.chunks(length));
                        for ((out, y), g) in rows {
                            let dot: f32 = y.iter().zip(g).map(|(y, g)| y * g).sum();
                            for ((o, y), g) in out.iter_mut().zip(y).zip(g) {
                                *o = self.scale * y * (g - dot);
                            }
                        }
                    });
                Ok(grad_scores)
            })
        })?;
        Ok(Some(Tensor::from_vec(grad_scores, scores.shape(), scores.device())?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{D, Device, Var};

    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| (((i + seed) * 7919) % 23) as f32 / 7.0 - 1.5).collect()
    }

    /// The value and the gradients of each input agree with the same function written in
    /// candle's differentiable operations, over more rows than one task.
    fn agree_with_composed(
        fused: impl Fn(&Var, &Var, &Var) -> Result<Tensor>,
        composed: impl Fn(&Var, &Var, &Var) -> Result<Tensor>,
    ) -> Result<()> {
        let device = Device::Cpu;
        let (rows, width) = (600, 12);
        let run = |f: &dyn Fn(&Var, &Var, &Var) -> Result<Tensor>| -> Result<Vec<Vec<f32>>> {
            let x = Var::from_vec(values(rows * width, 1), (2, rows / 2, width), &device)?;
            let weight = Var::from_vec(values(width, 2), width, &device)?;
            let bias = Var::from_vec(values(width, 3), width, &device)?;
            let out = f(&x, &weight, &bias)?;
            // A loss that weighs each output differently, so every gradient term counts.
            let loss = (out * Tensor::from_vec(values(rows * width, 4), (2, rows / 2, width), &device)?)?.sum_all()?;
            let gradients = loss.backward()?;
            let mut result = vec![vec![loss.to_scalar::<f32>()?]];
            for var in [&x, &weight, &bias] {
                result.push(match gradients.get(var) {
                    Some(g) => g.flatten_all()?.to_vec1::<f32>()?,
                    None => Vec::new(),
                });
            }
            Ok(result)
        };
        let (fused, composed) = (run(&fused)?, run(&composed)?);
        for (a, b) in fused.iter().zip(&composed) {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-3 * (1.0 + y.abs()), "{x} vs {y}");
            }
        }
        Ok(())
    }

    #[test]
    fn layer_norm_matches_the_composed_one() -> Result<()> {
        agree_with_composed(
            |x, w, b| layer_norm(x, w, b, 1e-6),
            |x, w, b| {
                let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
                let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
                centred
                    .broadcast_div(&(variance + 1e-6)?.sqrt()?)?
                    .broadcast_mul(w)?
                    .broadcast_add(b)
            },
        )
    }

    #[test]
    fn add_rows_matches_broadcast_addition() -> Result<()> {
        agree_with_composed(
            |x, w, b| add_rows(&(x.as_tensor() * 1.0)?, &(w.as_tensor() + b.as_tensor())?),
            |x, w, b| x.broadcast_add(&(w.as_tensor() + b.as_tensor())?),
        )
    }

    /// The fused softmax equals scaling, adding −∞ where a key is hidden and candle's softmax,
    /// value and gradient, with padded keys at the start of some rows.
    #[test]
    fn causal_softmax_matches_the_masked_softmax() -> Result<()> {
        let device = Device::Cpu;
        let (batch, heads, length, scale) = (3, 2, 5, 0.7f32);
        let padding = [0, 2, 4];
        let keys: Vec<bool> = (0..batch * length).map(|i| i % length >= padding[i / length]).collect();
        let mut hidden = vec![0f32; batch * length * length];
        for (i, h) in hidden.iter_mut().enumerate() {
            let (b, q, k) = (i / (length * length), (i / length) % length, i % length);
            if k > q || !keys[b * length + k] {
                *h = -1e9;
            }
        }
        let hidden = Tensor::from_vec(hidden, (batch, 1, length, length), &device)?;
        // A query that sees no key: candle's softmax spreads it evenly, the fused op gives zeros.
        let seen: Vec<f32> = (0..batch * length)
            .map(|i| f32::from(u8::from(i % length >= padding[i / length])))
            .collect();
        let seen = Tensor::from_vec(seen, (batch, 1, length, 1), &device)?;
        let shape = (batch, heads, length, length);
        let run = |fused: bool| -> Result<(Vec<f32>, Vec<f32>)> {
            let scores = Var::from_vec(values(batch * heads * length * length, 5), shape, &device)?;
            let weights = if fused {
                causal_softmax(scores.as_tensor(), keys.clone(), scale)?
            } else {
                let masked = (scores.as_tensor() * f64::from(scale))?.broadcast_add(&hidden)?;
                candle_nn::ops::softmax(&masked, D::Minus1)?.broadcast_mul(&seen)?
            };
            let loss = (&weights * Tensor::from_vec(values(weights.elem_count(), 6), shape, &device)?)?.sum_all()?;
            let gradient = loss.backward()?.get(&scores).expect("gradient").flatten_all()?;
            Ok((weights.flatten_all()?.to_vec1()?, gradient.to_vec1()?))
        };
        let (fused, reference) = (run(true)?, run(false)?);
        for (a, b) in [(&fused.0, &reference.0), (&fused.1, &reference.1)] {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-5, "{x} vs {y}");
            }
        }
        assert!(fused.0.iter().any(|&w| w > 0.0) && fused.0[..length].iter().all(|&w| w == 0.0 || w == 1.0));
        Ok(())
    }

    #[test]
    fn refuses_rows_of_another_width() {
        let x = Tensor::zeros((3, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let row = Tensor::zeros(5, candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(add_rows(&x, &row).is_err());
        assert!(layer_norm(&x, &row, &row, 1e-6).is_err());
    }
}
