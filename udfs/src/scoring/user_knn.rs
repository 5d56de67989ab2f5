//! `user_knn(interactions, k [, neighbours [, shrinkage [, users [, weighting]]]])`: user-based
//! collaborative filtering, `R(u,i) = Σ_{v∈N(u)} sim(u,v)·r(v,i) / Σ_{v∈N(u)} |sim(u,v)|` over
//! the `neighbours` nearest users by shrunk cosine.

use datafusion::arrow::array::RecordBatch;
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;

use std::cell::RefCell;

use super::knn::{Method, Options, Pick, Scratch, Similarity, best_of};
use crate::table_function::interactions::Interactions;
use crate::table_function::{Arguments, Planned, Run, TableFunction};

#[user_doc(
    doc_section(label = "Recommendation Functions"),
    description = "User-based collaborative filtering over (user, item[, weight]) rows: the top k unseen items per user by Σ sim(u,v)·r(v,i) / Σ |sim(u,v)| over u's nearest users v (shrunk cosine). Users of the users table without history get the most popular items (source = 'popular'). Rows: (user, rank, item, score, source).",
    syntax_example = "user_knn(interactions, k [, neighbours [, shrinkage [, users [, weighting]]]])",
    sql_example = r#"```sql
> SELECT * FROM user_knn('events', 10, 25);
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
        description = "How interactions are weighted before similarities are computed: 'none' (default), 'tfidf' or 'bm25' (K1 = 100, B = 0.8, as the implicit library); pass '' as users to keep every user."
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

thread_local! {
    /// One accumulator per user, reused by every user a thread scores (it is left zeroed).
    static SCRATCH: RefCell<Scratch> = const { RefCell::new((Vec::new(), Vec::new())) };
}

pub(super) fn scorer<'a>(interactions: &'a Interactions, options: &Options) -> impl Fn(usize) -> Vec<Pick> + Sync + 'a {
    // Only the users asked for need neighbours: computed when each one is scored.
    let similarity = Similarity::new(&interactions.by_user, &interactions.by_item, options, 50);
    let k = options.k;
    move |u| {
        let similar = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            if scratch.0.len() < interactions.users() {
                scratch.0.resize(interactions.users(), 0.0);
            }
            similarity.most_similar(u, &mut scratch)
        });
        let denominator: f32 = similar.iter().map(|(_, s)| s.abs()).sum();
        let mut scores = vec![0.0f32; interactions.items()];
        let mut touched = Vec::new();
        for &(v, s) in &similar {
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
