//! Evaluation: the per-user ranking metrics (`precision_at_k`, `recall_at_k`, `hit_at_k`,
//! `ndcg_at_k`, `average_precision_at_k`, `reciprocal_rank_at_k`, in [`ranking_metrics`]) and
//! the measures beyond accuracy: `intra_list_diversity`, exposure inequality (`gini_index`),
//! `novelty`, popularity bias (`item_popularity`: ARP, APLT) and miscalibration
//! (`calibration_kl`). Catalog coverage is plain SQL (`count(DISTINCT item)`).

pub mod calibration_kl;
mod gini_index;
mod intra_list_diversity;
pub mod item_popularity;
mod novelty;
pub mod ranking_metrics;

use std::sync::{Arc, LazyLock};

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

pub use calibration_kl::CalibrationKl;
pub use gini_index::GiniIndex;
pub use intra_list_diversity::IntraListDiversity;
pub use item_popularity::ItemPopularity;
pub use novelty::Novelty;
pub use ranking_metrics::{RankingMetric, RankingMetricUdf};

/// The evaluation aggregates, built once.
pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    static UDAFS: LazyLock<Vec<Arc<AggregateUDF>>> = LazyLock::new(|| {
        vec![
            Arc::new(AggregateUDF::new_from_impl(IntraListDiversity::new())),
            Arc::new(AggregateUDF::new_from_impl(GiniIndex::new())),
            Arc::new(AggregateUDF::new_from_impl(Novelty::new())),
        ]
    });
    UDAFS.clone()
}

/// The evaluation scalars, built once: every ranking metric and `calibration_kl`.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    static UDFS: LazyLock<Vec<Arc<ScalarUDF>>> = LazyLock::new(|| {
        let mut functions: Vec<Arc<ScalarUDF>> = RankingMetric::ALL
            .iter()
            .map(|&m| Arc::new(ScalarUDF::new_from_impl(RankingMetricUdf::new(m))))
            .collect();
        functions.push(Arc::new(ScalarUDF::new_from_impl(CalibrationKl::new())));
        functions
    });
    UDFS.clone()
}
