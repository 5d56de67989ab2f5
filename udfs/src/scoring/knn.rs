//! Neighbourhood and content recommenders over a table of (user, item[, weight]) rows, all
//! sparse (no dense user × item matrix), returning the top k unseen items per user:
//!
//! - `item_knn(interactions, k [, neighbours [, shrinkage [, users [, weighting [, max_history]]]]])`:
//!   item-based CF, `R(u,i) = Σ_{j∈N(i)} sim(i,j)·r(u,j) / Σ_{j∈N(i)} |sim(i,j)|`, N(i) the
//!   `neighbours` items most similar to i by shrunk cosine `a·b / (‖a‖‖b‖ + shrinkage)`, over
//!   at most `max_history` items of each user (a fixed sample, see [`sampled`]);
//! - `user_knn(interactions, k [, neighbours [, shrinkage [, users [, weighting]]]])`: user-based CF,
//!   `R(u,i) = Σ_{v∈N(u)} sim(u,v)·r(v,i) / Σ_{v∈N(u)} |sim(u,v)|`; both compare rows of
//!   interactions weighted by `weighting` ('none', 'tfidf' or 'bm25', see [`Weighting`]);
//! - `content_knn(interactions, item_vectors, k [, users])`: content-based,
//!   `R(u,i) = U(u)·C(i)` with `U(u)` the weighted mean of the content vectors of u's items,
//!   which is `Σ_j w_j·sim(U(u), C(j))` over the content features j of item i.
//!
//! Rows: (user, rank, item, score, source[, because]). `source` says where a row came from:
//! the method, or `popular` for users with no history (cold start, when `users` names them)
//! and for the places a user's own scores cannot fill. `because` lists the history items that
//! contributed most to an item-CF or content score, as (item, contribution). Items whose
//! score is undefined (Σ|sim| = 0) are not scored.
//!
//! This module holds what the three share: reading the interactions, the cosine similarity of
//! sparse rows (summed per thread in reused accumulators), the top-k of a user's scores and the
//! output rows.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float32Array, ListArray, RecordBatch, StringArray, StructArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::common::{Result, exec_err};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::selection::select;
use crate::table_function::interactions::{Csr, Interactions};
use crate::table_function::{Arguments, Planned, Run, expect_same_ids};

/// How many history items `because` lists.
pub(super) const EXPLAINED: usize = 3;

/// Which recommender a table function runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    ItemKnn,
    UserKnn,
    Content,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::ItemKnn => "item_knn",
            Method::UserKnn => "user_knn",
            Method::Content => "content_knn",
        }
    }

    fn explains(self) -> bool {
        self != Method::UserKnn
    }
}

/// Options of one call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Options {
    pub k: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbours: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrinkage: Option<f32>,
    #[serde(default, skip_serializing_if = "Weighting::is_none")]
    pub weighting: Weighting,
    /// item_knn: a user with more items is sampled down to this many when similarities are
    /// computed (see [`sampled`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_history: Option<usize>,
}

/// How interactions are weighted before similarities are computed, as `implicit` does: the
/// rows compared are documents and their columns terms (for item_knn items are documents and
/// users terms; for user_knn the other way round), `idf(t) = ln(N / (1 + df(t)))` over the N
/// documents. The scores still combine the raw interactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Weighting {
    /// The interactions as they are.
    #[default]
    None,
    /// `√w · idf(t)`.
    Tfidf,
    /// `w·(K1 + 1) / (K1·(1 − B + B·len(d)/avg len) + w) · idf(t)`, K1 = 100, B = 0.8, the
    /// length of a document the sum of its weights.
    Bm25,
}

impl Weighting {
    fn is_none(&self) -> bool {
        *self == Weighting::None
    }

    fn parse(args: &Arguments, index: usize) -> Result<Self> {
        match args
            .text(index, "weighting")?
            .map(|t| t.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("none") => Ok(Weighting::None),
            Some("tfidf") => Ok(Weighting::Tfidf),
            Some("bm25") => Ok(Weighting::Bm25),
            Some(other) => Err(args.invalid(index, "weighting", "'none', 'tfidf' or 'bm25'", format!("'{other}'"))),
        }
    }

