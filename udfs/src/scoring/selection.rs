//! The top-k kernel: scores a block of users against every candidate item with one matrix
//! multiply (the `gemm` crate, on flat f32 buffers) and keeps each user's k best items in a
//! bounded, sorted list. Blocks of users run in parallel on rayon's pool.

use rayon::prelude::*;

/// How a user vector and an item vector are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Inner product; higher is better.
    Dot,
    /// Cosine similarity; higher is better. Zero vectors match nothing.
    Cosine,
    /// Euclidean distance; lower is better.
    L2,
}

impl Metric {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "dot" | "ip" | "inner_product" => Some(Metric::Dot),
            "cosine" | "cos" => Some(Metric::Cosine),
            "l2" | "euclidean" => Some(Metric::L2),
            _ => None,
        }
    }
}

/// Candidate items as one row-major matrix, prepared for `metric`.
#[derive(Debug)]
pub struct ItemMatrix {
    values: Vec<f32>,
    dim: usize,
    len: usize,
    metric: Metric,
    /// ‖item‖², for L2.
    squared_norms: Vec<f32>,
    /// Items that can be recommended (a zero vector has no cosine; a NULL vector no score).
    usable: Vec<bool>,
}

impl ItemMatrix {
    /// `rows` are the items' vectors (`None` for a NULL vector), all of dimension `dim`.
    pub fn new<'a>(rows: impl Iterator<Item = Option<&'a [f32]>>, dim: usize, metric: Metric) -> Self {
        let mut values = Vec::new();
        let mut usable = Vec::new();
        let mut squared_norms = Vec::new();
        for row in rows {
            let start = values.len();
            match row {
                Some(vector) => values.extend_from_slice(vector),
                None => values.extend(std::iter::repeat_n(0.0, dim)),
            }
            let norm2: f32 = values[start..].iter().map(|x| x * x).sum();
            let ok = row.is_some() && (metric != Metric::Cosine || norm2 > 0.0);
            if metric == Metric::Cosine && ok {
                let inverse = 1.0 / norm2.sqrt();
                values[start..].iter_mut().for_each(|x| *x *= inverse);
            }
            squared_norms.push(norm2);
            usable.push(ok);
        }
        Self {
            len: usable.len(),
            values,
            dim,
            metric,
            squared_norms,
            usable,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Item `item`'s vector as scored: unit length under cosine.
    pub fn row(&self, item: u32) -> &[f32] {
        let start = item as usize * self.dim;
        &self.values[start..start + self.dim]
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }
}

/// What to keep for each user.
#[derive(Debug, Clone, Copy)]
pub struct Selection {
    pub k: usize,
    /// Keep only items scoring above this (for L2: closer than this).
    pub threshold: Option<f32>,
}

/// Users per matrix multiply: gemm packs each chunk of items once per block, so the larger the
/// block the less of its time goes to packing (20k × 20k × 64: 0.44–0.47 s with 256 users,
/// 0.51–0.54 s with 64, four runs each).
pub const BLOCK: usize = 256;

/// Items per matrix multiply: a block's scores for one chunk (`BLOCK × CHUNK` floats, 512 KB)
/// stay in the core's cache while each user's list takes its best, so scores never travel
/// to main memory and back.
const CHUNK: usize = 512;

/// The working memory [`top_k`] takes for `users` users and `items` items, besides its
/// output: one block's scores for one chunk of items on each thread that runs at once.
pub fn working_bytes(users: usize, items: usize) -> usize {
    let threads_busy = users.div_ceil(BLOCK).min(rayon::current_num_threads());
    threads_busy * BLOCK.min(users) * CHUNK.min(items) * size_of::<f32>()
}

/// The best items of each user, best first, as (item index, score). `users` holds one
/// optional vector per user; `excluded(u)` lists, ascending, the item indices user `u` must
/// not get.
pub fn top_k<'a, E>(
    users: &[Option<&'a [f32]>],
    items: &ItemMatrix,
    selection: Selection,
    excluded: E,
) -> Vec<Vec<(u32, f32)>>
where
    E: Fn(usize) -> &'a [u32] + Sync,
{
    let blocks: Vec<usize> = (0..users.len()).step_by(BLOCK).collect();
    let all_usable = items.usable.iter().all(|&ok| ok);
    let per_block: Vec<Vec<Vec<(u32, f32)>>> = blocks
        .par_iter()
        .map_init(Vec::new, |scratch, &start| {
            let end = (start + BLOCK).min(users.len());
            let block = Block {
                users: &users[start..end],
                first_user: start,
                items,
                selection,
                all_usable,
            };
            block.score(&excluded, scratch)
        })
        .collect();
    per_block.into_iter().flatten().collect()
}

/// One block of users scored against every item.
struct Block<'u, 'a> {
    users: &'u [Option<&'a [f32]>],
    first_user: usize,
    items: &'u ItemMatrix,
    selection: Selection,
    all_usable: bool,
}

