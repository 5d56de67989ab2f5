//! Evaluation: the per-user ranking metrics (`precision_at_k`, `recall_at_k`, `hit_at_k`,
//! `ndcg_at_k`, `average_precision_at_k`, `reciprocal_rank_at_k`, in [`ranking_metrics`]) and
//! the aggregate `intra_list_diversity`. Catalog coverage and mean popularity are plain SQL
//! (`count(DISTINCT item)`, a join on item counts), shown in the examples.

mod intra_list_diversity;
pub mod ranking_metrics;

use std::sync::{Arc, LazyLock};

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

pub use intra_list_diversity::IntraListDiversity;
pub use ranking_metrics::{RankingMetric, RankingMetricUdf};

/// The evaluation aggregates, built once.
pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    static UDAFS: LazyLock<Vec<Arc<AggregateUDF>>> =
        LazyLock::new(|| vec![Arc::new(AggregateUDF::new_from_impl(IntraListDiversity::new()))]);
    UDAFS.clone()
}

/// Every ranking metric, built once.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    static UDFS: LazyLock<Vec<Arc<ScalarUDF>>> = LazyLock::new(|| {
        RankingMetric::ALL
            .iter()
            .map(|&m| Arc::new(ScalarUDF::new_from_impl(RankingMetricUdf::new(m))))
            .collect()
    });
    UDFS.clone()
}
