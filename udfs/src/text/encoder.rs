//! The BERT encoder's inference pass on slices, for sentence embeddings: a batch's texts are
//! packed back to back with no padding, so every matrix product runs over real tokens only and
//! attention is computed text by text over its own tokens (no mask, nothing spent on padding);
//! each layer is its matrix products and one parallel pass over the rows between each two.
//! Through candle's BERT a layer was some twenty tensor operations, each allocating its result,
//! and padded batches paid for their padding in every one of them.

use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;

use crate::models::cross_entropy::{exp_nonpositive, softmax_in_place};
use crate::models::encoder_block::linear_transposed;
use crate::models::layers::{ROWS_PER_TASK, layer_norm_rows};
use crate::models::matrix::{View, multiply};
use crate::simd::simd_versions;

/// A weight matrix and its bias: for a dense layer the weight transposed (inputs × outputs,
/// row-major), for a layer norm its scale.
type Dense = [Vec<f32>; 2];

/// One transformer layer: self-attention, then the feed-forward layer, each followed by a
/// residual and a layer norm (BERT normalises after the residual).
struct Layer {
    query: Dense,
    key: Dense,
    value: Dense,
    attention_output: Dense,
    attention_norm: Dense,
    up: Dense,
    down: Dense,
    output_norm: Dense,
}

/// A loaded encoder.
pub struct Encoder {
    hidden: usize,
    heads: usize,
    eps: f32,
    activation: HiddenAct,
    words: Vec<f32>,
    positions: Vec<f32>,
    /// The token-type embedding of type 0, the only type a single sentence has.
    token_type: Vec<f32>,
    embedding_norm: Dense,
    layers: Vec<Layer>,
}

