//! Profile functions: pooling a user's event vectors into one profile vector — attention
//! pooling (`attention_pool`), time-decayed means (`decayed_mean`), both on the streaming
//! softmax of [`pooling`] — and the attention weights that explain a profile
//! (`attention_weights`).

mod attention_pool;
mod attention_weights;
mod decayed_mean;
pub mod pooling;

use std::sync::{Arc, LazyLock};

use datafusion::logical_expr::AggregateUDF;

pub use attention_pool::AttentionPool;
pub use attention_weights::AttentionWeights;
pub use decayed_mean::DecayedMean;
pub use pooling::Logits;

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
