//! One SASRec encoder block as a single candle operation whose backward pass is written out:
//! pre-norm causal self-attention and a ReLU feed-forward layer, each followed by dropout and a
//! residual, padded positions zeroed at the end. Built from candle's operations, a block was
//! some thirty graph nodes forward and more backward, each allocating its result and a zeroed
//! gradient to add into — two thirds of a training step's time for under half its arithmetic.
//! Here it is the matrix products and one pass over the rows between each two; the backward
//! pass keeps only what it cannot cheaply make again (dropout masks are drawn again by
//! position, layer norms recomputed).

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};
use rayon::prelude::*;

use super::als::SplitMix;
use super::cross_entropy::{exp_nonpositive, softmax_in_place};
use super::layers::{
    ROWS_PER_TASK, laned_sum, layer_norm_backward, layer_norm_rows, sum_partials, values, with_values,
};
use super::matrix::{View, multiply, multiply_transposed};
use crate::simd::simd_versions;

/// The layer norms' epsilon.
const EPS: f32 = 1e-6;

/// A block's variables, named as model files keep them.
pub struct Block {
    norm_attention: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    norm_feed_forward: LayerNorm,
    up: Linear,
    down: Linear,
}

impl Block {
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let norm = |name| candle_nn::layer_norm(dim, f64::from(EPS), vb.pp(name));
        let linear = |name| candle_nn::linear(dim, dim, vb.pp(name));
        Ok(Block {
            norm_attention: norm("norm_attention")?,
            query: linear("query")?,
            key: linear("key")?,
            value: linear("value")?,
            output: linear("output")?,
            norm_feed_forward: norm("norm_feed_forward")?,
            up: linear("up")?,
            down: linear("down")?,
        })
    }

    /// The block applied to `x` `(batch, length, dim)`. `keys[b · length + j]` says whether
    /// position `j` of sequence `b` holds an item: padding is never attended to and comes out
    /// zero. `training` is the dropout of a pass that will be back-propagated, `None` for one
    /// that will not.
    pub fn forward(&self, x: &Tensor, keys: &[bool], heads: usize, training: Option<Dropout>) -> Result<Tensor> {
        let (batch, length, dim) = x.dims3()?;
        if keys.len() != batch * length || heads == 0 || !dim.is_multiple_of(heads) {
            candle_core::bail!(
                "encoder block: {:?} with {} key flags and {heads} heads",
                x.dims(),
                keys.len()
            );
        }
        let operation = BlockOperation {
            sizes: Sizes {
                batch,
                length,
                dim,
                heads,
            },
            keys: keys.to_vec(),
            training,
            saved: Mutex::new(None),
        };
        x.contiguous()?.apply_op2(&self.packed()?, operation)
    }

    /// The attention of each sequence's last position over its positions, averaged over the
    /// heads, for `x` `(batch, length, dim)` the block's input: `batch × length` weights,
    /// row-major, 0 at padding. The weights [`Block::forward`] attends with, before dropout.
    pub fn last_attention(&self, x: &Tensor, keys: &[bool], heads: usize) -> Result<Vec<f32>> {
        use candle_core::Module;
        let (batch, length, dim) = x.dims3()?;
        if keys.len() != batch * length || heads == 0 || !dim.is_multiple_of(heads) {
            candle_core::bail!(
                "encoder block: {:?} with {} key flags and {heads} heads",
                x.dims(),
                keys.len()
            );
        }
        let normed = self.norm_attention.forward(&x.contiguous()?)?;
        let query = self
            .query
            .forward(&normed.narrow(1, length - 1, 1)?)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let key = self.key.forward(&normed)?.flatten_all()?.to_vec1::<f32>()?;
        let head = dim / heads;
        let scale = 1.0 / (head as f32).sqrt();
        let mut attention = vec![0f32; batch * length];
        for (sequence, out) in attention.chunks_mut(length).enumerate() {
            let keys = &keys[sequence * length..(sequence + 1) * length];
            for h in 0..heads {
                let q = &query[sequence * dim + h * head..sequence * dim + (h + 1) * head];
                let scores: Vec<f32> = (0..length)
                    .map(|j| {
                        let k = &key[(sequence * length + j) * dim + h * head..][..head];
                        scale * q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>()
                    })
                    .collect();
                let max = (0..length)
                    .filter(|&j| keys[j])
                    .map(|j| scores[j])
                    .fold(f32::NEG_INFINITY, f32::max);
                if max == f32::NEG_INFINITY {
                    continue;
                }
                let exps: Vec<f32> = (0..length)
                    .map(|j| if keys[j] { (scores[j] - max).exp() } else { 0.0 })
                    .collect();
                let sum: f32 = exps.iter().sum();
                out.iter_mut()
                    .zip(&exps)
                    .for_each(|(o, e)| *o += e / sum / heads as f32);
            }
        }
        Ok(attention)
    }

    /// Every variable flattened into one vector, in the order [`Parameters::cut`] reads them.
    fn packed(&self) -> Result<Tensor> {
        let bias = |bias: Option<&Tensor>| match bias {
            Some(bias) => Ok(bias.clone()),
            None => candle_core::bail!("encoder block: every layer has a bias"),
        };
        let norm = |n: &LayerNorm| Ok::<_, candle_core::Error>([n.weight().clone(), bias(n.bias())?]);
        let linear = |l: &Linear| Ok::<_, candle_core::Error>([l.weight().flatten_all()?, bias(l.bias())?]);
        let pieces: Vec<Tensor> = [
            norm(&self.norm_attention)?,
            linear(&self.query)?,
            linear(&self.key)?,
            linear(&self.value)?,
            linear(&self.output)?,
            norm(&self.norm_feed_forward)?,
            linear(&self.up)?,
            linear(&self.down)?,
        ]
        .into_iter()
        .flatten()
        .collect();
        Tensor::cat(&pieces, 0)
    }
}