impl Encoder {
    /// The encoder whose weights `vb` holds, named as Hugging Face's BertModel names them
    /// (with or without a leading `bert.`); a shape that `config` does not describe is an error.
    pub fn load(vb: &VarBuilder, config: &Config) -> candle_core::Result<Self> {
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb.clone()
        } else {
            vb.pp("bert")
        };
        let h = config.hidden_size;
        let read = |shape: (usize, usize), name: &str| -> candle_core::Result<Vec<f32>> {
            vb.get(shape, name)?.flatten_all()?.to_vec1::<f32>()
        };
        let vector =
            |length: usize, name: &str| -> candle_core::Result<Vec<f32>> { vb.get(length, name)?.to_vec1::<f32>() };
        // A dense layer's weight, transposed once here: `linear_transposed` reads it so.
        let dense = |outputs: usize, inputs: usize, name: &str| -> candle_core::Result<Dense> {
            let weight = vb.get((outputs, inputs), &format!("{name}.weight"))?;
            Ok([
                weight.t()?.contiguous()?.flatten_all()?.to_vec1::<f32>()?,
                vector(outputs, &format!("{name}.bias"))?,
            ])
        };
        let norm = |name: &str| -> candle_core::Result<Dense> {
            Ok([
                vector(h, &format!("{name}.weight"))?,
                vector(h, &format!("{name}.bias"))?,
            ])
        };
        if config.num_attention_heads == 0 || !h.is_multiple_of(config.num_attention_heads) {
            candle_core::bail!(
                "hidden_size {h} is not a multiple of num_attention_heads {}",
                config.num_attention_heads
            );
        }
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let layer = format!("encoder.layer.{i}");
                let i = config.intermediate_size;
                Ok(Layer {
                    query: dense(h, h, &format!("{layer}.attention.self.query"))?,
                    key: dense(h, h, &format!("{layer}.attention.self.key"))?,
                    value: dense(h, h, &format!("{layer}.attention.self.value"))?,
                    attention_output: dense(h, h, &format!("{layer}.attention.output.dense"))?,
                    attention_norm: norm(&format!("{layer}.attention.output.LayerNorm"))?,
                    up: dense(i, h, &format!("{layer}.intermediate.dense"))?,
                    down: dense(h, i, &format!("{layer}.output.dense"))?,
                    output_norm: norm(&format!("{layer}.output.LayerNorm"))?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let token_types = read((config.type_vocab_size, h), "embeddings.token_type_embeddings.weight")?;
        let mut token_type = vec![0f32; h];
        if let Some(first) = token_types.get(..h) {
            token_type.copy_from_slice(first);
        }
        Ok(Encoder {
            hidden: h,
            heads: config.num_attention_heads,
            eps: config.layer_norm_eps as f32,
            activation: config.hidden_act,
            words: read((config.vocab_size, h), "embeddings.word_embeddings.weight")?,
            positions: read(
                (config.max_position_embeddings, h),
                "embeddings.position_embeddings.weight",
            )?,
            token_type,
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
        })
    }

    /// The last layer's hidden states of each text's tokens, the texts' rows back to back
    /// (`Σ lengths × hidden`). Token ids must be below the vocabulary size and a text no
    /// longer than the position table.
    pub fn forward(&self, texts: &[&[u32]]) -> candle_core::Result<Vec<f32>> {
        let h = self.hidden;
        let (vocabulary, positions) = (self.words.len() / h, self.positions.len() / h);
        if let Some(text) = texts.iter().find(|t| t.len() > positions) {
            candle_core::bail!("a text of {} tokens, the model reads {positions}", text.len());
        }
        if texts.iter().flat_map(|t| t.iter()).any(|&id| id as usize >= vocabulary) {
            candle_core::bail!("a token id outside the vocabulary of {vocabulary}");
        }
        let mut x = Vec::with_capacity(texts.iter().map(|t| t.len()).sum::<usize>() * h);
        for text in texts {
            for (position, &id) in text.iter().enumerate() {
                let word = &self.words[id as usize * h..(id as usize + 1) * h];
                let place = &self.positions[position * h..(position + 1) * h];
                x.extend(
                    word.iter()
                        .zip(place)
                        .zip(&self.token_type)
                        .map(|((w, p), t)| w + p + t),
                );
            }
        }
        let [weight, bias] = &self.embedding_norm;
        let mut x = layer_norm_rows(&x, weight, bias, self.eps);
        let starts: Vec<usize> = texts
            .iter()
            .scan(0, |start, text| {
                let this = *start;
                *start += text.len();
                Some(this)
            })
            .collect();
        for layer in &self.layers {
            x = self.layer(layer, &x, &starts, texts);
        }
        Ok(x)
    }

    fn layer(&self, layer: &Layer, x: &[f32], starts: &[usize], texts: &[&[u32]]) -> Vec<f32> {
        let rows = x.len() / self.hidden;
        let dense =
            |input: &[f32], [weight, bias]: &Dense| linear_transposed(input, &[weight, bias], input.len() / rows);
        let (query, key, value) = (dense(x, &layer.query), dense(x, &layer.key), dense(x, &layer.value));
        let context = self.attend(&query, &key, &value, starts, texts);
        let mut attended = dense(&context, &layer.attention_output);
        add(&mut attended, x);
        let [weight, bias] = &layer.attention_norm;
        let middle = layer_norm_rows(&attended, weight, bias, self.eps);
        let mut up = dense(&middle, &layer.up);
        self.activate(&mut up);
        let mut out = dense(&up, &layer.down);
        add(&mut out, &middle);
        let [weight, bias] = &layer.output_norm;
        layer_norm_rows(&out, weight, bias, self.eps)
    }

    /// Each text's tokens attending to its own tokens, every head, `rows × hidden` with the
    /// heads side by side.
    fn attend(&self, query: &[f32], key: &[f32], value: &[f32], starts: &[usize], texts: &[&[u32]]) -> Vec<f32> {
        let (h, heads) = (self.hidden, self.heads);
        let head = h / heads;
        let scale = 1.0 / (head as f32).sqrt();
        let contexts: Vec<Vec<f32>> = starts
            .par_iter()
            .zip(texts)
            .map(|(&start, text)| {
                let n = text.len();
                let rows = start * h..(start + n) * h;
                let (query, key, value) = (&query[rows.clone()], &key[rows.clone()], &value[rows]);
                let mut context = vec![0f32; n * h];
                let mut scores = vec![0f32; n * n];
                for columns in (0..heads).map(|i| i * head) {
                    multiply(
                        &mut scores,
                        n,
                        false,
                        (n, n, head),
                        View::rows(&query[columns..], h),
                        View::transposed(&key[columns..], h),
                    );
                    for row in scores.chunks_mut(n) {
                        softmax_in_place(row, scale);
                    }
                    multiply(
                        &mut context[columns..],
                        h,
                        false,
                        (n, head, n),
                        View::rows(&scores, n),
                        View::rows(&value[columns..], h),
                    );
                }
                context
            })
            .collect();
        contexts.concat()
    }

    fn activate(&self, x: &mut [f32]) {
        let activation = self.activation;
        x.par_chunks_mut(ROWS_PER_TASK * 64)
            .for_each(|chunk| activate_chunk(chunk, activation));
    }
}

/// `out += x`, in parallel.
fn add(out: &mut [f32], x: &[f32]) {
    const CHUNK: usize = 1 << 14;
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(out, x)| out.iter_mut().zip(x).for_each(|(o, x)| *o += x));
}

simd_versions! {
    /// The activation of each value of `chunk`, in place.
    fn activate_chunk(chunk: &mut [f32], activation: HiddenAct) {
        match activation {
            HiddenAct::Gelu => chunk.iter_mut().for_each(|v| *v = gelu(*v)),
            HiddenAct::GeluApproximate => chunk.iter_mut().for_each(|v| *v = gelu_tanh(*v)),
            HiddenAct::Relu => chunk.iter_mut().for_each(|v| *v = v.max(0.0)),
        }
    }
}

