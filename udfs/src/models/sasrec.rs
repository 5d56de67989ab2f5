//! A SASRec-style transformer sequence encoder, trained with candle: item + position
//! embeddings (`X'' = embedding(X)`), causal multi-head self-attention blocks with residuals
//! (`U = MultiHeadAttention(X'') + X''`), layer norm and a feed-forward layer, trained by
//! back-propagation on next-item prediction with a full softmax over the catalogue (item
//! embeddings shared as the output layer). The profile of a user is the encoder's output at
//! the last position of their history: a vector in the item space, so `profile · item` ranks
//! the next item. Early stopping keeps the weights with the best validation NDCG@10 (each
//! user's last training item held out); a refit then trains again for the best epoch count
//! with those items included.
//!
//! With item features (e.g. text embeddings of a pretrained language model) an item is
//! `E_id(i) + W·x_i`, the frozen vector `x_i` projected by a learned `W` (UniSRec's adaptor
//! in its simplest form), both as input and as output layer. Items that have features but no
//! interactions (cold items) keep `E_id = 0` and stay out of the training softmax, so they are
//! represented by their features alone instead of being taught to score low.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Optimizer, VarBuilder, VarMap};
use rayon::prelude::*;

use super::als::SplitMix;
use super::encoder_block::{Block, Dropout};

/// Settings of a model and its training.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct SasRecConfig {
    /// Items with interactions: the training softmax's catalogue, indices 1..=items.
    pub items: usize,
    /// Items known only from the feature table, indices after the trained ones.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cold_items: usize,
    /// Dimensions of the frozen item-feature vectors; 0 for ids alone.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub feature_dim: usize,
    /// The share of items whose id embedding a training step drops, so that the model learns
    /// to rank items by their features alone, as it must rank new ones; 0 without features.
    #[serde(default, skip_serializing_if = "is_zero_rate")]
    pub id_dropout: f32,
    pub dim: usize,
    pub layers: usize,
    pub heads: usize,
    pub max_len: usize,
    pub dropout: f32,
    pub epochs: usize,
    /// Training stops when validation NDCG@10 has not improved for this many epochs.
    #[serde(default = "default_patience")]
    pub patience: usize,
    /// After early stopping has chosen the epoch count, train again from the same start on
    /// every item, the held-out ones included, for that many epochs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refit: bool,
    pub learning_rate: f64,
    pub batch: usize,
    pub seed: u64,
}

