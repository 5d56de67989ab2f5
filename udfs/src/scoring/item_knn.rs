//! `item_knn(interactions, k [, neighbours [, shrinkage [, users [, weighting [, max_history]]]]])`:
//! item-based collaborative filtering, `R(u,i) = Σ_{j∈N(i)} sim(i,j)·r(u,j) / Σ_{j∈N(i)} |sim(i,j)|`,
//! N(i) the `neighbours` items most similar to i by shrunk cosine `a·b / (‖a‖‖b‖ + shrinkage)`,
//! computed over a sample of at most `max_history` items of each user when it is given.

use datafusion::arrow::array::RecordBatch;
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;

use super::knn::{EXPLAINED, Method, Options, Pick, Similarity, best_of, neighbours, with_accumulators};
use crate::table_function::interactions::Interactions;
use crate::table_function::{Arguments, Planned, Run, TableFunction};

#[user_doc(
    doc_section(label = "Recommendation Functions"),
    description = "Item-based collaborative filtering over (user, item[, weight]) rows: the top k unseen items per user by Σ sim(i,j)·r(u,j) / Σ |sim(i,j)| over the neighbours j of i (shrunk cosine a·b / (‖a‖‖b‖ + shrinkage)), with the history items that contributed most (because). Users of the users table without history get the most popular items (source = 'popular'). Rows: (user, rank, item, score, source, because).",
    syntax_example = "item_knn(interactions, k [, neighbours => 100] [, shrinkage => 0] [, users => 'table'] [, weighting => 'none'] [, max_history => n] [, user => 'column', item => 'column', weight => 'column', users_column => 'column'])",
    sql_example = r#"```sql
> SELECT * FROM item_knn('events', 10, neighbours => 30, weighting => 'bm25',
                         user => 'user_id', item => 'item_id');
```"#,
    argument(
        name = "interactions",
        description = "A table or view of (user, item[, weight]) rows."
    ),
    argument(name = "k", description = "How many items per user: a positive integer."),
    argument(
        name = "neighbours",
        description = "How many similar items each item keeps (default 100)."
    ),
    argument(
        name = "shrinkage",
        description = "A number ≥ 0 added to the cosine's denominator (default 0)."
    ),
    argument(
        name = "users",
        description = "A table whose first column names the users to recommend for (default: every user of interactions)."
    ),
    argument(
        name = "weighting",
        description = "How interactions are weighted before similarities are computed: 'none' (default), 'tfidf' or 'bm25' (K1 = 100, B = 0.8, as the implicit library)."
    ),
    argument(
        name = "max_history",
        description = "A positive integer: users with more items are sampled down to this many (a fixed sample, the same every run) when item similarities are computed; scores still use every interaction. Exact similarities cost Σ len(u)² over the users' history lengths, so long histories make them slow; this bounds the cost by users × max_history². Default (or NULL): every item."
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
        name = "users_column",
        description = "The column of users that holds the user id (default: its only column)."
    )
)]
#[derive(Debug, Default)]
pub struct ItemKnn;

impl TableFunction for ItemKnn {
    fn name(&self) -> &'static str {
        "item_knn"
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        super::knn::plan(Method::ItemKnn, args)
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        super::knn::compute(Method::ItemKnn, inputs, run)
    }
}

pub(super) fn scorer<'a>(interactions: &'a Interactions, options: &Options) -> impl Fn(usize) -> Vec<Pick> + Sync + 'a {
    let similar = neighbours(&Similarity::new(
        &interactions.by_item,
        &interactions.by_user,
        options,
        100,
    ));
    let denominators: Vec<f32> = similar.iter().map(|n| n.iter().map(|(_, s)| s.abs()).sum()).collect();
    // reverse[j] = the items i that have j among their neighbours, with sim(i, j).
    let mut reverse: Vec<Vec<(u32, f32)>> = vec![Vec::new(); interactions.items()];
    for (i, list) in similar.iter().enumerate() {
        for &(j, s) in list {
            reverse[j as usize].push((i as u32, s));
        }
    }
    let k = options.k;
    move |u| {
        let seen = interactions.by_user.row_indices(u);
        let best = with_accumulators(|_, scores| {
            scores.start(interactions.items());
            for (j, r) in interactions.by_user.row(u) {
                for &(i, s) in &reverse[j as usize] {
                    scores.add(i, s * r);
                }
            }
            let (sums, touched) = scores.sums();
            for &i in touched {
                sums[i as usize] /= denominators[i as usize];
            }
            best_of(scores, seen, k)
        });
        best.into_iter()
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