    /// `documents` (rows × `terms`) weighted, or `None` when nothing changes.
    pub(super) fn apply(self, documents: &Csr, terms: usize) -> Option<Csr> {
        const K1: f32 = 100.0;
        const B: f32 = 0.8;
        if self == Weighting::None {
            return None;
        }
        let count = documents.rows() as f32;
        let mut frequency = vec![0u32; terms];
        for &t in &documents.indices {
            frequency[t as usize] += 1;
        }
        let idf: Vec<f32> = frequency.iter().map(|&df| (count / (1.0 + df as f32)).ln()).collect();
        let lengths: Vec<f32> = (0..documents.rows())
            .map(|d| documents.row(d).map(|(_, w)| w).sum())
            .collect();
        let average = lengths.iter().sum::<f32>() / count.max(1.0);
        let mut weighted = documents.clone();
        for (d, length) in lengths.into_iter().enumerate() {
            let norm = if average > 0.0 {
                1.0 - B + B * length / average
            } else {
                1.0
            };
            let range = documents.offsets[d]..documents.offsets[d + 1];
            for (w, &t) in weighted.weights[range.clone()]
                .iter_mut()
                .zip(&documents.indices[range])
            {
                *w = match self {
                    Weighting::Tfidf => w.max(0.0).sqrt() * idf[t as usize],
                    _ => *w * (K1 + 1.0) / (K1 * norm + *w) * idf[t as usize],
                };
            }
        }
        Some(weighted)
    }
}

/// One recommended item.
#[derive(Debug, Clone)]
pub(super) struct Pick {
    pub item: u32,
    pub score: f32,
    pub source: &'static str,
    pub because: Vec<(u32, f32)>,
}

/// The roles of the interactions table's columns.
const INTERACTIONS: &str = "user, item[, weight]";

/// Plans a call of `method`: the interactions (and for content the item vectors), k, the
/// method's own options, and the optional users table.
pub(super) fn plan(method: Method, args: &Arguments) -> Result<Planned> {
    args.expect_count(match method {
        Method::Content => 3..=4,
        Method::ItemKnn => 2..=7,
        _ => 2..=6,
    })?;
    let mut inputs = vec![args.required_input(0, "interactions", Some(INTERACTIONS))?];
    let (options, users) = match method {
        Method::Content => {
            inputs.push(args.required_input(1, "item_vectors", Some("vector_item, vector"))?);
            let k = args.positive_integer(2, "k", None)?;
            let options = Options {
                k,
                neighbours: None,
                shrinkage: None,
                weighting: Weighting::None,
                max_history: None,
            };
            (options, args.input(3, "users", Some("users_column"))?)
        }
        _ => {
            let item_based = method == Method::ItemKnn;
            let options = Options {
                k: args.positive_integer(1, "k", None)?,
                neighbours: Some(args.positive_integer(2, "neighbours", Some(if item_based { 100 } else { 50 }))?),
                shrinkage: Some(args.number(3, "shrinkage", 0.0..=f64::INFINITY, 0.0)? as f32),
                weighting: Weighting::parse(args, 5)?,
                max_history: match item_based {
                    true => args.optional_positive_integer(6, "max_history")?,
                    false => None,
                },
            };
            (options, args.input(4, "users", Some("users_column"))?)
        }
    };
    let interactions = inputs[0].table.provider.schema();
    if interactions.fields().len() < 2 {
        return datafusion::common::plan_err!(
            "{}: the interactions table needs (user, item[, weight]) columns",
            method.name()
        );
    }
    let schema = output_schema(method, interactions.field(0), interactions.field(1));
    if method == Method::Content {
        let vectors = inputs[1].table.provider.schema();
        if vectors.fields().len() < 2 {
            return datafusion::common::plan_err!("content_knn: the item_vectors table needs (item, vector) columns");
        }
        expect_same_ids(
            method.name(),
            ("interactions", interactions.field(1)),
            ("item_vectors", vectors.field(0)),
        )?;
        crate::vector::check_vector_type(method.name(), 2, vectors.field(1).data_type()).map_err(|_| {
            datafusion::common::DataFusionError::Plan(format!(
                "content_knn: the second column of the item_vectors table must be a vector, got {}",
                vectors.field(1).data_type()
            ))
        })?;
    }
    if let Some(users) = &users {
        let ids = users.table.provider.schema();
        expect_same_ids(
            method.name(),
            ("interactions", interactions.field(0)),
            ("users", ids.field(0)),
        )?;
    }
    inputs.extend(users);
    Planned::new(inputs, &options, schema)
}

