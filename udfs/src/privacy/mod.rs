//! Protecting the people in a release: keyed pseudonyms of ids ([`Pseudonymize`]) and
//! differentially private aggregates for profile statistics (`dp_count`, `dp_sum`, `dp_avg`,
//! `dp_vector_mean`), with exact discrete noise ([`noise`]) on a lattice ([`mechanism`]).

mod dp_aggregates;
pub mod mechanism;
pub mod noise;
mod pseudonymize;

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

pub use dp_aggregates::{
    DpAvg, DpCount, DpKind, DpSum, DpVectorMean, dp_avg_noise_std, dp_count_noise_std, dp_sum_noise_std,
    dp_vector_mean_noise_std,
};
pub use pseudonymize::{Pseudonymize, hmac_sha256, key_variable, read_key};

pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    vec![Arc::new(ScalarUDF::from(Pseudonymize::new()))]
}

pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::new_from_impl(DpCount::new())),
        Arc::new(AggregateUDF::new_from_impl(DpSum::new())),
        Arc::new(AggregateUDF::new_from_impl(DpAvg::new())),
        Arc::new(AggregateUDF::new_from_impl(DpVectorMean::new())),
    ]
}