/// The dropout of a training pass: a value is kept, scaled by `1 / (1 − rate)`, when its draw
/// from `draws` — by position, so draws can be made again and in any order — is at least
/// `rate`.
#[derive(Clone)]
pub struct Dropout {
    pub rate: f32,
    pub draws: SplitMix,
}

impl Dropout {
    /// How many draws one pass of a block over `(batch, length, dim)` with `heads` heads uses:
    /// the attention weights', then the attention output's, then the feed-forward output's.
    pub fn draws_per_block(batch: usize, length: usize, dim: usize, heads: usize) -> usize {
        let sizes = Sizes {
            batch,
            length,
            dim,
            heads,
        };
        sizes.draws().2
    }

    /// The factor of draw `index`: 0 where a value is dropped, [`Dropout::kept`] where not.
    #[inline(always)]
    pub(super) fn factor(&self, index: usize) -> f32 {
        if self.draws.peek(index as u64 + 1) >= self.rate {
            self.kept()
        } else {
            0.0
        }
    }

    #[inline(always)]
    fn kept(&self) -> f32 {
        1.0 / (1.0 - self.rate)
    }

    /// The factors of draws `first..first + out.len()`, into `out`.
    pub(super) fn factors(&self, first: usize, out: &mut [f32]) {
        dropout_factors(out, &self.draws, first as u64 + 1, self.rate, self.kept());
    }
}

simd_versions! {
    /// [`Dropout::factor`] of draws `first..` (counted from 1, as [`SplitMix::peek`] does).
    fn dropout_factors(out: &mut [f32], draws: &SplitMix, first: u64, rate: f32, kept: f32) {
        for (i, factor) in out.iter_mut().enumerate() {
            *factor = if draws.peek(first + i as u64) >= rate { kept } else { 0.0 };
        }
    }
}

#[derive(Clone, Copy)]
struct Sizes {
    batch: usize,
    length: usize,
    dim: usize,
    heads: usize,
}

impl Sizes {
    fn rows(&self) -> usize {
        self.batch * self.length
    }

    fn head(&self) -> usize {
        self.dim / self.heads
    }

    /// Attention weights of the whole batch: one `length × length` matrix per sequence and head.
    fn attention(&self) -> usize {
        self.batch * self.heads * self.length * self.length
    }

    /// Where a pass's dropout draws start for the attention output and for the feed-forward
    /// output (the attention weights' start at 0), and how many it makes.
    fn draws(&self) -> (usize, usize, usize) {
        let output = self.attention();
        let feed_forward = output + self.rows() * self.dim;
        (output, feed_forward, feed_forward + self.rows() * self.dim)
    }
}

/// The parameters of a block — or their gradients — split out of the packed vector: each layer
/// norm's weight and bias, each linear layer's weight (outputs × inputs, row-major) and bias.
struct Parameters<T> {
    norm_attention: [T; 2],
    query: [T; 2],
    key: [T; 2],
    value: [T; 2],
    output: [T; 2],
    norm_feed_forward: [T; 2],
    up: [T; 2],
    down: [T; 2],
}

impl<T> Parameters<T> {
    /// Takes the pieces with `take(length)` in the order [`Block::packed`] writes them.
    fn cut(dim: usize, mut take: impl FnMut(usize) -> T) -> Self {
        let square = dim * dim;
        Parameters {
            norm_attention: [take(dim), take(dim)],
            query: [take(square), take(dim)],
            key: [take(square), take(dim)],
            value: [take(square), take(dim)],
            output: [take(square), take(dim)],
            norm_feed_forward: [take(dim), take(dim)],
            up: [take(square), take(dim)],
            down: [take(square), take(dim)],
        }
    }

    fn count(dim: usize) -> usize {
        6 * dim * dim + 10 * dim
    }
}

fn split(values: &[f32], dim: usize) -> Parameters<&[f32]> {
    let mut rest = values;
    Parameters::cut(dim, |length| {
        let (piece, tail) = rest.split_at(length);
        rest = tail;
        piece
    })
}

