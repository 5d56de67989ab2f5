//! Profile functions: pooling a user's event vectors into one profile vector — attention
//! pooling, time-decayed means, and the attention weights that explain a profile.

mod attention;

use std::sync::{Arc, LazyLock};

use datafusion::logical_expr::AggregateUDF;

pub use attention::{AttentionPool, AttentionWeights, DecayedMean, Logits};

/// Every profile aggregate, built once.
pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    static UDAFS: LazyLock<Vec<Arc<AggregateUDF>>> = LazyLock::new(|| {
        vec![
            Arc::new(AggregateUDF::new_from_impl(AttentionPool::new())),
            Arc::new(AggregateUDF::new_from_impl(DecayedMean::new())),
            Arc::new(AggregateUDF::new_from_impl(AttentionWeights::new())),
        ]
    });
    UDAFS.clone()
}
