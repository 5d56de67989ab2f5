//! `vector_normalize`: scales a vector to unit length (L2), so that the inner product of
//! normalised vectors is their cosine similarity.

use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::common::utils::take_function_args;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::kernels;
use super::vectors::{Vectors, check_vector_type, output_type, to_columnar, vector_array};

#[user_doc(
    doc_section(label = "Vector Functions"),
    description = "Scales a vector to unit Euclidean length, `v / ‖v‖`, as a FixedSizeList<Float32>. An all-zero vector stays all zeros; NULL stays NULL. DataFusion's `array_normalize` returns a List<Float64>; this one keeps recfusion's vector type.",
    syntax_example = "vector_normalize(v)",
    sql_example = r#"```sql
> SELECT vector_to_text(vector_normalize([3.0, 4.0]));
[0.6, 0.8]
```"#,
    argument(name = "v", description = "A vector: a fixed-size or variable-size list of numbers.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VectorNormalize {
    signature: Signature,
}

impl Default for VectorNormalize {
    fn default() -> Self {
        Self::new()
    }
}

impl VectorNormalize {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for VectorNormalize {
    fn name(&self) -> &str {
        "vector_normalize"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let [input] = take_function_args(self.name(), arg_types)?;
        Ok(output_type(input))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [input] = take_function_args(self.name(), arg_types)?;
        check_vector_type(self.name(), 1, input)?;
        Ok(arg_types.to_vec())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [input] = take_function_args(self.name(), &args.args)?;
        let is_scalar = matches!(input, ColumnarValue::Scalar(_));
        let vectors = Vectors::from_columnar(self.name(), 1, input)?;
        let rows = if is_scalar { 1 } else { args.number_rows };
        let dim = vectors.dim().unwrap_or(0);
        let mut values = vec![0f32; rows * dim];
        let validity: Vec<bool> = (0..rows)
            .map(|row| {
                let Some(v) = vectors.row(row) else {
                    return false;
                };
                kernels::normalize_into(v, &mut values[row * dim..(row + 1) * dim]);
                true
            })
            .collect();
        let nulls = NullBuffer::from(validity);
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        let result = vector_array(args.return_field.data_type(), values, dim, rows, nulls)?;
        to_columnar(result, is_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