fn split_mut(values: &mut [f32], dim: usize) -> Parameters<&mut [f32]> {
    let mut rest = values;
    Parameters::cut(dim, |length| {
        let (piece, tail) = std::mem::take(&mut rest).split_at_mut(length);
        rest = tail;
        piece
    })
}

/// What the backward pass reads from the forward one, each `rows × dim` but the weights.
struct Saved {
    query: Vec<f32>,
    key: Vec<f32>,
    value: Vec<f32>,
    /// The attention weights before dropout.
    weights: Vec<f32>,
    /// The attention weights after dropout, when there is dropout.
    dropped: Option<Vec<f32>>,
    attended: Vec<f32>,
    /// After the attention's residual: the feed-forward layer's input.
    middle: Vec<f32>,
    /// The feed-forward layer's first product, before the ReLU.
    up: Vec<f32>,
}

struct BlockOperation {
    sizes: Sizes,
    keys: Vec<bool>,
    training: Option<Dropout>,
    saved: Mutex<Option<Saved>>,
}

impl BlockOperation {
    fn dropping(&self) -> bool {
        self.training.as_ref().is_some_and(|d| d.rate > 0.0)
    }

    /// `f(out, input, factor)` for every element of `out` and the same one of `input`, in
    /// parallel tasks of rows, with `factor` the dropout factor of draw `first_draw + index`
    /// (1 when nothing is dropped), drawn for a task at once.
    fn with_dropout(&self, out: &mut [f32], input: &[f32], first_draw: usize, f: impl Fn(&mut f32, f32, f32) + Sync) {
        let task = self.sizes.dim * ROWS_PER_TASK;
        out.par_chunks_mut(task)
            .zip(input.par_chunks(task))
            .enumerate()
            .for_each(|(index, (out, input))| {
                let Some(dropout) = self.training.as_ref().filter(|d| d.rate > 0.0) else {
                    out.iter_mut().zip(input).for_each(|(o, &x)| f(o, x, 1.0));
                    return;
                };
                let mut factors = vec![0f32; out.len()];
                dropout.factors(first_draw + index * task, &mut factors);
                for ((o, &x), &factor) in out.iter_mut().zip(input).zip(&factors) {
                    f(o, x, factor);
                }
            });
    }

    /// Zeros the rows (`dim` wide) of padded positions.
    fn zero_padding(&self, x: &mut [f32]) {
        x.par_chunks_mut(self.sizes.dim)
            .zip(self.keys.par_iter())
            .for_each(|(row, &key)| {
                if !key {
                    row.fill(0.0);
                }
            });
    }

    fn forward(&self, x: &[f32], p: &Parameters<&[f32]>) -> (Vec<f32>, Saved) {
        let dim = self.sizes.dim;
        let (output_draws, feed_forward_draws, _) = self.sizes.draws();
        let normed = layer_norm_rows(x, p.norm_attention[0], p.norm_attention[1], EPS);
        let query = linear(&normed, &p.query, dim);
        let key = linear(&normed, &p.key, dim);
        let value = linear(&normed, &p.value, dim);
        let (weights, dropped, attended) = self.attend(&query, &key, &value);
        let mut middle = linear(&attended, &p.output, dim);
        self.with_dropout(&mut middle, x, output_draws, |m, x, factor| *m = x + *m * factor);
        let normed = layer_norm_rows(&middle, p.norm_feed_forward[0], p.norm_feed_forward[1], EPS);
        let up = linear(&normed, &p.up, dim);
        let mut out = linear(&relu(&up), &p.down, dim);
        self.with_dropout(&mut out, &middle, feed_forward_draws, |o, m, factor| {
            *o = m + *o * factor
        });
        self.zero_padding(&mut out);
        let saved = Saved {
            query,
            key,
            value,
            weights,
            dropped,
            attended,
            middle,
            up,
        };
        (out, saved)
    }

