//! `content_knn(interactions, item_vectors, k [, users])`: content-based recommendations,
//! `R(u,i) = U(u)·C(i)` with `U(u)` the weighted mean of the content vectors of u's items, which
//! is `Σ_j w_j·sim(U(u), C(j))` over the content features j of item i. Every item with content
//! is ranked, those nobody has interacted with yet included.

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, concat, take};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;

use super::knn::{EXPLAINED, Method, Options, Pick};
use super::selection::{ItemMatrix, Metric, Selection};
use crate::table_function::interactions::{IdIndex, Interactions};
use crate::table_function::{Arguments, Planned, Run, TableFunction};
use crate::vector::Vectors;

#[user_doc(
    doc_section(label = "Recommendation Functions"),
    description = "Content-based recommendations: the top k unseen items per user by the dot product of the user's weighted mean content vector with each item's, with the history items that contributed most (because). Every item of item_vectors is ranked, new items that nobody has interacted with yet included. Users of the users table without history get the most popular items (source = 'popular'). Rows: (user, rank, item, score, source, because).",
    syntax_example = "content_knn(interactions, item_vectors, k [, users => 'table'] [, user => 'column', item => 'column', weight => 'column', vector_item => 'column', vector => 'column', users_column => 'column'])",
    sql_example = r#"```sql
> SELECT * FROM content_knn('events', 'item_genres', 10, user => 'user_id', item => 'item_id');
```"#,
    argument(
        name = "interactions",
        description = "A table or view of (user, item[, weight]) rows."
    ),
    argument(
        name = "item_vectors",
        description = "A table or view of (item, vector) rows: the items' content."
    ),
    argument(name = "k", description = "How many items per user: a positive integer."),
    argument(
        name = "users",
        description = "A table whose first column names the users to recommend for (default: every user of interactions)."
    ),
    argument(
        name = "user",
        description = "The column of interactions that holds the user id (default: the first)."
    ),
    argument(
        name = "item",
        description = "The column of interactions that holds the item id (default: the second)."
    ),
    argument(
        name = "weight",
        description = "The column of interactions that holds the weight (default: the third, if any; 1 when absent)."
    ),
    argument(
        name = "vector_item",
        description = "The column of item_vectors that holds the item id (default: the first)."
    ),
    argument(
        name = "vector",
        description = "The column of item_vectors that holds the vector (default: the second)."
    ),
    argument(
        name = "users_column",
        description = "The column of users that holds the user id (default: its only column)."
    )
)]
#[derive(Debug, Default)]
pub struct ContentKnn;

impl TableFunction for ContentKnn {
    fn name(&self) -> &'static str {
        "content_knn"
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        super::knn::plan(Method::Content, args)
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        super::knn::compute(Method::Content, inputs, run)
    }
}

/// The scorer of `content_knn` and its catalogue's ids: the interactions' items, then the items
/// that have content but no interactions — new items, which content alone can recommend.
pub(super) fn scorer<'a>(
    interactions: &'a Interactions,
    vectors: &RecordBatch,
    options: &Options,
) -> Result<(impl Fn(usize) -> Vec<Pick> + Sync + 'a, ArrayRef)> {
    let name = "content_knn";
    if vectors.num_columns() < 2 {
        return plan_err!("{name}: the item_vectors table needs (item, vector) columns");
    }
    let content = Vectors::try_new(name, 2, vectors.column(1))?;
    content.expect_finite(name, "item_vectors", vectors.column(0))?;
    let dim = content.dim().unwrap_or(0);
    let vector_ids = cast(vectors.column(0), interactions.item_ids.data_type())?;
    let (index, _, first_rows) = IdIndex::build(&vector_ids)?;
    let known = IdIndex::by_row(&interactions.item_ids)?.lookup(&vector_ids)?;
    let new_rows: Vec<u32> = first_rows
        .iter()
        .copied()
        .filter(|&row| known[row as usize].is_none() && content.row(row as usize).is_some())
        .collect();
    // Content vectors in the catalogue's order; items without one score nothing.
    let item_rows: Vec<Option<&[f32]>> = index
        .lookup(&interactions.item_ids)?
        .into_iter()
        .map(|found| found.and_then(|i| content.row(first_rows[i as usize] as usize)))
        .chain(new_rows.iter().map(|&row| content.row(row as usize)))
        .collect();
    let catalogue = concat(&[
        interactions.item_ids.as_ref(),
        take(vector_ids.as_ref(), &UInt32Array::from(new_rows), None)?.as_ref(),
    ])?;
    let matrix = ItemMatrix::new(item_rows.iter().copied(), dim, Metric::Dot);
    let item_vectors: Vec<Option<Vec<f32>>> = item_rows.iter().map(|v| v.map(<[f32]>::to_vec)).collect();
    let k = options.k;
    let scorer = move |u: usize| {
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
        let best = super::selection::top_k(&[Some(&profile[..])], &matrix, Selection { k, threshold: None }, |_| {
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
    };
    Ok((scorer, catalogue))
}
