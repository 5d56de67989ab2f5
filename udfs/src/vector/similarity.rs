//! `array_cosine_similarity` and `array_inner_product`: DuckDB's names for the two
//! vector similarities, computed in f32 over the flat vector buffers.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::common::utils::take_function_args;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::kernels;
use super::vectors::{Vectors, check_same_fixed_dimension, check_vector_type, to_columnar};

/// Validates two vector arguments at planning time and keeps their types: the kernel reads
/// every accepted type itself, so no cast is planned.
fn coerce_vector_pair(function: &str, arg_types: &[DataType]) -> Result<Vec<DataType>> {
    let [a, b] = take_function_args(function, arg_types)?;
    check_vector_type(function, 1, a)?;
    check_vector_type(function, 2, b)?;
    check_same_fixed_dimension(function, a, b)?;
    Ok(arg_types.to_vec())
}

/// Applies `kernel` row by row to two vector arguments; NULL when either row is NULL or the
/// kernel has no answer.
fn invoke_vector_pair(
    function: &str,
    args: &ScalarFunctionArgs,
    kernel: impl Fn(&[f32], &[f32]) -> Option<f32>,
) -> Result<ColumnarValue> {
    let [a, b] = take_function_args(function, &args.args)?;
    let all_scalar = matches!((a, b), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
    let left = Vectors::from_columnar(function, 1, a)?;
    let right = Vectors::from_columnar(function, 2, b)?;
    left.check_same_dimension(&right, function)?;
    let rows = if all_scalar { 1 } else { args.number_rows };
    let result: Float32Array = (0..rows)
        .map(|row| match (left.row(row), right.row(row)) {
            (Some(x), Some(y)) => kernel(x, y),
            _ => None,
        })
        .collect();
    let result: ArrayRef = Arc::new(result);
    to_columnar(result, all_scalar)
}

#[user_doc(
    doc_section(label = "Vector Functions"),
    description = "Cosine similarity of two vectors, `a·b / (‖a‖·‖b‖)`, in [-1, 1]. NULL when either vector is NULL or all zeros. Both vectors must have the same dimension.",
    syntax_example = "array_cosine_similarity(a, b)",
    sql_example = r#"```sql
> SELECT array_cosine_similarity([1.0, 0.0], [1.0, 1.0]);
0.70710677
```"#,
    argument(name = "a", description = "A vector: a fixed-size or variable-size list of numbers."),
    argument(name = "b", description = "A vector of the same dimension as `a`.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ArrayCosineSimilarity {
    signature: Signature,
}

impl Default for ArrayCosineSimilarity {
    fn default() -> Self {
        Self::new()
    }
}

impl ArrayCosineSimilarity {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ArrayCosineSimilarity {
    fn name(&self) -> &str {
        "array_cosine_similarity"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float32)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_vector_pair(self.name(), arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        invoke_vector_pair(self.name(), &args, kernels::cosine_similarity)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[user_doc(
    doc_section(label = "Vector Functions"),
    description = "Inner (dot) product of two vectors, `Σ a_i·b_i`. NULL when either vector is NULL. Both vectors must have the same dimension.",
    syntax_example = "array_inner_product(a, b)",
    sql_example = r#"```sql
> SELECT array_inner_product([1.0, 2.0], [3.0, 4.0]);
11.0
```"#,
    argument(name = "a", description = "A vector: a fixed-size or variable-size list of numbers."),
    argument(name = "b", description = "A vector of the same dimension as `a`.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ArrayInnerProduct {
    signature: Signature,
}

impl Default for ArrayInnerProduct {
    fn default() -> Self {
        Self::new()
    }
}

impl ArrayInnerProduct {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ArrayInnerProduct {
    fn name(&self) -> &str {
        "array_inner_product"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float32)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_vector_pair(self.name(), arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        invoke_vector_pair(self.name(), &args, |a, b| Some(kernels::dot(a, b)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
