//! Neighbourhood and content recommenders over a table of (user, item[, weight]) rows, all
//! sparse (no dense user × item matrix), returning the top k unseen items per user:
//!
//! - `item_knn(interactions, k [, neighbours [, shrinkage [, users]]])`: item-based CF,
//!   `R(u,i) = Σ_{j∈N(i)} sim(i,j)·r(u,j) / Σ_{j∈N(i)} |sim(i,j)|`, N(i) the `neighbours`
//!   items most similar to i by shrunk cosine `a·b / (‖a‖‖b‖ + shrinkage)`;
//! - `user_knn(interactions, k [, neighbours [, shrinkage [, users]]])`: user-based CF,
//!   `R(u,i) = Σ_{v∈N(u)} sim(u,v)·r(v,i) / Σ_{v∈N(u)} |sim(u,v)|`;
//! - `content_knn(interactions, item_vectors, k [, users])`: content-based,
//!   `R(u,i) = U(u)·C(i)` with `U(u)` the weighted mean of the content vectors of u's items,
//!   which is `Σ_j w_j·sim(U(u), C(j))` over the content features j of item i.
//!
//! Rows: (user, rank, item, score, source[, because]). `source` says where a row came from:
//! the method, or `popular` for users with no history (cold start, when `users` names them)
//! and for the places a user's own scores cannot fill. `because` lists the history items that
//! contributed most to an item-CF or content score, as (item, contribution). Items whose
//! score is undefined (Σ|sim| = 0) are not scored.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Float32Array, ListArray, RecordBatch, StringArray, StructArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use rayon::prelude::*;

use super::interactions::{Csr, IdIndex, Interactions};
use super::topk::{ItemMatrix, Metric, Selection, select};
use super::{literal, resolve, text_argument};
use crate::compute::{Computation, ComputeTable, Interrupt};
use crate::vector::Vectors;

/// How many history items `because` lists.
const EXPLAINED: usize = 3;

/// Which recommender a table function runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    ItemKnn,
    UserKnn,
    Content,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::ItemKnn => "item_knn",
            Method::UserKnn => "user_knn",
            Method::Content => "content_knn",
        }
    }

    pub fn syntax(self) -> &'static str {
        match self {
            Method::ItemKnn => "item_knn(interactions, k [, neighbours [, shrinkage [, users]]])",
            Method::UserKnn => "user_knn(interactions, k [, neighbours [, shrinkage [, users]]])",
            Method::Content => "content_knn(interactions, item_vectors, k [, users])",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Method::ItemKnn => {
                "Item-based collaborative filtering over (user, item[, weight]) rows: the top k unseen items per \
                 user by Σ sim(i,j)·r(u,j) / Σ |sim(i,j)| over the neighbours j of i, with the history items that \
                 contributed most."
            }
            Method::UserKnn => {
                "User-based collaborative filtering over (user, item[, weight]) rows: the top k unseen items per \
                 user by Σ sim(u,v)·r(v,i) / Σ |sim(u,v)| over u's nearest users v."
            }
            Method::Content => {
                "Content-based recommendations: the top k unseen items per user by the dot product of the user's \
                 weighted mean content vector with each item's, with the history items that contributed most."
            }
        }
    }

    fn explains(self) -> bool {
        self != Method::UserKnn
    }
}

/// Parameters of one call.
#[derive(Debug, Clone)]
struct Parameters {
    method: Method,
    k: usize,
    neighbours: usize,
    shrinkage: f32,
}

/// The `item_knn`, `user_knn` and `content_knn` table functions.
#[derive(Debug)]
pub struct KnnFunction(pub Method);

fn positive_integer(
    name: &str,
    position: usize,
    role: &str,
    value: Option<ScalarValue>,
    default: usize,
) -> Result<usize> {
    match value {
        None | Some(ScalarValue::Null) => Ok(default),
        Some(ScalarValue::Int64(Some(n))) if n > 0 => Ok(n as usize),
        Some(other) => plan_err!("{name}: argument {position} ({role}) must be a positive integer, got {other}"),
    }
}