impl Block<'_, '_> {
    /// Each user's list. `scratch` is reused between blocks of one thread.
    fn score<'a, E>(&self, excluded: &E, scratch: &mut Vec<f32>) -> Vec<Vec<(u32, f32)>>
    where
        E: Fn(usize) -> &'a [u32],
    {
        let (items, users) = (self.items, self.users);
        let (dim, n) = (items.dim, items.len);
        // A NULL user, or a zero user under cosine, has no scores: it gets no rows.
        let mut lhs = vec![0.0f32; users.len() * dim];
        let mut user_norms2 = vec![0.0f32; users.len()];
        let mut active = vec![false; users.len()];
        for (u, user) in users.iter().enumerate() {
            if let Some(vector) = user {
                let norm2: f32 = vector.iter().map(|x| x * x).sum();
                user_norms2[u] = norm2;
                active[u] = items.metric != Metric::Cosine || norm2 > 0.0;
                let scale = if items.metric == Metric::Cosine && norm2 > 0.0 {
                    1.0 / norm2.sqrt()
                } else {
                    1.0
                };
                lhs[u * dim..(u + 1) * dim]
                    .iter_mut()
                    .zip(*vector)
                    .for_each(|(dst, x)| *dst = x * scale);
            }
        }
        let mut lists: Vec<TopList> = (0..users.len())
            .map(|u| {
                let floor = match (self.selection.threshold, items.metric) {
                    (None, _) => f32::NEG_INFINITY,
                    (Some(t), Metric::L2) => user_norms2[u] - t * t,
                    (Some(t), _) => t,
                };
                TopList::new(self.selection.k.min(n), floor)
            })
            .collect();
        if n == 0 || dim == 0 || users.is_empty() || !active.iter().any(|&a| a) {
            return lists.into_iter().map(|_| Vec::new()).collect();
        }
        for chunk_start in (0..n).step_by(CHUNK) {
            let width = CHUNK.min(n - chunk_start);
            scratch.resize(users.len() * width, 0.0);
            // SAFETY: every pointer covers its matrix: lhs is users × dim, the chunk's items
            // are width × dim read transposed (row stride 1, column stride dim), dst is
            // users × width; none overlap. gemm writes every dst value (it reads none).
            unsafe {
                gemm::gemm(
                    users.len(),
                    width,
                    dim,
                    scratch.as_mut_ptr(),
                    1,
                    width as isize,
                    false,
                    lhs.as_ptr(),
                    1,
                    dim as isize,
                    items.values.as_ptr().add(chunk_start * dim),
                    dim as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            let chunk = chunk_start..chunk_start + width;
            for (u, list) in lists.iter_mut().enumerate() {
                if !active[u] {
                    continue;
                }
                let row = &mut scratch[u * width..(u + 1) * width];
                // L2 ranks by 2·u·i − ‖i‖², which orders items as −‖u − i‖² does.
                if items.metric == Metric::L2 {
                    row.iter_mut()
                        .zip(&items.squared_norms[chunk.clone()])
                        .for_each(|(s, norm2)| *s = 2.0 * *s - norm2);
                }
                if !self.all_usable {
                    for (s, &ok) in row.iter_mut().zip(&items.usable[chunk.clone()]) {
                        if !ok {
                            *s = f32::NEG_INFINITY;
                        }
                    }
                }
                let skipped = excluded(self.first_user + u);
                let from = skipped.partition_point(|&item| (item as usize) < chunk.start);
                for &item in skipped[from..].iter().take_while(|&&item| (item as usize) < chunk.end) {
                    row[item as usize - chunk_start] = f32::NEG_INFINITY;
                }
                list.offer_all(row, chunk_start as u32);
            }
        }
        lists
            .into_iter()
            .enumerate()
            .map(|(u, list)| {
                if !active[u] {
                    return Vec::new();
                }
                let mut best = list.best;
                if items.metric == Metric::L2 {
                    best.iter_mut()
                        .for_each(|(_, s)| *s = (user_norms2[u] - *s).max(0.0).sqrt());
                }
                best
            })
            .collect()
    }
}

/// A user's best items so far, best first, and the score an item must beat to enter.
struct TopList {
    k: usize,
    best: Vec<(u32, f32)>,
    bar: f32,
}

impl TopList {
    fn new(k: usize, floor: f32) -> Self {
        Self {
            k,
            best: Vec::with_capacity(k + 1),
            bar: floor,
        }
    }

    /// Offers `scores`, the scores of items `first, first + 1, …`; ties keep the lower index.
    fn offer_all(&mut self, scores: &[f32], first: u32) {
        if self.k == 0 {
            return;
        }
        // Once the list is full few scores beat the bar: a whole run of them is tested at
        // once (vector compares, no branch per score) and only a run with a winner is walked.
        const RUN: usize = 16;
        let mut runs = scores.chunks_exact(RUN);
        let mut start = first;
        for run in &mut runs {
            let bar = self.bar;
            if run.iter().fold(false, |any, &s| any | (s > bar)) {
                self.offer_each(run, start);
            }
            start += RUN as u32;
        }
        self.offer_each(runs.remainder(), start);
    }

    fn offer_each(&mut self, scores: &[f32], first: u32) {
        for (j, &s) in scores.iter().enumerate() {
            if s > self.bar {
                let position = self.best.partition_point(|&(_, b)| b >= s);
                self.best.insert(position, (first + j as u32, s));
                if self.best.len() > self.k {
                    self.best.pop();
                }
                if self.best.len() == self.k {
                    self.bar = self.best[self.k - 1].1;
                }
            }
        }
    }
}

/// The `k` highest scores above `floor`, best first; ties go to the lower item index.
pub fn select(scores: &[f32], k: usize, floor: f32) -> Vec<(u32, f32)> {
    // Sized by the data: a k larger than the candidates asks for every candidate.
    let mut list = TopList::new(k.min(scores.len()), floor);
    list.offer_all(scores, 0);
    list.best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_force(users: &[Vec<f32>], items: &[Vec<f32>], k: usize, metric: Metric) -> Vec<Vec<u32>> {
        users
            .iter()
            .map(|u| {
                let mut scored: Vec<(u32, f32)> = items
                    .iter()
                    .enumerate()
                    .map(|(j, i)| {
                        let dot: f32 = u.iter().zip(i).map(|(a, b)| a * b).sum();
                        let nu = u.iter().map(|x| x * x).sum::<f32>().sqrt();
                        let ni = i.iter().map(|x| x * x).sum::<f32>().sqrt();
                        let l2 = u.iter().zip(i).map(|(a, b)| (a - b) * (a - b)).sum::<f32>();
                        let score = match metric {
                            Metric::Dot => dot,
                            Metric::Cosine => dot / (nu * ni),
                            Metric::L2 => -l2,
                        };
                        (j as u32, score)
                    })
                    .collect();
                scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                scored.into_iter().take(k).map(|(j, _)| j).collect()
            })
            .collect()
    }

    fn random(rows: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed;
        (0..rows)
            .map(|_| {
                (0..dim)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn matches_brute_force_for_every_metric() {
        // Two blocks of users, the second partial.
        let users = random(BLOCK + 44, 16, 1);
        let items = random(300, 16, 2);
        for metric in [Metric::Dot, Metric::Cosine, Metric::L2] {
            let matrix = ItemMatrix::new(items.iter().map(|v| Some(v.as_slice())), 16, metric);
            let user_rows: Vec<Option<&[f32]>> = users.iter().map(|u| Some(u.as_slice())).collect();
            let got = top_k(&user_rows, &matrix, Selection { k: 7, threshold: None }, |_| &[]);
            let got: Vec<Vec<u32>> = got.iter().map(|r| r.iter().map(|(j, _)| *j).collect()).collect();
            assert_eq!(got, brute_force(&users, &items, 7, metric), "{metric:?}");
        }
    }

    #[test]
    fn catalogs_of_several_chunks_match_brute_force_with_exclusions() {
        // Items span three chunks, with a NULL item in the middle one and some of each user's
        // best items (found by brute force) excluded, so lists cross chunk borders.
        let users = random(70, 8, 3);
        let items = random(2 * CHUNK + 300, 8, 4);
        for metric in [Metric::Dot, Metric::Cosine, Metric::L2] {
            let null_item = CHUNK + 5;
            let rows = items
                .iter()
                .enumerate()
                .map(|(j, v)| (j != null_item).then_some(v.as_slice()));
            let matrix = ItemMatrix::new(rows, 8, metric);
            let mut expected = brute_force(&users, &items, 13, metric);
            // Three of each user's best items excluded, given in ascending order.
            let excluded: Vec<Vec<u32>> = expected
                .iter()
                .map(|best| {
                    let mut skipped = vec![best[0], best[2], best[5]];
                    skipped.sort_unstable();
                    skipped
                })
                .collect();
            for (list, skipped) in expected.iter_mut().zip(&excluded) {
                list.retain(|&j| !skipped.contains(&j) && j as usize != null_item);
            }
            let user_rows: Vec<Option<&[f32]>> = users.iter().map(|u| Some(u.as_slice())).collect();
            let got = top_k(&user_rows, &matrix, Selection { k: 13, threshold: None }, |u| {
                &excluded[u]
            });
            let got: Vec<Vec<u32>> = got
                .iter()
                .zip(&expected)
                .map(|(r, want)| r.iter().map(|(j, _)| *j).take(want.len()).collect())
                .collect();
            assert_eq!(got, expected, "{metric:?}");
        }
    }

    #[test]
    fn exclusions_thresholds_and_small_catalogs() {
        let items: Vec<Vec<f32>> = vec![vec![1.0, 0.0], vec![0.5, 0.0], vec![0.1, 0.0], vec![0.0, 0.0]];
        let matrix = ItemMatrix::new(items.iter().map(|v| Some(v.as_slice())), 2, Metric::Dot);
        let user = [1.0f32, 0.0];
        let users = [Some(&user[..]), None];
        let excluded: [u32; 1] = [0];
        let got = top_k(
            &users,
            &matrix,
            Selection {
                k: 10,
                threshold: Some(0.2),
            },
            |u| {
                if u == 0 { &excluded[..] } else { &[] }
            },
        );
        assert_eq!(got, vec![vec![(1, 0.5)], vec![]]);
    }

    #[test]
    fn ties_go_to_the_lower_index() {
        assert_eq!(
            select(&[1.0, 2.0, 2.0, 1.0, 2.0], 2, f32::NEG_INFINITY),
            vec![(1, 2.0), (2, 2.0)]
        );
    }
}
