//! Model-free text embeddings: words, word pairs and character 3–5-grams of each word, hashed
//! (FNV-1a, with a sign bit so collisions cancel rather than pile up) into `dim` buckets,
//! weighted `1 + ln(tf)` — times `idf` when a corpus is at hand — and L2-normalised.
//! Deterministic: the same text gives the same vector on every machine.

use std::collections::HashMap;

/// The features of `text` with their counts, each as its 64-bit hash.
pub fn features(text: &str) -> HashMap<u64, u32> {
    let lowered = text.to_lowercase();
    let words: Vec<&str> = lowered
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut counts = HashMap::new();
    let mut add = |kind: u8, feature: &str| {
        *counts.entry(fnv1a(kind, feature.as_bytes())).or_insert(0) += 1;
    };
    for word in &words {
        add(b'w', word);
        let marked: Vec<char> = format!("<{word}>").chars().collect();
        for n in 3..=5 {
            for gram in marked.windows(n) {
                add(b'c', &gram.iter().collect::<String>());
            }
        }
    }
    for pair in words.windows(2) {
        add(b'p', &format!("{} {}", pair[0], pair[1]));
    }
    counts
}

fn fnv1a(kind: u8, bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in std::iter::once(&kind).chain(bytes) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The embedding of features weighted by `idf` (1 for every feature when `None`); `None` for
/// a text without words.
pub fn embed(features: &HashMap<u64, u32>, dim: usize, idf: Option<&HashMap<u64, f32>>) -> Option<Vec<f32>> {
    if features.is_empty() {
        return None;
    }
    let mut vector = vec![0.0f32; dim];
    // In hash order: a map's own order changes from one map to the next, and with it the
    // last bits of the sums.
    let mut sorted: Vec<(u64, u32)> = features.iter().map(|(&hash, &count)| (hash, count)).collect();
    sorted.sort_unstable();
    for (hash, count) in sorted {
        let weight = (1.0 + (count as f32).ln()) * idf.and_then(|w| w.get(&hash)).copied().unwrap_or(1.0);
        let sign = if hash >> 63 == 1 { -1.0 } else { 1.0 };
        vector[(hash % dim as u64) as usize] += sign * weight;
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return None;
    }
    vector.iter_mut().for_each(|x| *x /= norm);
    Some(vector)
}

/// Smoothed inverse document frequencies, `ln((1 + n) / (1 + df)) + 1`, over `documents`.
pub fn idf(documents: &[HashMap<u64, u32>]) -> HashMap<u64, f32> {
    let mut frequency: HashMap<u64, u32> = HashMap::new();
    for document in documents {
        for &hash in document.keys() {
            *frequency.entry(hash).or_insert(0) += 1;
        }
    }
    let n = documents.len() as f32;
    frequency
        .into_iter()
        .map(|(hash, df)| (hash, ((1.0 + n) / (1.0 + df as f32)).ln() + 1.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn similar_texts_are_closer_than_different_ones() {
        let e = |t: &str| embed(&features(t), 256, None).unwrap();
        let lamp = e("A warm reading lamp for the desk");
        let lamps = e("Warm desk lamps for reading");
        let knife = e("Sharp kitchen knife set");
        assert!(cosine(&lamp, &lamps) > 0.5, "{}", cosine(&lamp, &lamps));
        assert!(cosine(&lamp, &knife) < 0.2, "{}", cosine(&lamp, &knife));
        assert!((cosine(&lamp, &lamp) - 1.0).abs() < 1e-5);
        assert_eq!(e("Lamp"), e("lamp!"));
        // Bit for bit, whatever order the features' map holds them in.
        for _ in 0..20 {
            assert_eq!(e("a red apple and a green pear"), e("a red apple and a green pear"));
        }
        assert!(embed(&features("  ... "), 256, None).is_none());
    }

    #[test]
    fn rare_words_weigh_more_with_idf() {
        let documents: Vec<_> = ["red lamp", "red chair", "red table", "blue lamp"]
            .iter()
            .map(|t| features(t))
            .collect();
        let weights = idf(&documents);
        let red = fnv1a(b'w', b"red");
        let blue = fnv1a(b'w', b"blue");
        assert!(weights[&blue] > weights[&red]);
    }
}