/// `erfc(z)` for `z ≥ 0`, to a relative error below 1.2e-7 (Numerical Recipes' Chebyshev
/// fit), in a form the compiler vectorises: the C library's `erff` is a call per element.
#[inline(always)]
fn erfc_nonnegative(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = 0.170_872_77f32;
    let p = p * t - 0.822_152_23;
    let p = p * t + 1.488_515_9;
    let p = p * t - 1.135_204;
    let p = p * t + 0.278_868_07;
    let p = p * t - 0.186_288_06;
    let p = p * t + 0.096_784_18;
    let p = p * t + 0.374_091_96;
    let p = p * t + 1.000_023_7;
    let p = p * t - 1.265_512_2;
    t * exp_nonpositive((-z * z + p).min(0.0))
}

/// GELU as BERT defines it, `x · Φ(x) = x · (1 − erfc(x / √2) / 2)`.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    let tail = 0.5 * erfc_nonnegative(x.abs() * std::f32::consts::FRAC_1_SQRT_2);
    if x >= 0.0 { x * (1.0 - tail) } else { x * tail }
}

/// GELU's tanh approximation, `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`.
#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    let u = 0.797_884_6 * (x + 0.044_715 * x * x * x);
    let e = exp_nonpositive(-2.0 * u.abs());
    let tanh = (1.0 - e) / (1.0 + e);
    0.5 * x * (1.0 + if u >= 0.0 { tanh } else { -tanh })
}

/// Reads `tensor` as f32 values (for tests that compare against candle's BERT).
#[cfg(test)]
fn values(tensor: &candle_core::Tensor) -> Vec<f32> {
    tensor
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::VarMap;
    use candle_transformers::models::bert::BertModel;

    use super::*;

    #[test]
    fn gelu_matches_the_exact_function() {
        for i in -800..=800 {
            let x = i as f32 / 100.0;
            let exact = 0.5 * f64::from(x) * (1.0 + libm::erf(f64::from(x) / std::f64::consts::SQRT_2));
            assert!(
                (f64::from(gelu(x)) - exact).abs() < 1e-6,
                "gelu({x}) = {}, expected {exact}",
                gelu(x)
            );
            let tanh = 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh());
            assert!((gelu_tanh(x) - tanh).abs() < 1e-5, "gelu_tanh({x})");
        }
    }

    /// Token states agree with candle's BertModel on the same random weights, texts of
    /// different lengths packed against candle's padded, masked batch.
    #[test]
    fn matches_candles_bert() -> candle_core::Result<()> {
        let config: Config = serde_json::from_value(serde_json::json!({
            "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 24, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
            "max_position_embeddings": 12, "type_vocab_size": 2, "initializer_range": 0.02,
            "layer_norm_eps": 1e-12, "pad_token_id": 0, "classifier_dropout": null, "model_type": "bert"
        }))
        .map_err(candle_core::Error::wrap)?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let reference = BertModel::load(vb.clone(), &config)?;
        // Layer norms start at weight 1 and bias 0; other values make the check sharper.
        for (i, var) in varmap.all_vars().iter().enumerate() {
            let shape = var.shape().clone();
            let count = shape.elem_count();
            let values: Vec<f32> = (0..count)
                .map(|j| ((j * 7 + i * 13) % 17) as f32 / 17.0 - 0.45)
                .collect();
            var.set(&Tensor::from_vec(values, shape, &Device::Cpu)?)?;
        }
        let encoder = Encoder::load(&vb, &config)?;
        let texts: [&[u32]; 3] = [&[1, 5, 9, 2], &[1, 7, 3, 8, 11, 6, 2], &[1, 2]];
        let packed = encoder.forward(&texts)?;
        let length = 7;
        let ids: Vec<u32> = texts
            .iter()
            .flat_map(|t| t.iter().copied().chain(std::iter::repeat_n(0, length - t.len())))
            .collect();
        let mask: Vec<u32> = texts
            .iter()
            .flat_map(|t| (0..length).map(move |j| u32::from(j < t.len())))
            .collect();
        let ids = Tensor::from_vec(ids, (3, length), &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, (3, length), &Device::Cpu)?;
        let padded = values(&reference.forward(&ids, &ids.zeros_like()?, Some(&mask))?);
        let mut row = 0;
        for (t, text) in texts.iter().enumerate() {
            for j in 0..text.len() {
                let ours = &packed[row * 16..(row + 1) * 16];
                let theirs = &padded[(t * length + j) * 16..(t * length + j + 1) * 16];
                for (a, b) in ours.iter().zip(theirs) {
                    assert!((a - b).abs() < 1e-4, "text {t} token {j}: {a} vs {b}");
                }
                row += 1;
            }
        }
        Ok(())
    }
}
