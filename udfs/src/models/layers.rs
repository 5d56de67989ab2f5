//! Candle operations of the SASRec encoder with a backward pass written for the CPU: layer
//! norm and adding one row to every row of a matrix (position embeddings). candle's own fused
//! layer norm records no backward pass, its composed one allocates a dozen temporaries, and the
//! gradient of a broadcast addition sums over the leading dimensions with a division per
//! element. The layer norm's arithmetic on slices is shared with [`super::encoder_block`].

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::cross_entropy::LANES;
use crate::simd::simd_versions;

/// Rows handled by one task: enough to amortise scheduling, few enough to share the work.
pub(crate) const ROWS_PER_TASK: usize = 256;

/// The contiguous f32 values of a CPU tensor, for `f` to read.
pub(super) fn with_values<R>(tensor: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let tensor = tensor.contiguous()?;
    let (storage, layout) = tensor.storage_and_layout();
    match &*storage {
        Storage::Cpu(storage) => f(values(storage, layout)?),
        _ => candle_core::bail!("layers: expects f32 tensors on the CPU"),
    }
}

pub(super) fn values<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(values), Some((start, end))) => Ok(&values[start..end]),
        _ => candle_core::bail!("layers: expects contiguous f32 tensors"),
    }
}

/// Sums `partials` (each `width` long) into one, in their order: a reduction in the order
/// threads happen to finish would make a trained model depend on which thread stole which task.
pub(super) fn sum_partials(partials: impl IndexedParallelIterator<Item = Vec<f32>>, width: usize) -> Vec<f32> {
    let partials: Vec<Vec<f32>> = partials.collect();
    let mut sum = vec![0.0; width];
    for partial in partials {
        sum.iter_mut().zip(partial).for_each(|(a, b)| *a += b);
    }
    sum
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

/// `Σ f(a_i, b_i)` over two slices of one length, summed in [`LANES`] partial sums.
#[inline(always)]
pub(crate) fn laned_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    let mut lanes = [0f32; LANES];
    for (a, b) in chunks_a.zip(chunks_b) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(a).zip(b) {
            *lane += f(x, y);
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// The mean of `row` and `1 / √(variance + eps)`.
#[inline(always)]
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = laned_sum(row, row, |x, _| x) / n;
    let variance = laned_sum(row, row, |x, _| (x - mean) * (x - mean)) / n;
    (mean, 1.0 / (variance + eps).sqrt())
}

/// Layer norm of each row of `x` (rows as long as `weight`).
pub(crate) fn layer_norm_rows(x: &[f32], weight: &[f32], bias: &[f32], eps: f32) -> Vec<f32> {
    let width = weight.len();
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(width * ROWS_PER_TASK)
        .zip(x.par_chunks(width * ROWS_PER_TASK))
        .for_each(|(out, x)| normalize_rows(out, x, weight, bias, eps));
    out
}

simd_versions! {
    /// [`layer_norm_rows`] of the rows of one task.
    fn normalize_rows(out: &mut [f32], x: &[f32], weight: &[f32], bias: &[f32], eps: f32) {
        let width = weight.len();
        for (out, x) in out.chunks_mut(width).zip(x.chunks(width)) {
            let (mean, inverse) = moments(x, eps);
            for (((o, x), w), b) in out.iter_mut().zip(x).zip(weight).zip(bias) {
                *o = (x - mean) * inverse * w + b;
            }
        }
    }
}

/// The gradients of [`layer_norm_rows`] given the gradient `grad` of its output: that of `x`,
/// and those of weight then bias side by side. With `x̂ = (x − mean)·inverse` and
/// `g = grad · weight`: `dx = inverse · (g − mean(g) − x̂ · mean(g · x̂))`,
/// `dweight = Σ grad · x̂`, `dbias = Σ grad`.
pub(super) fn layer_norm_backward(x: &[f32], weight: &[f32], grad: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let width = weight.len();
    let mut grad_x = vec![0f32; x.len()];
    let sums = sum_partials(
        grad_x
            .par_chunks_mut(width * ROWS_PER_TASK)
            .zip(x.par_chunks(width * ROWS_PER_TASK))
            .zip(grad.par_chunks(width * ROWS_PER_TASK))
            .map(|((grad_x, x), grad)| {
                let mut sums = vec![0f32; 2 * width];
                normalize_rows_backward(grad_x, x, grad, weight, eps, &mut sums);
                sums
            }),
        2 * width,
    );
    (grad_x, sums)
}

simd_versions! {
    /// [`layer_norm_backward`] of the rows of one task, adding their weight and bias
    /// gradients into `sums`.
    fn normalize_rows_backward(grad_x: &mut [f32], x: &[f32], grad: &[f32], weight: &[f32], eps: f32, sums: &mut [f32]) {
        let width = weight.len();
        let (mut normed, mut weighted) = (vec![0f32; width], vec![0f32; width]);
        let rows = grad_x.chunks_mut(width).zip(x.chunks(width)).zip(grad.chunks(width));
        for ((grad_x, x), grad) in rows {
            let (mean, inverse) = moments(x, eps);
            normed.iter_mut().zip(x).for_each(|(n, x)| *n = (x - mean) * inverse);
            weighted.iter_mut().zip(grad).zip(weight).for_each(|((gw, g), w)| *gw = g * w);
            let mean_g = laned_sum(&weighted, &weighted, |gw, _| gw) / width as f32;
            let mean_g_normed = laned_sum(&weighted, &normed, |gw, n| gw * n) / width as f32;
            for (((dx, g), w), n) in grad_x.iter_mut().zip(grad).zip(weight).zip(&normed) {
                *dx = inverse * (g * w - mean_g - n * mean_g_normed);
            }
            let (grad_weight, grad_bias) = sums.split_at_mut(width);
            for (((dw, db), g), n) in grad_weight.iter_mut().zip(grad_bias).zip(grad).zip(&normed) {
                *dw += g * n;
                *db += g;
            }
        }
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
        let out = layer_norm_rows(x, weight, bias, self.eps);
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }

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
                with_values(grad, |grad| Ok(layer_norm_backward(x, weight, grad, self.eps)))
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

    #[test]
    fn refuses_rows_of_another_width() {
        let x = Tensor::zeros((3, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let row = Tensor::zeros(5, candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(add_rows(&x, &row).is_err());
        assert!(layer_norm(&x, &row, &row, 1e-6).is_err());
    }
}
