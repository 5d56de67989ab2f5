//! `vector(values [, dim])`: a vector from a list, an array literal or JSON text.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::vectors::{
    Vectors, check_vector_type, fixed_dimension, output_type, to_columnar, variable_vector_type, vector_array,
    vector_type,
};

fn is_text(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Reads an optional integer literal argument, such as a dimension or a number of decimals.
/// An integer literal argument from `min` to `max`; `None` when there is none.
pub(super) fn literal_count(
    function: &str,
    name: &str,
    value: Option<&ScalarValue>,
    (min, max): (usize, usize),
) -> Result<Option<usize>> {
    let Some(value) = value else { return Ok(None) };
    // A value beyond i64 does not cast; it is out of range all the same.
    match value.cast_to(&DataType::Int64) {
        Ok(ScalarValue::Int64(Some(n))) if n >= 0 && (min..=max).contains(&(n as usize)) => Ok(Some(n as usize)),
        _ => plan_err!("{function}: {name} must be an integer from {min} to {max}, got {value}"),
    }
}

fn parse_json_vector(function: &str, text: &str) -> Result<Vec<f32>> {
    serde_json::from_str::<Vec<f32>>(text).or_else(|_| {
        let shown: String = text.chars().take(60).collect();
        let ellipsis = if shown.len() < text.len() { "…" } else { "" };
        exec_err!("{function}: expected a JSON array of numbers such as '[0.5, 1, -2]', got '{shown}{ellipsis}'")
    })
}

#[user_doc(
    doc_section(label = "Vector Functions"),
    description = "Builds a vector (FixedSizeList<Float32>) from a list of numbers, an array literal, or JSON text such as '[0.1, 0.2]'. With `dim`, every vector must have exactly `dim` values and the result is fixed-size even when the input is a variable-size list or text column; without it, a fixed-size input keeps its dimension and any other input gives a List<Float32> (the dimension is then known only when the query runs).",
    syntax_example = "vector(values[, dim])",
    sql_example = r#"```sql
> SELECT vector('[1, 2.5, 3]', 3);
[1.0, 2.5, 3.0]
```"#,
    argument(
        name = "values",
        description = "A list of numbers, an array literal, or JSON text holding an array of numbers."
    ),
    argument(
        name = "dim",
        description = "Optional integer literal: the dimension every vector must have."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Vector {
    signature: Signature,
}

impl Default for Vector {
    fn default() -> Self {
        Self::new()
    }
}

impl Vector {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    fn vectors_from_text(&self, array: &ArrayRef, fixed: Option<usize>, return_type: &DataType) -> Result<ArrayRef> {
        let texts: Vec<Option<&str>> = match array.data_type() {
            DataType::Utf8 => array.as_string::<i32>().iter().collect(),
            DataType::LargeUtf8 => array.as_string::<i64>().iter().collect(),
            _ => array.as_string_view().iter().collect(),
        };
        let mut values = Vec::new();
        let mut lengths = Vec::with_capacity(texts.len());
        for text in &texts {
            let length = match text {
                Some(text) => {
                    let parsed = parse_json_vector(self.name(), text)?;
                    if let Some(expected) = fixed.filter(|f| *f != parsed.len()) {
                        return exec_err!("vector: expected {expected} values, got {}", parsed.len());
                    }
                    values.extend_from_slice(&parsed);
                    parsed.len()
                }
                None => {
                    let length = fixed.unwrap_or(0);
                    values.resize(values.len() + length, 0.0);
                    length
                }
            };
            lengths.push(length);
        }
        let nulls = NullBuffer::from_iter(texts.iter().map(Option::is_some));
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        match fixed {
            Some(dim) => vector_array(return_type, values, dim, texts.len(), nulls),
            None => {
                let item = Arc::new(Field::new_list_field(DataType::Float32, true));
                let child = Arc::new(datafusion::arrow::array::Float32Array::from(values));
                Ok(Arc::new(ListArray::try_new(
                    item,
                    OffsetBuffer::from_lengths(lengths),
                    child,
                    nulls,
                )?))
            }
        }
    }
}

impl ScalarUDFImpl for Vector {
    fn name(&self) -> &str {
        "vector"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types.first().map_or_else(variable_vector_type, output_type))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let input = args.arg_fields[0].data_type();
        // Arrow sizes a fixed-size list with an i32.
        let dims = (1, i32::MAX as usize);
        let explicit = literal_count(
            self.name(),
            "dim",
            args.scalar_arguments.get(1).copied().flatten(),
            dims,
        )?;
        if args.arg_fields.len() == 2 && explicit.is_none() {
            return plan_err!("vector: dim must be an integer literal");
        }
        if let (Some(dim), Some(fixed)) = (explicit, fixed_dimension(input))
            && dim != fixed
        {
            return plan_err!("vector: expected {dim} values, got {fixed}");
        }
        let data_type = match explicit.or(fixed_dimension(input)) {
            Some(dim) => vector_type(dim),
            None => variable_vector_type(),
        };
        Ok(Arc::new(Field::new(self.name(), data_type, true)))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let (values, dim) = match arg_types {
            [values] => (values, None),
            [values, dim] => (values, Some(dim)),
            _ => {
                return plan_err!(
                    "vector: expected 1 or 2 arguments (values[, dim]), got {}",
                    arg_types.len()
                );
            }
        };
        if !is_text(values) {
            check_vector_type(self.name(), 1, values)?;
        }
        if let Some(dim) = dim
            && !dim.is_integer()
        {
            return plan_err!("vector: dim must be an integer, got {dim}");
        }
        Ok(arg_types.to_vec())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let return_type = args.return_field.data_type().clone();
        let fixed = fixed_dimension(&return_type);
        let is_scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let input = args.args[0].to_array(if is_scalar { 1 } else { args.number_rows })?;
        let result = if is_text(input.data_type()) {
            self.vectors_from_text(&input, fixed, &return_type)?
        } else {
            let vectors = Vectors::try_new(self.name(), 1, &input)?;
            let dim = vectors.dim().or(fixed).unwrap_or(0);
            if let Some(expected) = fixed.filter(|f| *f != dim) {
                return exec_err!("vector: expected {expected} values, got {dim}");
            }
            let mut values = Vec::with_capacity(vectors.len() * dim);
            let validity: Vec<bool> = (0..vectors.len())
                .map(|row| match vectors.row(row) {
                    Some(v) => {
                        values.extend_from_slice(v);
                        true
                    }
                    None => {
                        values.resize(values.len() + dim, 0.0);
                        false
                    }
                })
                .collect();
            let nulls = NullBuffer::from(validity);
            let nulls = (nulls.null_count() > 0).then_some(nulls);
            vector_array(&return_type, values, dim, vectors.len(), nulls)?
        };
        to_columnar(result, is_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