fn because_type(item_type: &DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(Fields::from(vec![
            Field::new("item", item_type.clone(), true),
            Field::new("contribution", DataType::Float32, false),
        ])),
        true,
    )))
}

fn output_schema(method: Method, user: &Field, item: &Field) -> SchemaRef {
    let item_name = if item.name() == user.name() {
        format!("item_{}", item.name())
    } else {
        item.name().clone()
    };
    let mut fields = vec![
        Field::new(user.name(), user.data_type().clone(), true),
        Field::new("rank", DataType::UInt64, false),
        Field::new(item_name, item.data_type().clone(), true),
        Field::new("score", DataType::Float32, false),
        Field::new("source", DataType::Utf8, false),
    ];
    if method.explains() {
        fields.push(Field::new("because", because_type(item.data_type()), true));
    }
    Arc::new(Schema::new(fields))
}

/// Recommends for every user of the interactions, or of the users table when the call has
/// one, with the scores of `method`.
pub(super) fn compute(method: Method, tables: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
    let name = method.name();
    let options: Options = run.call.options()?;
    let has_users = run.call.has_input("users");
    let interactions = Interactions::from_batch(name, &tables[0])?;
    // The matrices, then each list's neighbours (and their reverse), each thread's dense rows,
    // and the picks of every user.
    let rows = match method {
        Method::UserKnn => interactions.users(),
        _ => interactions.items(),
    };
    let neighbours = options.neighbours.unwrap_or(0).min(rows);
    let threads = rayon::current_num_threads();
    let pick = size_of::<Pick>() + EXPLAINED * size_of::<(u32, f32)>();
    // Weighted or sampled interactions are a second copy of the matrices.
    let copies = 1 + usize::from(!options.weighting.is_none() || options.max_history.is_some());
    run.reserve(
        copies * interactions.memory_size()
            + 2 * rows * neighbours * size_of::<(u32, f32)>()
            + threads * (interactions.users() + interactions.items()) * (size_of::<f32>() + size_of::<u32>())
            + interactions.users().max(1) * options.k.min(interactions.items()) * pick,
    )?;
    // The users to recommend for: those named (unknown ones are cold-start), or every user.
    let (request_ids, request_indices): (ArrayRef, Vec<Option<u32>>) = if has_users {
        let ids = Arc::clone(tables.last().expect("a users table").column(0));
        let indices = interactions.user_indices(&ids)?;
        (ids, indices)
    } else {
        let all = (0..interactions.users() as u32).map(Some).collect();
        (Arc::clone(&interactions.user_ids), all)
    };
    type Scorer<'a> = Box<dyn Fn(usize) -> Vec<Pick> + Sync + 'a>;
    let (scorer, item_ids): (Scorer, ArrayRef) = match method {
        Method::ItemKnn => (
            Box::new(super::item_knn::scorer(&interactions, &options)),
            Arc::clone(&interactions.item_ids),
        ),
        Method::UserKnn => (
            Box::new(super::user_knn::scorer(&interactions, &options)),
            Arc::clone(&interactions.item_ids),
        ),
        Method::Content => {
            let (scorer, catalogue) = super::content_knn::scorer(&interactions, &tables[1], &options)?;
            (Box::new(scorer), catalogue)
        }
    };
    let popular = interactions.popularity();
    let picks: Vec<Vec<Pick>> = request_indices
        .par_iter()
        .map(|index| {
            let (mut picks, seen): (Vec<Pick>, &[u32]) = match index {
                Some(u) => (scorer(*u as usize), interactions.by_user.row_indices(*u as usize)),
                None => (Vec::new(), &[]),
            };
            fill_with_popular(&mut picks, seen, &popular, options.k);
            picks
        })
        .collect();
    build_output(run.schema, method, &request_ids, &item_ids, &picks)
}