    /// The attention weights of every sequence and head before dropout and, when there is
    /// dropout, after it, and the attended values, `rows × dim` with the heads side by side.
    /// Only what can be non-zero is computed: a sequence's left padding is skipped, and each
    /// block of queries is scored against the keys up to its last one, not past it (causal
    /// attention is a triangle).
    fn attend(&self, query: &[f32], key: &[f32], value: &[f32]) -> (Vec<f32>, Option<Vec<f32>>, Vec<f32>) {
        let Sizes { length, dim, heads, .. } = self.sizes;
        let head = self.sizes.head();
        let mut weights = vec![0f32; self.sizes.attention()];
        let mut dropped = self.dropping().then(|| vec![0f32; self.sizes.attention()]);
        let mut attended = vec![0f32; query.len()];
        let per_sequence = heads * length * length;
        let mut dropped_sequences: Vec<Option<&mut [f32]>> = match &mut dropped {
            Some(dropped) => dropped.chunks_mut(per_sequence).map(Some).collect(),
            None => (0..self.sizes.batch).map(|_| None).collect(),
        };
        weights
            .par_chunks_mut(per_sequence)
            .zip(dropped_sequences.par_iter_mut())
            .zip(attended.par_chunks_mut(length * dim))
            .enumerate()
            .for_each(|(sequence, ((weights, dropped), attended))| {
                let rows = sequence * length * dim..(sequence + 1) * length * dim;
                let (query, key, value) = (&query[rows.clone()], &key[rows.clone()], &value[rows]);
                let first = self.first_item(sequence);
                for (h, weights) in weights.chunks_mut(length * length).enumerate() {
                    let columns = h * head;
                    for (start, end) in self.causal_blocks(first) {
                        multiply(
                            &mut weights[start * length + first..],
                            length,
                            false,
                            (end - start, end - first, head),
                            View::rows(&query[start * dim + columns..], dim),
                            View::transposed(&key[first * dim + columns..], dim),
                        );
                    }
                    self.causal_softmax(weights, sequence, first);
                    let used: &[f32] = match dropped.as_deref_mut() {
                        Some(dropped) => {
                            let dropped = &mut dropped[h * length * length..(h + 1) * length * length];
                            self.drop_weights(weights, (sequence * heads + h) * length * length, first, dropped);
                            dropped
                        }
                        None => weights,
                    };
                    for (start, end) in self.causal_blocks(first) {
                        multiply(
                            &mut attended[start * dim + columns..],
                            dim,
                            false,
                            (end - start, head, end - first),
                            View::rows(&used[start * length + first..], length),
                            View::rows(&value[first * dim + columns..], dim),
                        );
                    }
                }
            });
        (weights, dropped, attended)
    }

    /// The first position of `sequence` that holds an item: the left padding before it is
    /// neither attended to nor attends (its weights stay zero).
    fn first_item(&self, sequence: usize) -> usize {
        let length = self.sizes.length;
        self.keys[sequence * length..(sequence + 1) * length]
            .iter()
            .position(|&key| key)
            .unwrap_or(length)
    }

    /// Blocks of query positions `(start, end)` from `first` on: the queries of a block see
    /// keys from `first` to `end` at most.
    fn causal_blocks(&self, first: usize) -> impl Iterator<Item = (usize, usize)> {
        /// Small enough that little of a block's square is above the diagonal, large enough
        /// for the matrix products to run at speed.
        const QUERIES_PER_BLOCK: usize = 32;
        let length = self.sizes.length;
        (first..length)
            .step_by(QUERIES_PER_BLOCK)
            .map(move |start| (start, (start + QUERIES_PER_BLOCK).min(length)))
    }

    /// Softmax of `scores / √head` over the keys each query may see (positions up to its own
    /// that hold an item), in place; hidden keys, and queries that see none, get zeros. Rows
    /// before `first` are padding and left as they are (zeros), as are the columns before it.
    fn causal_softmax(&self, scores: &mut [f32], sequence: usize, first: usize) {
        let length = self.sizes.length;
        let keys = &self.keys[sequence * length + first..(sequence + 1) * length];
        let scale = 1.0 / (self.sizes.head() as f32).sqrt();
        // Sequences are left-padded, so every position from the first item on holds one: a
        // row's visible keys are then one run, softmaxed by the vectorised loops of the loss.
        let contiguous = keys.iter().all(|&key| key);
        for (query, row) in scores.chunks_mut(length).enumerate().skip(first) {
            let row = &mut row[first..];
            let query = query - first;
            if contiguous {
                let (seen, hidden) = row.split_at_mut(query + 1);
                softmax_in_place(seen, scale);
                hidden.fill(0.0);
                continue;
            }
            let visible = |j: usize| j <= query && keys[j];
            let max = (0..=query)
                .filter(|&j| visible(j))
                .map(|j| row[j])
                .fold(f32::NEG_INFINITY, f32::max);
            if max == f32::NEG_INFINITY {
                row.fill(0.0);
                continue;
            }
            let mut sum = 0.0;
            for (j, w) in row.iter_mut().enumerate() {
                *w = if visible(j) {
                    exp_nonpositive(scale * (*w - max))
                } else {
                    0.0
                };
                sum += *w;
            }
            row.iter_mut().for_each(|w| *w /= sum);
        }
    }

    /// One head's attention weights after dropout (their draws from `draws` on) into `out`,
    /// which holds zeros: only the triangle from `first` on can be non-zero.
    fn drop_weights(&self, weights: &[f32], draws: usize, first: usize, out: &mut [f32]) {
        let (length, Some(dropout)) = (self.sizes.length, &self.training) else {
            return;
        };
        for i in first..length {
            let seen = i * length + first..i * length + i + 1;
            let out = &mut out[seen.clone()];
            dropout.factors(draws + seen.start, out);
            out.iter_mut().zip(&weights[seen]).for_each(|(o, w)| *o *= w);
        }
    }

