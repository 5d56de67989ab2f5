//! Vector functions: the base every profile and scoring function builds on.
//!
//! A vector is an Arrow `FixedSizeList<Float32, d>`. Every function here also accepts
//! `List`/`LargeList` and fixed-size lists of any numeric type (cast to f32), propagates
//! NULL rows, and rejects vectors of different dimensions with an error naming the function
//! and both sizes. Results are `FixedSizeList<Float32, d>` whenever `d` is known when the
//! query is planned (a fixed-size input, a literal, or an explicit dimension), and
//! `List<Float32>` otherwise.

use std::sync::{Arc, LazyLock};

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

pub mod groups;
pub mod kernels;
mod similarity;
// The `vector` function's file is named after it, like every function's.
#[allow(clippy::module_inception)]
mod vector;
mod vector_mean;
mod vector_normalize;
mod vector_to_text;
mod vectors;

pub use similarity::{ArrayCosineSimilarity, ArrayInnerProduct};
pub use vector::Vector;
pub use vector_mean::VectorMean;
pub use vector_normalize::VectorNormalize;
pub use vector_to_text::VectorToText;
pub use vectors::{
    Vectors, check_same_fixed_dimension, check_vector_type, fixed_dimension, output_type, to_columnar, vector_array,
    vector_type,
};

macro_rules! scalar_accessor {
    ($accessor:ident, $udf:ty) => {
        #[doc = concat!("The `", stringify!($udf), "` scalar function, built once.")]
        pub fn $accessor() -> Arc<ScalarUDF> {
            static UDF: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(<$udf>::new())));
            Arc::clone(&UDF)
        }
    };
}

scalar_accessor!(array_cosine_similarity_udf, ArrayCosineSimilarity);
scalar_accessor!(array_inner_product_udf, ArrayInnerProduct);
scalar_accessor!(vector_normalize_udf, VectorNormalize);
scalar_accessor!(vector_udf, Vector);
scalar_accessor!(vector_to_text_udf, VectorToText);

/// The `vector_mean` aggregate, built once.
pub fn vector_mean_udaf() -> Arc<AggregateUDF> {
    static UDAF: LazyLock<Arc<AggregateUDF>> =
        LazyLock::new(|| Arc::new(AggregateUDF::new_from_impl(VectorMean::new())));
    Arc::clone(&UDAF)
}

pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    vec![
        array_cosine_similarity_udf(),
        array_inner_product_udf(),
        vector_normalize_udf(),
        vector_udf(),
        vector_to_text_udf(),
    ]
}

pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    vec![vector_mean_udaf()]
}

/// Builders of logical expressions, for DataFrame users.
pub mod expr_fn {
    use datafusion::logical_expr::Expr;

    pub fn array_cosine_similarity(a: Expr, b: Expr) -> Expr {
        super::array_cosine_similarity_udf().call(vec![a, b])
    }
    pub fn array_inner_product(a: Expr, b: Expr) -> Expr {
        super::array_inner_product_udf().call(vec![a, b])
    }
    pub fn vector_normalize(v: Expr) -> Expr {
        super::vector_normalize_udf().call(vec![v])
    }
    pub fn vector(v: Expr) -> Expr {
        super::vector_udf().call(vec![v])
    }
    pub fn vector_to_text(v: Expr) -> Expr {
        super::vector_to_text_udf().call(vec![v])
    }
    pub fn vector_mean(v: Expr) -> Expr {
        super::vector_mean_udaf().call(vec![v])
    }
}