/// Tops a user's list up to k with the most popular items they have not seen.
fn fill_with_popular(picks: &mut Vec<Pick>, seen: &[u32], popular: &[(u32, f32)], k: usize) {
    for &(item, share) in popular {
        if picks.len() >= k {
            break;
        }
        if seen.binary_search(&item).is_err() && !picks.iter().any(|p| p.item == item) {
            picks.push(Pick {
                item,
                score: share,
                source: "popular",
                because: Vec::new(),
            });
        }
    }
}

/// The most similar rows to each row of the similarity's matrix, as (row, similarity) lists.
pub(super) fn neighbours(similarity: &Similarity) -> Vec<Vec<(u32, f32)>> {
    (0..similarity.rows.rows())
        .into_par_iter()
        .map_init(Accumulator::default, |sums, r| similarity.most_similar(r, sums))
        .collect()
}

/// Sparse sums over a dense array, reused from one row to the next: `sums` is all zeros
/// between uses, and `touched` lists the entries a use has added to.
#[derive(Debug, Default)]
pub(super) struct Accumulator {
    sums: Vec<f32>,
    touched: Vec<u32>,
    candidates: Vec<(u32, f32)>,
}

impl Accumulator {
    /// Ready to sum over `len` entries.
    pub(super) fn start(&mut self, len: usize) {
        if self.sums.len() < len {
            self.sums.resize(len, 0.0);
        }
    }

    #[inline]
    pub(super) fn add(&mut self, index: u32, value: f32) {
        let sum = &mut self.sums[index as usize];
        if *sum == 0.0 {
            self.touched.push(index);
        }
        *sum += value;
    }

    /// The entries added to, and their sums.
    pub(super) fn sums(&mut self) -> (&mut [f32], &[u32]) {
        (&mut self.sums, &self.touched)
    }

    /// Lists each touched entry once: with negative values a sum can return to zero and be
    /// touched again.
    pub(super) fn forget_repeats(&mut self) {
        self.touched.sort_unstable();
        self.touched.dedup();
    }

    /// Zeroes what was added, for the next use.
    pub(super) fn clear(&mut self) {
        for &i in &self.touched {
            self.sums[i as usize] = 0.0;
        }
        self.touched.clear();
    }
}

thread_local! {
    /// Each thread's accumulators, reused by every user it scores: one for similarities, one
    /// for item scores.
    static ACCUMULATORS: RefCell<(Accumulator, Accumulator)> = RefCell::default();
}

/// Runs `score` with this thread's two accumulators.
pub(super) fn with_accumulators<T>(score: impl FnOnce(&mut Accumulator, &mut Accumulator) -> T) -> T {
    ACCUMULATORS.with(|cell| {
        let (similar, scores) = &mut *cell.borrow_mut();
        score(similar, scores)
    })
}

/// A row whose columns hold at least one entry per this many rows is summed densely: it
/// touches most rows, so tracking which ones costs more than scanning them all.
const DENSE_ROWS_PER_ENTRY: usize = 2;

/// Cosine similarity between the rows of a sparse matrix (shrunk by `shrinkage`), keeping each
/// row's `count` most similar other rows.
pub(super) struct Similarity<'a> {
    rows: Cow<'a, Csr>,
    columns: Cow<'a, Csr>,
    norms: Vec<f32>,
    count: usize,
    shrinkage: f32,
    /// Whether any weight is negative, so that a sum can return to zero.
    signed: bool,
}

impl<'a> Similarity<'a> {
    /// Similarities between the rows of `rows` (`columns` is the same matrix transposed),
    /// over the interactions weighted by `weighting`.
    /// With `max_history`, each row of `columns` longer than it is sampled down first.
    pub(super) fn new(rows: &'a Csr, columns: &'a Csr, options: &Options, default_count: usize) -> Self {
        let (rows, columns): (Cow<Csr>, Cow<Csr>) = match options.max_history {
            Some(limit) if (0..columns.rows()).any(|c| columns.row_len(c) > limit) => {
                let sample = sampled(columns, limit);
                (Cow::Owned(sample.transposed(rows.rows())), Cow::Owned(sample))
            }
            _ => (Cow::Borrowed(rows), Cow::Borrowed(columns)),
        };
        let (rows, columns) = match options.weighting.apply(&rows, columns.rows()) {
            Some(weighted) => {
                let transposed = weighted.transposed(columns.rows());
                (Cow::Owned(weighted), Cow::Owned(transposed))
            }
            None => (rows, columns),
        };
        Self {
            norms: rows.norms(),
            signed: rows.weights.iter().chain(&columns.weights).any(|&w| w < 0.0),
            rows,
            columns,
            count: options.neighbours.unwrap_or(default_count),
            shrinkage: options.shrinkage.unwrap_or(0.0),
        }
    }

