//! item2vec: skip-gram with negative sampling (word2vec's SGNS) over each user's time-ordered
//! items, so items that appear near each other in users' histories get similar vectors. Trained
//! on one thread, so a fixed seed gives the same model.

use super::als::SplitMix;

/// Training settings.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Item2VecConfig {
    pub dim: usize,
    pub epochs: usize,
    /// Items on each side of a position that count as its context.
    pub window: usize,
    pub negatives: usize,
    pub learning_rate: f32,
    pub seed: u64,
}

/// Trained vectors: `items × dim`, row-major, and the mean loss of the last epoch.
#[derive(Debug)]
pub struct Item2VecModel {
    pub vectors: Vec<f32>,
    pub loss: f32,
}

/// A table for drawing negatives with probability ∝ count^0.75.
fn negative_table(counts: &[u64], size: usize) -> Vec<u32> {
    let weights: Vec<f64> = counts.iter().map(|&c| (c as f64).powf(0.75)).collect();
    let total: f64 = weights.iter().sum();
    let mut table = Vec::with_capacity(size);
    for (item, w) in weights.iter().enumerate() {
        let slots = ((w / total) * size as f64).round() as usize;
        table.extend(std::iter::repeat_n(item as u32, slots.max(1)));
    }
    table
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x.clamp(-30.0, 30.0)).exp())
}

/// Trains on `sequences` (item indices in order, one list per user) over `items` items.
/// `on_epoch(done, loss)` is told after every epoch and may stop training by returning false.
pub fn train(
    sequences: &[Vec<u32>],
    items: usize,
    config: &Item2VecConfig,
    mut on_epoch: impl FnMut(usize, f32) -> bool,
) -> Item2VecModel {
    let d = config.dim;
    let mut random = SplitMix::new(config.seed);
    let mut input: Vec<f32> = (0..items * d).map(|_| (random.next_f32() - 0.5) / d as f32).collect();
    let mut output = vec![0.0f32; items * d];
    let mut counts = vec![0u64; items];
    for sequence in sequences {
        for &item in sequence {
            counts[item as usize] += 1;
        }
    }
    let table = negative_table(&counts, 1 << 20);
    let total_steps = (config.epochs * sequences.iter().map(Vec::len).sum::<usize>()).max(1);
    let mut step = 0usize;
    let mut gradient = vec![0.0f32; d];
    let mut loss = 0.0f32;
    for epoch in 0..config.epochs {
        let (mut epoch_loss, mut pairs) = (0.0f64, 0u64);
        for sequence in sequences {
            for (position, &center) in sequence.iter().enumerate() {
                let rate = config.learning_rate * (1.0 - step as f32 / total_steps as f32).max(1e-4);
                step += 1;
                let start = position.saturating_sub(config.window);
                let end = (position + config.window + 1).min(sequence.len());
                for (other, &context) in sequence[start..end].iter().enumerate() {
                    if start + other == position {
                        continue;
                    }
                    let c = center as usize * d;
                    gradient.iter_mut().for_each(|g| *g = 0.0);
                    for sample in 0..=config.negatives {
                        let (target, label) = if sample == 0 {
                            (context as usize, 1.0)
                        } else {
                            let drawn = table[(random.next_f32() * table.len() as f32) as usize % table.len()];
                            if drawn == context {
                                continue;
                            }
                            (drawn as usize, 0.0)
                        };
                        let t = target * d;
                        let score = crate::vector::kernels::dot(&input[c..c + d], &output[t..t + d]);
                        let p = sigmoid(score);
                        epoch_loss -= f64::from(if label == 1.0 {
                            p.max(1e-7).ln()
                        } else {
                            (1.0 - p).max(1e-7).ln()
                        });
                        let g = rate * (label - p);
                        for k in 0..d {
                            gradient[k] += g * output[t + k];
                            output[t + k] += g * input[c + k];
                        }
                    }
                    input[c..c + d].iter_mut().zip(&gradient).for_each(|(x, g)| *x += g);
                    pairs += 1;
                }
            }
        }
        loss = (epoch_loss / pairs.max(1) as f64) as f32;
        if !on_epoch(epoch + 1, loss) {
            break;
        }
    }
    Item2VecModel { vectors: input, loss }
}