    /// The gradients of `x` and of the packed parameters, given that of the output.
    fn backward(&self, x: &[f32], packed: &[f32], grad_out: &[f32], saved: Saved) -> (Vec<f32>, Vec<f32>) {
        let dim = self.sizes.dim;
        let (output_draws, feed_forward_draws, _) = self.sizes.draws();
        let p = split(packed, dim);
        let mut grad_packed = vec![0f32; packed.len()];
        let mut g = split_mut(&mut grad_packed, dim);
        let Saved {
            query,
            key,
            value,
            weights,
            dropped,
            attended,
            middle,
            up,
        } = saved;
        // out = keep · (middle + dropout(down(relu(up(norm(middle))))))
        let mut grad_middle = grad_out.to_vec();
        self.zero_padding(&mut grad_middle);
        let mut grad_down = vec![0f32; grad_out.len()];
        self.with_dropout(&mut grad_down, &grad_middle, feed_forward_draws, |gd, g, factor| {
            *gd = g * factor
        });
        linear_gradients(&grad_down, &relu(&up), dim, &mut g.down);
        let mut grad_up = vec![0f32; up.len()];
        linear_input_gradient(&mut grad_up, false, &grad_down, p.down[0], dim);
        for_each_pair(&mut grad_up, &up, |g, u| {
            if u <= 0.0 {
                *g = 0.0
            }
        });
        let normed = layer_norm_rows(&middle, p.norm_feed_forward[0], p.norm_feed_forward[1], EPS);
        linear_gradients(&grad_up, &normed, dim, &mut g.up);
        let mut grad_normed = normed;
        linear_input_gradient(&mut grad_normed, false, &grad_up, p.up[0], dim);
        let (through_norm, sums) = layer_norm_backward(&middle, p.norm_feed_forward[0], &grad_normed, EPS);
        add_norm_gradients(&mut grad_middle, &through_norm, &sums, &mut g.norm_feed_forward);
        // middle = x + dropout(output(attended))
        let mut grad_output = grad_down;
        self.with_dropout(&mut grad_output, &grad_middle, output_draws, |go, g, factor| {
            *go = g * factor
        });
        linear_gradients(&grad_output, &attended, dim, &mut g.output);
        let mut grad_attended = attended;
        linear_input_gradient(&mut grad_attended, false, &grad_output, p.output[0], dim);
        let [grad_query, grad_key, grad_value] =
            self.attend_backward(&grad_attended, &query, &key, &value, (&weights, dropped.as_deref()));
        let normed = layer_norm_rows(x, p.norm_attention[0], p.norm_attention[1], EPS);
        linear_gradients(&grad_query, &normed, dim, &mut g.query);
        linear_gradients(&grad_key, &normed, dim, &mut g.key);
        linear_gradients(&grad_value, &normed, dim, &mut g.value);
        let mut grad_normed = normed;
        linear_input_gradient(&mut grad_normed, false, &grad_query, p.query[0], dim);
        linear_input_gradient(&mut grad_normed, true, &grad_key, p.key[0], dim);
        linear_input_gradient(&mut grad_normed, true, &grad_value, p.value[0], dim);
        let (through_norm, sums) = layer_norm_backward(x, p.norm_attention[0], &grad_normed, EPS);
        // The residual carries grad_middle to x unchanged.
        add_norm_gradients(&mut grad_middle, &through_norm, &sums, &mut g.norm_attention);
        (grad_middle, grad_packed)
    }

