//! `user_knn(interactions, k [, neighbours [, shrinkage [, users [, weighting]]]])`: user-based
//! collaborative filtering, `R(u,i) = Σ_{v∈N(u)} sim(u,v)·r(v,i) / Σ_{v∈N(u)} |sim(u,v)|` over
//! the `neighbours` nearest users by shrunk cosine.

use datafusion::arrow::array::RecordBatch;
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;

use super::knn::{Method, Options, Pick, Similarity, best_of, with_accumulators};
use crate::table_function::interactions::Interactions;
use crate::table_function::{Arguments, Planned, Run, TableFunction};

#[user_doc(
    doc_section(label = "Recommendation Functions"),
    description = "User-based collaborative filtering over (user, item[, weight]) rows: the top k unseen items per user by Σ sim(u,v)·r(v,i) / Σ |sim(u,v)| over u's nearest users v (shrunk cosine). Users of the users table without history get the most popular items (source = 'popular'). Rows: (user, rank, item, score, source).",
    syntax_example = "user_knn(interactions, k [, neighbours => 50] [, shrinkage => 0] [, users => 'table'] [, weighting => 'none'] [, user => 'column', item => 'column', weight => 'column', users_column => 'column'])",
    sql_example = r#"```sql
> SELECT * FROM user_knn('events', 10, neighbours => 25, user => 'user_id', item => 'item_id');
```"#,
    argument(
        name = "interactions",
        description = "A table or view of (user, item[, weight]) rows."
    ),
    argument(name = "k", description = "How many items per user: a positive integer."),
    argument(
        name = "neighbours",
        description = "How many similar users each user keeps (default 50)."
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
pub struct UserKnn;

impl TableFunction for UserKnn {
    fn name(&self) -> &'static str {
        "user_knn"
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        super::knn::plan(Method::UserKnn, args)
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        super::knn::compute(Method::UserKnn, inputs, run)
    }
}

pub(super) fn scorer<'a>(interactions: &'a Interactions, options: &Options) -> impl Fn(usize) -> Vec<Pick> + Sync + 'a {
    // Only the users asked for need neighbours: computed when each one is scored.
    let similarity = Similarity::new(&interactions.by_user, &interactions.by_item, options, 50);
    let k = options.k;
    move |u| {
        let seen = interactions.by_user.row_indices(u);
        with_accumulators(|similar_users, scores| {
            let similar = similarity.most_similar(u, similar_users);
            let denominator: f32 = similar.iter().map(|(_, s)| s.abs()).sum();
            scores.start(interactions.items());
            for &(v, s) in &similar {
                for (i, r) in interactions.by_user.row(v as usize) {
                    scores.add(i, s * r / denominator);
                }
            }
            best_of(scores, seen, k)
        })
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