    /// Row `r`'s most similar rows, best first; ties go to the lower row.
    pub(super) fn most_similar(&self, r: usize, scratch: &mut Accumulator) -> Vec<(u32, f32)> {
        let n = self.rows.rows();
        scratch.start(n);
        let entries: usize = self
            .rows
            .row_indices(r)
            .iter()
            .map(|&c| self.columns.row_len(c as usize))
            .sum();
        let norms = &self.norms;
        let similarity = |o: u32, dot: f32| (o, dot / (norms[r] * norms[o as usize] + self.shrinkage));
        let mut candidates = std::mem::take(&mut scratch.candidates);
        candidates.clear();
        if entries * DENSE_ROWS_PER_ENTRY >= n {
            let sums = &mut scratch.sums[..n];
            for (c, w) in self.rows.row(r) {
                for (other, w2) in self.columns.row(c as usize) {
                    sums[other as usize] += w * w2;
                }
            }
            sums[r] = 0.0;
            candidates.extend(
                sums.iter()
                    .enumerate()
                    .filter(|(_, dot)| **dot != 0.0)
                    .map(|(o, &dot)| similarity(o as u32, dot))
                    .filter(|(_, s)| *s > 0.0),
            );
            sums.fill(0.0);
        } else {
            for (c, w) in self.rows.row(r) {
                for (other, w2) in self.columns.row(c as usize) {
                    scratch.add(other, w * w2);
                }
            }
            if self.signed {
                scratch.forget_repeats();
            }
            let (sums, touched) = scratch.sums();
            candidates.extend(
                touched
                    .iter()
                    .filter(|&&o| o as usize != r)
                    .map(|&o| similarity(o, sums[o as usize]))
                    .filter(|(_, s)| *s > 0.0),
            );
            scratch.clear();
        }
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if candidates.len() > self.count && self.count > 0 {
            candidates.select_nth_unstable_by(self.count - 1, order);
        }
        let kept = candidates.len().min(self.count);
        candidates[..kept].sort_by(order);
        let similar = candidates[..kept].to_vec();
        scratch.candidates = candidates;
        similar
    }
}