    /// The gradients of the query, key and value given that of the attended values.
    fn attend_backward(
        &self,
        grad_attended: &[f32],
        query: &[f32],
        key: &[f32],
        value: &[f32],
        (weights, dropped): (&[f32], Option<&[f32]>),
    ) -> [Vec<f32>; 3] {
        let Sizes { length, dim, heads, .. } = self.sizes;
        let head = self.sizes.head();
        let scale = 1.0 / (head as f32).sqrt();
        let kept = self
            .training
            .as_ref()
            .filter(|_| self.dropping())
            .map_or(1.0, Dropout::kept);
        let mut grads = [
            vec![0f32; query.len()],
            vec![0f32; query.len()],
            vec![0f32; query.len()],
        ];
        let [grad_query, grad_key, grad_value] = &mut grads;
        grad_query
            .par_chunks_mut(length * dim)
            .zip(grad_key.par_chunks_mut(length * dim))
            .zip(grad_value.par_chunks_mut(length * dim))
            .enumerate()
            .for_each(|(sequence, ((grad_query, grad_key), grad_value))| {
                let rows = sequence * length * dim..(sequence + 1) * length * dim;
                let (query, key, value) = (&query[rows.clone()], &key[rows.clone()], &value[rows.clone()]);
                let grad_attended = &grad_attended[rows];
                let first = self.first_item(sequence);
                let mut grad_weights = vec![0f32; length * length];
                for h in 0..heads {
                    let columns = h * head;
                    let draws = (sequence * heads + h) * length * length;
                    let weights = &weights[draws..draws + length * length];
                    let used = dropped.map_or(weights, |dropped| &dropped[draws..draws + length * length]);
                    // As in the forward pass, only the triangle from the first item on: query
                    // i sees keys j ≤ i, so key j is seen by queries i ≥ j.
                    for (start, end) in self.causal_blocks(first) {
                        multiply(
                            &mut grad_value[start * dim + columns..],
                            dim,
                            false,
                            (end - start, head, length - start),
                            View::transposed(&used[start * length + start..], length),
                            View::rows(&grad_attended[start * dim + columns..], dim),
                        );
                        multiply(
                            &mut grad_weights[start * length + first..],
                            length,
                            false,
                            (end - start, end - first, head),
                            View::rows(&grad_attended[start * dim + columns..], dim),
                            View::transposed(&value[first * dim + columns..], dim),
                        );
                    }
                    // Through dropout and the softmax, over the keys a query sees; the products
                    // above also wrote some it does not, zeroed here.
                    let rows = grad_weights
                        .chunks_mut(length)
                        .zip(weights.chunks(length))
                        .zip(used.chunks(length))
                        .enumerate()
                        .skip(first);
                    for (query, ((grad, weights), used)) in rows {
                        let (grad, unseen) = grad[first..].split_at_mut(query + 1 - first);
                        unseen.fill(0.0);
                        let seen = first..query + 1;
                        softmax_backward(grad, &weights[seen.clone()], &used[seen], kept, scale);
                    }
                    for (start, end) in self.causal_blocks(first) {
                        multiply(
                            &mut grad_query[start * dim + columns..],
                            dim,
                            false,
                            (end - start, head, end - first),
                            View::rows(&grad_weights[start * length + first..], length),
                            View::rows(&key[first * dim + columns..], dim),
                        );
                        multiply(
                            &mut grad_key[start * dim + columns..],
                            dim,
                            false,
                            (end - start, head, length - start),
                            View::transposed(&grad_weights[start * length + start..], length),
                            View::rows(&query[start * dim + columns..], dim),
                        );
                    }
                }
            });
        grads
    }
}

impl CustomOp2 for BlockOperation {
    fn name(&self) -> &'static str {
        "sasrec-encoder-block"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        packed: &CpuStorage,
        packed_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, packed) = (values(x, x_layout)?, values(packed, packed_layout)?);
        let dim = self.sizes.dim;
        if packed.len() != Parameters::<()>::count(dim) {
            candle_core::bail!("encoder block: {} parameters for dim {dim}", packed.len());
        }
        let (out, saved) = self.forward(x, &split(packed, dim));
        if self.training.is_some() {
            *self.saved.lock().expect("saved") = Some(saved);
        }
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        packed: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let Some(saved) = self.saved.lock().expect("saved").take() else {
            candle_core::bail!("encoder block: back-propagated twice, or through a pass not marked as training");
        };
        let (grad_x, grad_packed) = with_values(x, |x| {
            with_values(packed, |packed| {
                with_values(grad, |grad| Ok(self.backward(x, packed, grad, saved)))
            })
        })?;
        Ok((
            Some(Tensor::from_vec(grad_x, x.shape(), x.device())?),
            Some(Tensor::from_vec(grad_packed, packed.shape(), packed.device())?),
        ))
    }
}

simd_versions! {
    /// The gradient of one query's attention scores from that of its weights `grad` (the keys
    /// it sees), in place: through dropout — its factor is 0 where a `used` weight is 0
    /// (dropped, or hidden and then zero anyway), `kept` elsewhere — then through the softmax,
    /// `scale · w · (g − Σ g · w)`.
    fn softmax_backward(grad: &mut [f32], weights: &[f32], used: &[f32], kept: f32, scale: f32) {
        for (g, &u) in grad.iter_mut().zip(used) {
            *g = if u == 0.0 { 0.0 } else { *g * kept };
        }
        let dot = laned_sum(grad, weights, |g, w| g * w);
        for (g, w) in grad.iter_mut().zip(weights) {
            *g = scale * w * (*g - dot);
        }
    }
}

/// `f(out, input)` for every element of `out` and the same one of `input`, in parallel.
fn for_each_pair(out: &mut [f32], input: &[f32], f: impl Fn(&mut f32, f32) + Sync) {
    const CHUNK: usize = 1 << 14;
    out.par_chunks_mut(CHUNK)
        .zip(input.par_chunks(CHUNK))
        .for_each(|(out, input)| out.iter_mut().zip(input).for_each(|(o, &x)| f(o, x)));
}

fn relu(x: &[f32]) -> Vec<f32> {
    x.par_iter().map(|x| x.max(0.0)).collect()
}

/// `input · weightᵀ + bias` for each row of `input` (rows `width` long; `weight` is
/// outputs × width).
pub(crate) fn linear(input: &[f32], [weight, bias]: &[&[f32]; 2], width: usize) -> Vec<f32> {
    let outputs = bias.len();
    let mut transposed = vec![0f32; weight.len()];
    for (o, row) in weight.chunks(width).enumerate() {
        for (w, &value) in row.iter().enumerate() {
            transposed[w * outputs + o] = value;
        }
    }
    linear_transposed(input, &[&transposed, bias], width)
}