/// The patience of models and calls that do not set one: three checks five epochs apart.
pub fn default_patience() -> usize {
    15
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_zero_rate(rate: &f32) -> bool {
    *rate == 0.0
}

/// The frozen item features `(1 + items + cold_items, feature_dim)` (row 0, padding, and items
/// without features are zeros) and their learned projection into the item space.
struct ItemFeatures {
    features: Tensor,
    projection: candle_nn::Linear,
}

/// The encoder. Item 0 is padding; catalogue items are 1..=items, cold items after them.
pub struct SasRec {
    config: SasRecConfig,
    /// Dropout masks come from this seeded generator (candle's CPU generator cannot be seeded).
    random: std::sync::Mutex<SplitMix>,
    items: Embedding,
    features: Option<ItemFeatures>,
    positions: Embedding,
    blocks: Vec<Block>,
    norm: LayerNorm,
}

impl SasRec {
    /// The encoder with the variables of `vb`. A model with item features takes them from
    /// `features` (training: they are data, not variables) or else from `vb` (a saved model).
    pub fn new(config: SasRecConfig, vb: VarBuilder, features: Option<Tensor>) -> Result<Self> {
        let d = config.dim;
        let blocks = (0..config.layers)
            .map(|i| Block::new(d, vb.pp(format!("block{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let rows = config.items + config.cold_items + 1;
        let features = match (config.feature_dim, features) {
            (0, _) => None,
            (feature_dim, features) => Some(ItemFeatures {
                features: match features {
                    Some(features) => features,
                    None => vb.get((rows, feature_dim), "features")?,
                },
                projection: candle_nn::linear_no_bias(feature_dim, d, vb.pp("projection"))?,
            }),
        };
        Ok(Self {
            items: candle_nn::embedding(rows, d, vb.pp("items"))?,
            features,
            positions: candle_nn::embedding(config.max_len, d, vb.pp("positions"))?,
            blocks,
            norm: candle_nn::layer_norm(d, 1e-6, vb.pp("norm"))?,
            random: std::sync::Mutex::new(SplitMix::new(config.seed ^ 0x5EED)),
            config,
        })
    }

    /// The generator of the next `count` dropout draws; later ones start after them.
    fn draws(&self, count: usize) -> SplitMix {
        let mut random = self.random.lock().expect("dropout generator");
        let start = random.clone();
        random.skip(count as u64);
        start
    }

    fn dropout(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let p = self.config.dropout;
        if !train || p <= 0.0 {
            return Ok(x.clone());
        }
        let count = x.elem_count();
        let dropout = Dropout {
            rate: p,
            draws: self.draws(count),
        };
        // The same draws as one after another, made in parallel.
        const DRAWS_PER_TASK: usize = 1 << 14;
        let mut mask = vec![0f32; count];
        mask.par_chunks_mut(DRAWS_PER_TASK)
            .enumerate()
            .for_each(|(task, mask)| dropout.factors(task * DRAWS_PER_TASK, mask));
        x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)
    }

    /// Hidden states `(batch, length, dim)` of left-padded id sequences `(batch, length)`,
    /// `length ≤ max_len`. Positions count back from the latest item, so a history encodes the
    /// same whatever the padding: padded positions are zeroed and never attended to.
    pub fn encode(&self, ids: &Tensor, train: bool) -> Result<Tensor> {
        self.encode_with(ids, &self.item_table()?, train)
    }

    /// [`Self::encode`] reading items from `table`, [`Self::item_table`] made once for a
    /// training step that also scores against it.
    fn encode_with(&self, ids: &Tensor, table: &Tensor, train: bool) -> Result<Tensor> {
        let (mut x, keys) = self.embedded(ids, table, train)?;
        let (batch, length) = ids.dims2()?;
        let (d, heads) = (self.config.dim, self.config.heads);
        for block in &self.blocks {
            let training = train.then(|| Dropout {
                rate: self.config.dropout,
                draws: self.draws(Dropout::draws_per_block(batch, length, d, heads)),
            });
            x = block.forward(&x, &keys, heads, training)?;
        }
        normalize(&self.norm, &x)
    }

    /// The blocks' input — item and position embeddings, dropped out when training, padding
    /// zeroed — and the flags of the positions that hold an item.
    fn embedded(&self, ids: &Tensor, table: &Tensor, train: bool) -> Result<(Tensor, Vec<bool>)> {
        let (batch, length) = ids.dims2()?;
        let max_len = self.config.max_len;
        if length > max_len {
            candle_core::bail!("sasrec: {length} positions, the model reads {max_len}");
        }
        let d = self.config.dim;
        let device = ids.device();
        let keys: Vec<bool> = ids
            .flatten_all()?
            .to_vec1::<u32>()?
            .into_iter()
            .map(|id| id != 0)
            .collect();
        let keep =
            Tensor::from_iter(keys.iter().map(|&key| f32::from(u8::from(key))), device)?.reshape((batch, length, 1))?;
        let positions = Tensor::arange((max_len - length) as u32, max_len as u32, device)?;
        let items = table.index_select(&ids.flatten_all()?, 0)?;
        let items = (items * (d as f64).sqrt())?.reshape((batch, length * d))?;
        let positions = self.positions.forward(&positions)?.flatten_all()?;
        let x = super::layers::add_rows(&items, &positions)?.reshape((batch, length, d))?;
        let x = self.dropout(&x, train)?.broadcast_mul(&keep)?;
        Ok((x, keys))
    }

    /// Every item's representation, padding row first: `E_id`, plus `W·x` with features.
    fn item_table(&self) -> Result<Tensor> {
        let ids = self.items.embeddings();
        match &self.features {
            None => Ok(ids.clone()),
            Some(text) => ids + text.projection.forward(&text.features)?,
        }
    }

    /// The item table of one training step: with `id_dropout`, a random share of the items
    /// lose their id embedding (the others' scaled up, as dropout does), so that in the inputs
    /// and in the softmax alike those items are their features alone — as new items are.
    fn training_item_table(&self) -> Result<Tensor> {
        let rate = self.config.id_dropout;
        let (Some(text), true) = (&self.features, rate > 0.0) else {
            return self.item_table();
        };
        let ids = self.items.embeddings();
        let rows = ids.dim(0)?;
        let dropout = Dropout {
            rate,
            draws: self.draws(rows),
        };
        let keep = Tensor::from_iter((0..rows).map(|i| dropout.factor(i)), ids.device())?.reshape((rows, 1))?;
        ids.broadcast_mul(&keep)? + text.projection.forward(&text.features)?
    }

    /// The representations the training softmax ranks: padding and the trained items.
    fn trained_item_table(&self) -> Result<Tensor> {
        self.item_table()?.narrow(0, 0, self.config.items + 1)
    }

    /// The item vectors (without the padding row), trained items then cold ones,
    /// `(items + cold_items) × dim`.
    pub fn item_vectors(&self) -> Result<Vec<f32>> {
        self.item_table()?
            .narrow(0, 1, self.config.items + self.config.cold_items)?
            .flatten_all()?
            .to_vec1::<f32>()
    }

    /// One profile per sequence (item indices 1..=items, oldest first): the output at the
    /// last position of its last `max_len` items.
    pub fn profiles(&self, sequences: &[Vec<u32>]) -> Result<Vec<f32>> {
        let d = self.config.dim;
        let mut out = vec![0f32; sequences.len() * d];
        // Histories of like length together, so that little of a chunk is padding.
        let mut by_length: Vec<usize> = (0..sequences.len()).collect();
        by_length.sort_by_key(|&s| sequences[s].len());
        for chunk in by_length.chunks(256) {
            let ids = self.padded(chunk.iter().map(|&s| sequences[s].as_slice()))?;
            let hidden = self.encode(&ids, false)?;
            let last = hidden.narrow(1, hidden.dim(1)? - 1, 1)?.squeeze(1)?;
            for (&s, profile) in chunk.iter().zip(last.flatten_all()?.to_vec1::<f32>()?.chunks(d)) {
                out[s * d..(s + 1) * d].copy_from_slice(profile);
            }
        }
        Ok(out)
    }

    /// The last block's attention of each sequence's latest item over the items it read (the
    /// last `max_len`), averaged over heads: for each sequence, (position in the sequence,
    /// weight) pairs, padding left out. What [`Self::profiles`] pooled, item by item.
    pub fn attention(&self, sequences: &[Vec<u32>]) -> Result<Vec<Vec<(usize, f32)>>> {
        let Some(last) = self.blocks.last() else {
            return Ok(vec![Vec::new(); sequences.len()]);
        };
        let mut out = vec![Vec::new(); sequences.len()];
        let mut by_length: Vec<usize> = (0..sequences.len()).collect();
        by_length.sort_by_key(|&s| sequences[s].len());
        for chunk in by_length.chunks(256) {
            let ids = self.padded(chunk.iter().map(|&s| sequences[s].as_slice()))?;
            let (input, keys) = self.last_block_input(&ids)?;
            let length = ids.dim(1)?;
            let weights = last.last_attention(&input, &keys, self.config.heads)?;
            for (&s, row) in chunk.iter().zip(weights.chunks(length)) {
                let read = sequences[s].len().min(length);
                let first = sequences[s].len() - read;
                out[s] = (0..read).map(|j| (first + j, row[length - read + j])).collect();
            }
        }
        Ok(out)
    }

    /// What the last block of an inference pass reads, and the key flags.
    fn last_block_input(&self, ids: &Tensor) -> Result<(Tensor, Vec<bool>)> {
        let (mut x, keys) = self.embedded(ids, &self.item_table()?, false)?;
        for block in &self.blocks[..self.blocks.len().saturating_sub(1)] {
            x = block.forward(&x, &keys, self.config.heads, None)?;
        }
        Ok((x, keys))
    }

    /// Left-padded `(n, length)` ids of the last `max_len` items of each sequence, `length`
    /// the longest of those tails.
    fn padded<'a>(&self, sequences: impl Iterator<Item = &'a [u32]> + Clone) -> Result<Tensor> {
        let (ids, length) = self.padded_ids(sequences);
        let rows = ids.len() / length;
        Tensor::from_vec(ids, (rows, length), &Device::Cpu)
    }

    /// The ids of [`Self::padded`], row after row, and the length of a row.
    fn padded_ids<'a>(&self, sequences: impl Iterator<Item = &'a [u32]> + Clone) -> (Vec<u32>, usize) {
        let max_len = self.config.max_len;
        let length = sequences
            .clone()
            .map(|s| s.len().min(max_len))
            .max()
            .unwrap_or(0)
            .max(1);
        let mut ids = Vec::new();
        for sequence in sequences {
            let tail = &sequence[sequence.len().saturating_sub(length)..];
            ids.extend(std::iter::repeat_n(0u32, length - tail.len()));
            ids.extend_from_slice(tail);
        }
        (ids, length)
    }
}

/// Layer norm that back-propagates. candle's `LayerNorm::forward` runs, on a contiguous tensor,
/// a fused kernel that records no backward pass: gradients would stop there, and of the whole
/// encoder only the item embeddings (as the output layer) would learn.
fn normalize(norm: &LayerNorm, x: &Tensor) -> Result<Tensor> {
    match norm.bias() {
        Some(bias) => super::layers::layer_norm(x, norm.weight(), bias, norm.eps() as f32),
        None => candle_core::bail!("sasrec: layer norms have a bias"),
    }
}

/// NDCG@10 of predicting each sequence's last item from the rest, seen items excluded.
fn validation_ndcg(model: &SasRec, sequences: &[&[u32]]) -> Result<f64> {
    let histories: Vec<Vec<u32>> = sequences.iter().map(|s| s[..s.len() - 1].to_vec()).collect();
    let profiles = model.profiles(&histories)?;
    let d = model.config.dim;
    let items = model
        .trained_item_table()?
        .narrow(0, 1, model.config.items)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let mut total = 0.0;
    for (u, sequence) in sequences.iter().enumerate() {
        let profile = &profiles[u * d..(u + 1) * d];
        let target = *sequence.last().expect("two items") as usize - 1;
        let score = |i: usize| crate::vector::kernels::dot(profile, &items[i * d..(i + 1) * d]);
        let seen: std::collections::HashSet<u32> = histories[u].iter().copied().collect();
        let target_score = score(target);
        let better = (0..model.config.items)
            .filter(|&i| i != target && !seen.contains(&(i as u32 + 1)) && score(i) > target_score)
            .take(10)
            .count();
        if better < 10 {
            total += 1.0 / ((better + 2) as f64).log2();
        }
    }
    Ok(total / sequences.len().max(1) as f64)
}

/// What training did: epochs run (of the model kept: the refit's with `refit`), the last
/// training loss, the best validation NDCG@10 and the epoch that reached it, and whether
/// `on_epoch` stopped it.
pub struct TrainingReport {
    pub epochs: usize,
    pub loss: f32,
    pub validation_ndcg: f64,
    pub best_epoch: usize,
    pub stopped: bool,
}

/// Trains on `sequences` (item indices 1..=items, oldest first), with the frozen item
/// `features` `(1 + items + cold_items, feature_dim)` when the config has them.
/// `on_epoch(done, loss, ndcg)` may stop training by returning false; `done` counts on through
/// a refit. Returns the variables of the best model, or with `refit` of the model retrained on
/// every item for the best epoch count.
pub fn train(
    sequences: &[Vec<u32>],
    features: Option<&Tensor>,
    config: &SasRecConfig,
    mut on_epoch: impl FnMut(usize, f32, Option<f64>) -> bool,
) -> Result<(VarMap, TrainingReport)> {
    let (varmap, report) = train_run(sequences, features, config, true, &mut on_epoch)?;
    if !config.refit || report.stopped || report.best_epoch == 0 || !report.loss.is_finite() {
        return Ok((varmap, report));
    }
    drop(varmap);
    let refit = SasRecConfig {
        epochs: report.best_epoch,
        ..*config
    };
    let ran = report.epochs;
    let (varmap, refitted) = train_run(sequences, features, &refit, false, &mut |done, loss, _| {
        on_epoch(ran + done, loss, None)
    })?;
    let report = TrainingReport {
        epochs: refitted.epochs,
        loss: refitted.loss,
        stopped: refitted.stopped,
        ..report
    };
    Ok((varmap, report))
}

/// One training run: with `hold_out`, each user's last item is held out for early stopping and
/// the best check's weights are kept; without, every item is trained on for `config.epochs`.
fn train_run(
    sequences: &[Vec<u32>],
    features: Option<&Tensor>,
    config: &SasRecConfig,
    hold_out: bool,
    on_epoch: &mut impl FnMut(usize, f32, Option<f64>) -> bool,
) -> Result<(VarMap, TrainingReport)> {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let model = SasRec::new(
        *config,
        VarBuilder::from_varmap(&varmap, DType::F32, &device),
        features.cloned(),
    )?;
    super::training::seeded_init(&varmap, &mut super::als::SplitMix::new(config.seed))?;
    if config.cold_items > 0 {
        // Cold items get no gradient (never a target, never in a history), so E_id stays 0
        // and their features alone represent them.
        let data = varmap.data().lock().expect("variables");
        if let Some(var) = data.get("items.weight") {
            let trained = var.as_tensor().narrow(0, 0, config.items + 1)?;
            let cold = Tensor::zeros((config.cold_items, config.dim), DType::F32, &device)?;
            var.set(&Tensor::cat(&[trained, cold], 0)?)?;
        }
    }
    let mut optimizer = super::training::optimizer(&varmap, config.learning_rate)?;
    // With hold_out, validation holds out each user's last item and training sees the items
    // before it; without, training sees them all.
    let usable: Vec<&[u32]> = sequences
        .iter()
        .filter(|s| s.len() >= 2 + usize::from(hold_out))
        .map(|s| s.as_slice())
        .collect();
    let training: Vec<&[u32]> = if hold_out {
        usable.iter().map(|s| &s[..s.len() - 1]).collect()
    } else {
        usable.clone()
    };
    let mut order: Vec<usize> = (0..training.len()).collect();
    let mut random = super::als::SplitMix::new(config.seed);
    let mut best: Option<(f64, Vec<(String, Tensor)>)> = None;
    let mut report = TrainingReport {
        epochs: 0,
        loss: f32::NAN,
        validation_ndcg: 0.0,
        best_epoch: 0,
        stopped: false,
    };
    // Validation runs every five epochs, or more often when the patience is shorter.
    let check_every = config.patience.clamp(1, 5);
    let mut best_epoch = 0;
    for epoch in 1..=config.epochs {
        let (mut loss_sum, mut batches) = (0.0f32, 0);
        for chunk in length_bucketed_batches(&mut order, &training, config.batch, &mut random) {
            let inputs = model.padded(chunk.iter().map(|&u| &training[u][..training[u].len() - 1]))?;
            let (targets, _) = model.padded_ids(chunk.iter().map(|&u| &training[u][1..]));
            let table = model.training_item_table()?;
            let hidden = model.encode_with(&inputs, &table, true)?;
            let (b, l, d) = hidden.dims3()?;
            // Only positions with a next item are scored: padding would cost a full row of
            // logits each and contribute nothing.
            let positions: Vec<u32> = (0..targets.len() as u32)
                .filter(|&p| targets[p as usize] != 0)
                .collect();
            let targets: Vec<u32> = targets.into_iter().filter(|&t| t != 0).collect();
            let positions = Tensor::from_vec(positions, targets.len(), hidden.device())?;
            let hidden = hidden.reshape((b * l, d))?.index_select(&positions, 0)?;
            let scored = table.narrow(0, 0, config.items + 1)?;
            let loss = super::cross_entropy::softmax_cross_entropy(&hidden, &scored, targets)?;
            optimizer.backward_step(&loss)?;
            loss_sum += loss.to_scalar::<f32>()?;
            batches += 1;
        }
        report.epochs = epoch;
        report.loss = loss_sum / batches.max(1) as f32;
        if !report.loss.is_finite() {
            on_epoch(epoch, report.loss, None);
            break;
        }
        let ndcg = if hold_out && (epoch % check_every == 0 || epoch == config.epochs) {
            let ndcg = validation_ndcg(&model, &usable)?;
            if best.as_ref().is_none_or(|(b, _)| ndcg > *b) {
                let snapshot = varmap
                    .data()
                    .lock()
                    .expect("variables")
                    .iter()
                    .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
                    .collect::<Result<Vec<_>>>()?;
                best = Some((ndcg, snapshot));
                best_epoch = epoch;
            }
            Some(ndcg)
        } else {
            None
        };
        let patience_spent = ndcg.is_some() && epoch - best_epoch >= config.patience;
        if !on_epoch(epoch, report.loss, ndcg) {
            report.stopped = true;
            break;
        }
        if patience_spent {
            break;
        }
    }
    if let Some((ndcg, snapshot)) = best {
        report.validation_ndcg = ndcg;
        report.best_epoch = best_epoch;
        let data = varmap.data().lock().expect("variables");
        for (name, tensor) in snapshot {
            if let Some(var) = data.get(&name) {
                var.set(&tensor)?;
            }
        }
    }
    Ok((varmap, report))
}

/// Training batches for one epoch: users shuffled, then sorted by history length within
/// windows of 16 batches, so that a batch pads little (memory and time follow the lengths
/// read, not `max_len`), and the batches shuffled again.
fn length_bucketed_batches(
    order: &mut [usize],
    training: &[&[u32]],
    batch: usize,
    random: &mut super::als::SplitMix,
) -> Vec<Vec<usize>> {
    super::training::shuffle(order, random);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for window in order.chunks_mut(batch * 16) {
        window.sort_by_key(|&u| training[u].len());
        batches.extend(window.chunks(batch).map(<[usize]>::to_vec));
    }
    let mut shuffled: Vec<usize> = (0..batches.len()).collect();
    super::training::shuffle(&mut shuffled, random);
    shuffled.into_iter().map(|b| std::mem::take(&mut batches[b])).collect()
}

/// Loads a saved model's variables (and its item features, saved as `features`).
pub fn load(config: SasRecConfig, tensors: std::collections::HashMap<String, Tensor>) -> Result<SasRec> {
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    SasRec::new(config, vb, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loss reaches every variable of the encoder — attention, feed-forward, layer norms,
    /// positions — and not only the item embeddings it scores against.
    #[test]
    fn every_variable_gets_a_gradient() -> Result<()> {
        let config = SasRecConfig {
            items: 20,
            cold_items: 0,
            feature_dim: 0,
            id_dropout: 0.0,
            dim: 8,
            layers: 2,
            heads: 2,
            max_len: 6,
            dropout: 0.0,
            epochs: 1,
            patience: 15,
            refit: false,
            learning_rate: 0.01,
            batch: 2,
            seed: 7,
        };
        let varmap = VarMap::new();
        let model = SasRec::new(config, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu), None)?;
        super::super::training::seeded_init(&varmap, &mut super::super::als::SplitMix::new(7))?;
        let ids = Tensor::from_vec((0..12u32).collect::<Vec<_>>(), (2, 6), &Device::Cpu)?;
        let hidden = model.encode(&ids, true)?.reshape((12, 8))?;
        let targets = (0..12u32).map(|t| (t * 7) % 20 + 1).collect();
        let loss = super::super::cross_entropy::softmax_cross_entropy(&hidden, model.items.embeddings(), targets)?;
        let gradients = loss.backward()?;
        let data = varmap.data().lock().expect("variables");
        assert!(data.len() > 10, "{} variables", data.len());
        for (name, var) in data.iter() {
            let magnitude = match gradients.get(var.as_tensor()) {
                Some(gradient) => gradient.sqr()?.sum_all()?.to_scalar::<f32>()?,
                None => 0.0,
            };
            assert!(magnitude > 0.0, "{name} gets no gradient");
        }
        Ok(())
    }
}