/// `matrix` with every row of more than `limit` entries cut down to `limit` of them, in order:
/// those with the lowest seeded draw for their (row, column), so the sample is the same
/// whatever order the rows were read in (indices follow the ids' sorted order). Exact
/// similarity costs Σ len(row)² over these rows (a user's items, for item_knn); sampling
/// bounds it by `rows × limit²`, as Mahout's `maxPrefsPerUser` does.
fn sampled(matrix: &Csr, limit: usize) -> Csr {
    let mut sample = Csr {
        offsets: vec![0],
        indices: Vec::new(),
        weights: Vec::new(),
    };
    let mut draws: Vec<(f32, u32, f32)> = Vec::new();
    for r in 0..matrix.rows() {
        if matrix.row_len(r) <= limit {
            sample.indices.extend_from_slice(matrix.row_indices(r));
            sample.weights.extend(matrix.row(r).map(|(_, w)| w));
        } else {
            let draw = crate::models::als::SplitMix::new(r as u64);
            draws.clear();
            draws.extend(matrix.row(r).map(|(c, w)| (draw.peek(u64::from(c) + 1), c, w)));
            draws.select_nth_unstable_by(limit - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            draws.truncate(limit);
            draws.sort_unstable_by_key(|&(_, c, _)| c);
            sample.indices.extend(draws.iter().map(|&(_, c, _)| c));
            sample.weights.extend(draws.iter().map(|&(_, _, w)| w));
        }
        sample.offsets.push(sample.indices.len());
    }
    sample
}

/// The k best unseen items (`seen` ascending) among the entries `scores` has summed; leaves it
/// cleared.
pub(super) fn best_of(scores: &mut Accumulator, seen: &[u32], k: usize) -> Vec<(u32, f32)> {
    let mut candidates = std::mem::take(&mut scores.candidates);
    candidates.clear();
    let (sums, touched) = scores.sums();
    candidates.extend(
        touched
            .iter()
            .filter(|i| seen.binary_search(i).is_err())
            .map(|&i| (i, sums[i as usize]))
            .filter(|(_, s)| s.is_finite()),
    );
    scores.clear();
    candidates.sort_unstable_by_key(|(i, _)| *i);
    candidates.dedup_by_key(|(i, _)| *i);
    let best = top_of(&candidates, k);
    scores.candidates = candidates;
    best
}

/// The `k` highest-scoring of `candidates` (in item order), best first; ties go to the lower item.
fn top_of(candidates: &[(u32, f32)], k: usize) -> Vec<(u32, f32)> {
    let values: Vec<f32> = candidates.iter().map(|(_, s)| *s).collect();
    select(&values, k, f32::NEG_INFINITY)
        .into_iter()
        .map(|(position, s)| (candidates[position as usize].0, s))
        .collect()
}

fn build_output(
    schema: &SchemaRef,
    method: Method,
    user_ids: &ArrayRef,
    item_ids: &ArrayRef,
    picks: &[Vec<Pick>],
) -> Result<RecordBatch> {
    let total: usize = picks.iter().map(Vec::len).sum();
    let (mut users, mut ranks, mut items, mut scores, mut sources) = (
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
    );
    let (mut because_items, mut because_scores, mut because_offsets) = (Vec::new(), Vec::new(), vec![0i32]);
    for (user, list) in picks.iter().enumerate() {
        for (rank, pick) in list.iter().enumerate() {
            users.push(user as u32);
            ranks.push(rank as u64 + 1);
            items.push(pick.item);
            scores.push(pick.score);
            sources.push(pick.source);
            for &(item, contribution) in &pick.because {
                because_items.push(item);
                because_scores.push(contribution);
            }
            because_offsets.push(because_items.len() as i32);
        }
    }
    let mut columns: Vec<ArrayRef> = vec![
        take(user_ids.as_ref(), &UInt32Array::from(users), None)?,
        Arc::new(UInt64Array::from(ranks)),
        take(item_ids.as_ref(), &UInt32Array::from(items), None)?,
        Arc::new(Float32Array::from(scores)),
        Arc::new(StringArray::from(sources)),
    ];
    if method.explains() {
        let DataType::List(field) = because_type(item_ids.data_type()) else {
            unreachable!("because_type is a list")
        };
        let DataType::Struct(fields) = field.data_type().clone() else {
            unreachable!("because_type holds structs")
        };
        let entries = StructArray::try_new(
            fields,
            vec![
                take(item_ids.as_ref(), &UInt32Array::from(because_items), None)?,
                Arc::new(Float32Array::from(because_scores)),
            ],
            None,
        )?;
        columns.push(Arc::new(ListArray::try_new(
            field,
            OffsetBuffer::new(because_offsets.into()),
            Arc::new(entries),
            None,
        )?));
    }
    if columns[0].len() != columns[2].len() || columns.iter().any(|c| c.len() != total) {
        return exec_err!("{}: internal error: column lengths differ", method.name());
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows × columns of 0/1 entries as compressed rows.
    fn csr(dense: &[Vec<bool>]) -> Csr {
        let mut matrix = Csr {
            offsets: vec![0],
            ..Csr::default()
        };
        for row in dense {
            for (c, _) in row.iter().enumerate().filter(|(_, on)| **on) {
                matrix.indices.push(c as u32);
                matrix.weights.push(1.0);
            }
            matrix.offsets.push(matrix.indices.len());
        }
        matrix
    }

    #[test]
    fn sums_that_return_to_zero_are_listed_once() {
        // Row 0 meets row 1 through columns 0, 1 and 2 with weights 1, -1, 1: the sum goes
        // 1, 0, 1. Rows 2.. each hold a column of their own, so row 0 is summed sparsely.
        let mut rows = Csr {
            offsets: vec![0, 3, 6],
            indices: vec![0, 1, 2, 0, 1, 2],
            weights: vec![1.0, 1.0, 1.0, 1.0, -1.0, 1.0],
        };
        for r in 2..20u32 {
            rows.indices.push(r + 1);
            rows.weights.push(1.0);
            rows.offsets.push(rows.indices.len());
        }
        let columns = rows.transposed(21);
        let options = Options {
            k: 10,
            neighbours: Some(5),
            shrinkage: None,
            weighting: Weighting::None,
            max_history: None,
        };
        let similarity = Similarity::new(&rows, &columns, &options, 5);
        let similar = similarity.most_similar(0, &mut Accumulator::default());
        assert_eq!(similar.iter().map(|(o, _)| *o).collect::<Vec<_>>(), vec![1]);

        let mut scores = Accumulator::default();
        scores.start(5);
        for value in [1.0, -1.0, 0.5] {
            scores.add(2, value);
        }
        assert_eq!(best_of(&mut scores, &[], 10), vec![(2, 0.5)]);
    }

    #[test]
    fn dense_and_sparse_rows_match_brute_force_cosine() {
        // Five items almost every user has (summed densely) and rare items each held by
        // two or three users (summed sparsely).
        let (items, users) = (40usize, 60usize);
        let dense: Vec<Vec<bool>> = (0..items)
            .map(|i| {
                (0..users)
                    .map(|u| {
                        if i < 5 {
                            (u + i) % 7 != 0
                        } else {
                            (u * 7 + i * 3) % 53 < 2
                        }
                    })
                    .collect()
            })
            .collect();
        let rows = csr(&dense);
        let columns = rows.transposed(users);
        let options = Options {
            k: 10,
            neighbours: Some(6),
            shrinkage: Some(0.5),
            weighting: Weighting::None,
            max_history: None,
        };
        let similarity = Similarity::new(&rows, &columns, &options, 6);
        let mut scratch = Accumulator::default();
        let (mut dense_rows, mut sparse_rows) = (0, 0);
        for r in 0..items {
            let entries: usize = rows.row_indices(r).iter().map(|&c| columns.row_len(c as usize)).sum();
            if entries * DENSE_ROWS_PER_ENTRY >= items {
                dense_rows += 1;
            } else {
                sparse_rows += 1;
            }
            let norm = |i: usize| (dense[i].iter().filter(|on| **on).count() as f32).sqrt();
            let mut expected: Vec<(u32, f32)> = (0..items)
                .filter(|&o| o != r)
                .map(|o| {
                    let dot = (0..users).filter(|&u| dense[r][u] && dense[o][u]).count() as f32;
                    (o as u32, dot / (norm(r) * norm(o) + 0.5))
                })
                .filter(|(_, s)| *s > 0.0)
                .collect();
            expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            expected.truncate(6);
            let got = similarity.most_similar(r, &mut scratch);
            let ids = |list: &[(u32, f32)]| list.iter().map(|(o, _)| *o).collect::<Vec<_>>();
            assert_eq!(ids(&got), ids(&expected), "row {r}");
            for ((_, a), (_, b)) in got.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-5, "row {r}: {a} vs {b}");
            }
        }
        assert!(
            dense_rows >= 5 && sparse_rows >= 5,
            "{dense_rows} dense, {sparse_rows} sparse"
        );
    }

    #[test]
    fn long_rows_are_sampled_down_to_the_limit_in_order() {
        let dense: Vec<Vec<bool>> = (0..40)
            .map(|r| (0..60).map(|c| (r * 7 + c * 3) % (r % 5 + 1) == 0).collect())
            .collect();
        let matrix = csr(&dense);
        let limit = 12;
        let sample = sampled(&matrix, limit);
        assert_eq!(sample.rows(), matrix.rows());
        for r in 0..matrix.rows() {
            let (all, kept) = (matrix.row_indices(r), sample.row_indices(r));
            if all.len() <= limit {
                assert_eq!(kept, all, "row {r} is short and kept whole");
            } else {
                assert_eq!(kept.len(), limit, "row {r}");
                assert!(kept.windows(2).all(|w| w[0] < w[1]), "row {r} stays in column order");
                assert!(
                    kept.iter().all(|c| all.binary_search(c).is_ok()),
                    "row {r} keeps its own entries"
                );
            }
        }
        assert!(
            (0..matrix.rows()).any(|r| matrix.row_len(r) > limit),
            "some row is sampled"
        );
        assert_eq!(sampled(&matrix, limit), sample, "the same sample every time");
    }
}