/// [`linear`] with the weight given transposed, `width × outputs`. Computed as
/// `(weight · inputᵀ)ᵀ`, so that gemm reads the input as it lies (see `matrix`), and the
/// weight by its columns, which the transpose lays out one after another.
pub(crate) fn linear_transposed(input: &[f32], [transposed, bias]: &[&[f32]; 2], width: usize) -> Vec<f32> {
    let outputs = bias.len();
    let mut out = vec![0f32; input.len() / width * outputs];
    out.par_chunks_mut(outputs * ROWS_PER_TASK)
        .zip(input.par_chunks(width * ROWS_PER_TASK))
        .for_each(|(out, input)| {
            out.chunks_mut(outputs).for_each(|row| row.copy_from_slice(bias));
            multiply_transposed(
                out,
                outputs,
                true,
                (outputs, input.len() / width, width),
                View::transposed(transposed, outputs),
                View::transposed(input, width),
            );
        });
    out
}

/// `grad · weight`, the gradient of [`linear`]'s input, written or added into `out`.
fn linear_input_gradient(out: &mut [f32], accumulate: bool, grad: &[f32], weight: &[f32], width: usize) {
    let outputs = weight.len() / width;
    out.par_chunks_mut(width * ROWS_PER_TASK)
        .zip(grad.par_chunks(outputs * ROWS_PER_TASK))
        .for_each(|(out, grad)| {
            // `(weightᵀ · gradᵀ)ᵀ`, for the reason `linear` gives.
            multiply_transposed(
                out,
                width,
                accumulate,
                (width, grad.len() / outputs, outputs),
                View::transposed(weight, width),
                View::transposed(grad, outputs),
            );
        });
}

/// The gradients of [`linear`]'s weight, `gradᵀ · input`, and bias, the sums of `grad`'s rows.
fn linear_gradients(grad: &[f32], input: &[f32], width: usize, [grad_weight, grad_bias]: &mut [&mut [f32]; 2]) {
    let outputs = grad_bias.len();
    let weights = outputs * width;
    let sums = sum_partials(
        grad.par_chunks(outputs * ROWS_PER_TASK)
            .zip(input.par_chunks(width * ROWS_PER_TASK))
            .map(|(grad, input)| {
                let mut partial = vec![0f32; weights + outputs];
                let (weight, bias) = partial.split_at_mut(weights);
                multiply(
                    weight,
                    width,
                    false,
                    (outputs, width, grad.len() / outputs),
                    View::transposed(grad, outputs),
                    View::rows(input, width),
                );
                for row in grad.chunks(outputs) {
                    bias.iter_mut().zip(row).for_each(|(b, g)| *b += g);
                }
                partial
            }),
        weights + outputs,
    );
    grad_weight.copy_from_slice(&sums[..weights]);
    grad_bias.copy_from_slice(&sums[weights..]);
}

/// Adds a layer norm's input gradient to `grad` and stores its weight and bias gradients
/// (`sums`, side by side).
fn add_norm_gradients(grad: &mut [f32], through_norm: &[f32], sums: &[f32], [weight, bias]: &mut [&mut [f32]; 2]) {
    for_each_pair(grad, through_norm, |g, t| *g += t);
    let width = weight.len();
    weight.copy_from_slice(&sums[..width]);
    bias.copy_from_slice(&sums[width..]);
}