impl TableFunctionImpl for KnnFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let method = self.0;
        let name = method.name();
        let exprs = args.exprs();
        let session = args.session();
        let table = |index: usize, role: &str| -> Result<Option<Arc<dyn TableProvider>>> {
            match text_argument(name, exprs, index, role)? {
                Some(table) if !table.is_empty() => Ok(Some(resolve(name, session, &table, role)?)),
                _ => Ok(None),
            }
        };
        let (max_args, k_position) = match method {
            Method::Content => (4, 2),
            _ => (5, 1),
        };
        if exprs.len() < k_position + 1 || exprs.len() > max_args {
            return plan_err!("{name}: expected {}, got {} arguments", method.syntax(), exprs.len());
        }
        let interactions = table(0, "interactions")?
            .ok_or_else(|| DataFusionError::Plan(format!("{name}: argument 1 (interactions) must name a table")))?;
        let k = match literal(exprs, k_position) {
            Some(ScalarValue::Int64(Some(k))) if k > 0 => k as usize,
            other => {
                return plan_err!(
                    "{name}: argument {} (k) must be a positive integer, got {}",
                    k_position + 1,
                    other.map(|v| v.to_string()).unwrap_or_default()
                );
            }
        };
        let mut inputs = vec![interactions];
        let (neighbours, shrinkage, users) = match method {
            Method::Content => {
                let vectors = table(1, "item_vectors")?.ok_or_else(|| {
                    DataFusionError::Plan(format!("{name}: argument 2 (item_vectors) must name a table"))
                })?;
                inputs.push(vectors);
                (0, 0.0, table(3, "users")?)
            }
            _ => {
                let default_neighbours = if method == Method::ItemKnn { 100 } else { 50 };
                let neighbours = positive_integer(name, 3, "neighbours", literal(exprs, 2), default_neighbours)?;
                let shrinkage = match literal(exprs, 3) {
                    None | Some(ScalarValue::Null) => 0.0,
                    Some(value) => match value.cast_to(&DataType::Float32) {
                        Ok(ScalarValue::Float32(Some(s))) if s >= 0.0 && s.is_finite() => s,
                        _ => return plan_err!("{name}: argument 4 (shrinkage) must be a number ≥ 0, got {value}"),
                    },
                };
                (neighbours, shrinkage, table(4, "users")?)
            }
        };
        let has_users = users.is_some();
        inputs.extend(users);
        let interaction_schema = inputs[0].schema();
        if interaction_schema.fields().len() < 2 {
            return plan_err!("{name}: the interactions table needs (user, item[, weight]) columns");
        }
        let user_field = interaction_schema.field(0);
        let item_field = interaction_schema.field(1);
        let schema = output_schema(method, user_field, item_field);
        let parameters = Parameters {
            method,
            k,
            neighbours,
            shrinkage,
        };
        let detail = format!("{name}, k={k}, neighbours={neighbours}, shrinkage={shrinkage}");
        let output = Arc::clone(&schema);
        let compute: Computation =
            Arc::new(move |tables: &[RecordBatch], _: &Interrupt| run(&parameters, tables, has_users, &output));
        Ok(Arc::new(ComputeTable {
            name: "KnnExec",
            detail,
            inputs,
            schema,
            compute,
        }))
    }
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

/// One recommended item.
#[derive(Debug, Clone)]
struct Pick {
    item: u32,
    score: f32,
    source: &'static str,
    because: Vec<(u32, f32)>,
}