#[cfg(test)]
mod tests {
    use candle_core::{D, DType, Device, Module, Var};
    use candle_nn::VarMap;

    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| (((i + seed) * 7919) % 23) as f32 / 11.0 - 1.0).collect()
    }

    /// The block written with candle's differentiable operations, dropping out with the draws
    /// the fused block makes.
    fn composed(block: &Block, x: &Tensor, keys: &[bool], heads: usize, dropout: &Dropout) -> Result<Tensor> {
        let (batch, length, dim) = x.dims3()?;
        let head = dim / heads;
        let device = x.device();
        let mask = |start: usize, shape: &[usize]| {
            let count = shape.iter().product::<usize>();
            Tensor::from_iter((start..start + count).map(|i| dropout.factor(i)), device)?.reshape(shape)
        };
        let norm = |n: &LayerNorm, x: &Tensor| {
            let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
            let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
            centred
                .broadcast_div(&(variance + f64::from(EPS))?.sqrt()?)?
                .broadcast_mul(n.weight())?
                .broadcast_add(n.bias().expect("bias"))
        };
        let flag = |on: bool| f32::from(u8::from(on));
        let keep = Tensor::from_iter(keys.iter().map(|&k| flag(k)), device)?.reshape((batch, length, 1))?;
        let visible = |b: usize, i: usize, j: usize| j <= i && keys[b * length + j];
        let mut hidden = Vec::new();
        for b in 0..batch {
            for i in 0..length {
                hidden.extend((0..length).map(|j| if visible(b, i, j) { 0.0 } else { -1e9f32 }));
            }
        }
        let hidden = Tensor::from_vec(hidden, (batch, 1, length, length), device)?;
        let sees: Vec<f32> = (0..batch * length)
            .map(|r| flag((0..length).any(|j| visible(r / length, r % length, j))))
            .collect();
        let sees = Tensor::from_vec(sees, (batch, 1, length, 1), device)?;
        let split = |t: Tensor| t.reshape((batch, length, heads, head))?.transpose(1, 2)?.contiguous();
        let h = norm(&block.norm_attention, x)?;
        let (q, k, v) = (
            split(block.query.forward(&h)?)?,
            split(block.key.forward(&h)?)?,
            split(block.value.forward(&h)?)?,
        );
        let scores = (q.matmul(&k.t()?)? / (head as f64).sqrt())?.broadcast_add(&hidden)?;
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?.broadcast_mul(&sees)?;
        let weights = (weights * mask(0, &[batch, heads, length, length])?)?;
        let attended = weights.matmul(&v)?.transpose(1, 2)?.reshape((batch, length, dim))?;
        let attention = batch * heads * length * length;
        let middle = (x + (block.output.forward(&attended)? * mask(attention, &[batch, length, dim])?)?)?;
        let h = norm(&block.norm_feed_forward, &middle)?;
        let h = block.down.forward(&block.up.forward(&h)?.relu()?)?;
        let feed_forward = attention + batch * length * dim;
        (middle + (h * mask(feed_forward, &[batch, length, dim])?)?)?.broadcast_mul(&keep)
    }

    /// The output and the gradients of the input and of every variable agree with the composed
    /// block, with and without dropout, over more rows than one task, with sequences padded
    /// by none, some, and all but one of their positions.
    #[test]
    fn matches_the_composed_block() -> Result<()> {
        let device = Device::Cpu;
        let (batch, length, dim, heads) = (3, 100, 8, 2);
        let padding = [0, 37, 99];
        let keys: Vec<bool> = (0..batch * length).map(|i| i % length >= padding[i / length]).collect();
        for rate in [0.0, 0.3] {
            let run = |fused: bool| -> Result<Vec<Vec<f32>>> {
                let varmap = VarMap::new();
                let block = Block::new(dim, VarBuilder::from_varmap(&varmap, DType::F32, &device))?;
                let data = varmap.data().lock().expect("variables");
                let mut names: Vec<&String> = data.keys().collect();
                names.sort();
                for (seed, name) in names.iter().enumerate() {
                    let var = &data[*name];
                    var.set(&Tensor::from_vec(
                        values(var.elem_count(), seed).iter().map(|v| v * 0.5 + 0.1).collect(),
                        var.shape(),
                        &device,
                    )?)?;
                }
                let x = Var::from_vec(values(batch * length * dim, 100), (batch, length, dim), &device)?;
                let dropout = Dropout {
                    rate,
                    draws: SplitMix::new(11),
                };
                let out = if fused {
                    block.forward(x.as_tensor(), &keys, heads, Some(dropout))?
                } else {
                    composed(&block, x.as_tensor(), &keys, heads, &dropout)?
                };
                let weights = Tensor::from_vec(values(out.elem_count(), 200), out.shape(), &device)?;
                let loss = (&out * weights)?.sum_all()?;
                let gradients = loss.backward()?;
                let mut result = vec![out.flatten_all()?.to_vec1::<f32>()?];
                let gradient = |t: &Tensor| gradients.get(t).expect("gradient").flatten_all()?.to_vec1::<f32>();
                result.push(gradient(x.as_tensor())?);
                for name in names {
                    result.push(gradient(data[name].as_tensor())?);
                }
                Ok(result)
            };
            let (fused, reference) = (run(true)?, run(false)?);
            assert_eq!(fused.len(), 2 + 16);
            for (a, b) in fused.iter().zip(&reference) {
                assert_eq!(a.len(), b.len());
                assert!(b.iter().any(|&v| v != 0.0), "a gradient of zeros proves nothing");
                for (x, y) in a.iter().zip(b) {
                    assert!((x - y).abs() <= 1e-3 * (1.0 + y.abs()), "rate {rate}: {x} vs {y}");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn refuses_to_back_propagate_an_inference_pass() -> Result<()> {
        let device = Device::Cpu;
        let varmap = VarMap::new();
        let block = Block::new(4, VarBuilder::from_varmap(&varmap, DType::F32, &device))?;
        let x = Var::from_vec(values(2 * 3 * 4, 1), (2, 3, 4), &device)?;
        let out = block.forward(x.as_tensor(), &[true; 6], 2, None)?;
        assert!(out.sum_all()?.backward().is_err());
        assert!(block.forward(x.as_tensor(), &[true; 5], 2, None).is_err());
        assert!(block.forward(x.as_tensor(), &[true; 6], 3, None).is_err());
        Ok(())
    }
}