fn run(parameters: &Parameters, tables: &[RecordBatch], has_users: bool, schema: &SchemaRef) -> Result<RecordBatch> {
    let name = parameters.method.name();
    let interactions = Interactions::from_batch(name, &tables[0])?;
    // The users to recommend for: those named (unknown ones are cold-start), or every user.
    let (request_ids, request_indices): (ArrayRef, Vec<Option<u32>>) = if has_users {
        let ids = Arc::clone(tables.last().expect("a users table").column(0));
        let indices = interactions.user_indices(&ids)?;
        (ids, indices)
    } else {
        let all = (0..interactions.users() as u32).map(Some).collect();
        (Arc::clone(&interactions.user_ids), all)
    };
    let scorer: Box<dyn Fn(usize) -> Vec<Pick> + Sync> = match parameters.method {
        Method::ItemKnn => Box::new(item_knn(&interactions, parameters)),
        Method::UserKnn => Box::new(user_knn(&interactions, parameters)),
        Method::Content => Box::new(content(&interactions, &tables[1], parameters)?),
    };
    let popular = interactions.popularity();
    let picks: Vec<Vec<Pick>> = request_indices
        .par_iter()
        .map(|index| {
            let (mut picks, seen): (Vec<Pick>, &[u32]) = match index {
                Some(u) => (scorer(*u as usize), interactions.by_user.row_indices(*u as usize)),
                None => (Vec::new(), &[]),
            };
            fill_with_popular(&mut picks, seen, &popular, parameters.k);
            picks
        })
        .collect();
    build_output(schema, parameters.method, &request_ids, &interactions.item_ids, &picks)
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

/// The `neighbours` most similar rows to each row of `rows`, by shrunk cosine over `columns`
/// (the same matrix transposed), as (row, similarity) lists.
fn neighbours(rows: &Csr, columns: &Csr, count: usize, shrinkage: f32) -> Vec<Vec<(u32, f32)>> {
    let norms = rows.norms();
    (0..rows.rows())
        .into_par_iter()
        .map_init(
            || (vec![0.0f32; rows.rows()], Vec::<u32>::new()),
            |(dots, touched), r| {
                for (c, w) in rows.row(r) {
                    for (other, w2) in columns.row(c as usize) {
                        if dots[other as usize] == 0.0 {
                            touched.push(other);
                        }
                        dots[other as usize] += w * w2;
                    }
                }
                let mut similar: Vec<(u32, f32)> = touched
                    .iter()
                    .filter(|&&o| o as usize != r)
                    .map(|&o| (o, dots[o as usize] / (norms[r] * norms[o as usize] + shrinkage)))
                    .filter(|(_, s)| *s > 0.0)
                    .collect();
                for &o in touched.iter() {
                    dots[o as usize] = 0.0;
                }
                touched.clear();
                similar.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                similar.truncate(count);
                similar
            },
        )
        .collect()
}

/// The k best unseen items among the `touched` entries of `scores`.
fn best_of(scores: &mut [f32], touched: &[u32], seen: &[u32], k: usize) -> Vec<(u32, f32)> {
    for &i in seen {
        scores[i as usize] = f32::NEG_INFINITY;
    }
    let mut candidates: Vec<(u32, f32)> = touched
        .iter()
        .map(|&i| (i, scores[i as usize]))
        .filter(|(_, s)| s.is_finite())
        .collect();
    candidates.sort_unstable_by_key(|(i, _)| *i);
    let values: Vec<f32> = candidates.iter().map(|(_, s)| *s).collect();
    select(&values, k, f32::NEG_INFINITY)
        .into_iter()
        .map(|(position, s)| (candidates[position as usize].0, s))
        .collect()
}

fn item_knn<'a>(interactions: &'a Interactions, parameters: &Parameters) -> impl Fn(usize) -> Vec<Pick> + Sync + 'a {
    let similar = neighbours(
        &interactions.by_item,
        &interactions.by_user,
        parameters.neighbours,
        parameters.shrinkage,
    );
    let denominators: Vec<f32> = similar.iter().map(|n| n.iter().map(|(_, s)| s.abs()).sum()).collect();
    // reverse[j] = the items i that have j among their neighbours, with sim(i, j).
    let mut reverse: Vec<Vec<(u32, f32)>> = vec![Vec::new(); interactions.items()];
    for (i, list) in similar.iter().enumerate() {
        for &(j, s) in list {
            reverse[j as usize].push((i as u32, s));
        }
    }
    let k = parameters.k;
    move |u| {
        let mut scores = vec![0.0f32; interactions.items()];
        let mut touched = Vec::new();
        for (j, r) in interactions.by_user.row(u) {
            for &(i, s) in &reverse[j as usize] {
                if scores[i as usize] == 0.0 {
                    touched.push(i);
                }
                scores[i as usize] += s * r;
            }
        }
        for &i in &touched {
            scores[i as usize] /= denominators[i as usize];
        }
        let seen = interactions.by_user.row_indices(u);
        best_of(&mut scores, &touched, seen, k)
            .into_iter()
            .map(|(i, score)| {
                let history: Vec<(u32, f32)> = interactions.by_user.row(u).collect();
                let mut because: Vec<(u32, f32)> = similar[i as usize]
                    .iter()
                    .filter_map(|&(j, s)| {
                        let r = history.iter().find(|(h, _)| *h == j)?.1;
                        Some((j, s * r / denominators[i as usize]))
                    })
                    .collect();
                because.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                because.truncate(EXPLAINED);
                Pick {
                    item: i,
                    score,
                    source: "item_knn",
                    because,
                }
            })
            .collect()
    }
}

fn user_knn<'a>(interactions: &'a Interactions, parameters: &Parameters) -> impl Fn(usize) -> Vec<Pick> + Sync + 'a {
    let similar = neighbours(
        &interactions.by_user,
        &interactions.by_item,
        parameters.neighbours,
        parameters.shrinkage,
    );
    let k = parameters.k;
    move |u| {
        let denominator: f32 = similar[u].iter().map(|(_, s)| s.abs()).sum();
        let mut scores = vec![0.0f32; interactions.items()];
        let mut touched = Vec::new();
        for &(v, s) in &similar[u] {
            for (i, r) in interactions.by_user.row(v as usize) {
                if scores[i as usize] == 0.0 {
                    touched.push(i);
                }
                scores[i as usize] += s * r / denominator;
            }
        }
        let seen = interactions.by_user.row_indices(u);
        best_of(&mut scores, &touched, seen, k)
            .into_iter()
            .map(|(item, score)| Pick {
                item,
                score,
                source: "user_knn",
                because: Vec::new(),
            })
            .collect()
    }
}

fn content<'a>(
    interactions: &'a Interactions,
    vectors: &RecordBatch,
    parameters: &Parameters,
) -> Result<impl Fn(usize) -> Vec<Pick> + Sync + 'a> {
    let name = Method::Content.name();
    if vectors.num_columns() < 2 {
        return plan_err!("{name}: the item_vectors table needs (item, vector) columns");
    }
    // Content vectors in the interactions' item order; items without one score nothing.
    let (index, _, first_rows) = IdIndex::build(vectors.column(0))?;
    let content = Vectors::try_new(name, 2, vectors.column(1))?;
    let dim = content.dim().unwrap_or(0);
    let item_rows: Vec<Option<&[f32]>> = index
        .lookup(&interactions.item_ids)?
        .into_iter()
        .map(|found| found.and_then(|i| content.row(first_rows[i as usize] as usize)))
        .collect();
    let matrix = ItemMatrix::new(item_rows.iter().copied(), dim, Metric::Dot);
    let item_vectors: Vec<Option<Vec<f32>>> = item_rows.iter().map(|v| v.map(<[f32]>::to_vec)).collect();
    let k = parameters.k;
    Ok(move |u: usize| {
        let mut profile = vec![0.0f32; dim];
        let mut total = 0.0f32;
        for (h, w) in interactions.by_user.row(u) {
            if let Some(vector) = &item_vectors[h as usize] {
                profile.iter_mut().zip(vector).for_each(|(p, x)| *p += w * x);
                total += w;
            }
        }
        if total == 0.0 {
            return Vec::new();
        }
        profile.iter_mut().for_each(|p| *p /= total);
        let seen = interactions.by_user.row_indices(u);
        let best = super::topk::top_k(&[Some(&profile[..])], &matrix, Selection { k, threshold: None }, |_| {
            seen
        });
        best.into_iter()
            .next()
            .unwrap_or_default()
            .into_iter()
            .map(|(i, score)| {
                let target = item_vectors[i as usize].as_deref().unwrap_or(&[]);
                let mut because: Vec<(u32, f32)> = interactions
                    .by_user
                    .row(u)
                    .filter_map(|(h, w)| {
                        let vector = item_vectors[h as usize].as_ref()?;
                        Some((h, w * crate::vector::kernels::dot(vector, target) / total))
                    })
                    .collect();
                because.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                because.truncate(EXPLAINED);
                Pick {
                    item: i,
                    score,
                    source: "content_knn",
                    because,
                }
            })
            .collect()
    })
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
