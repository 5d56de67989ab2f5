//! `vector_to_text(v [, decimals])`: a vector printed in a readable form, `[0.1, 0.2]`.

use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::vector::literal_count;
use super::vectors::{Vectors, check_vector_type, to_columnar};

/// More decimals than an f32 carries only print zeros.
const MAX_DECIMALS: usize = 30;

#[user_doc(
    doc_section(label = "Vector Functions"),
    description = "A vector as readable text, '[0.1, 0.2, 0.3]' (the form `vector` reads back). With `decimals`, every value is rounded to that many decimal places.",
    syntax_example = "vector_to_text(v[, decimals])",
    sql_example = r#"```sql
> SELECT vector_to_text([1.0, 2.25, 3.0], 1);
[1.0, 2.2, 3.0]
```"#,
    argument(name = "v", description = "A vector: a fixed-size or variable-size list of numbers."),
    argument(
        name = "decimals",
        description = "Optional integer literal: decimal places to print."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VectorToText {
    signature: Signature,
}

impl Default for VectorToText {
    fn default() -> Self {
        Self::new()
    }
}

impl VectorToText {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for VectorToText {
    fn name(&self) -> &str {
        "vector_to_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [v] => check_vector_type(self.name(), 1, v)?,
            [v, decimals] => {
                check_vector_type(self.name(), 1, v)?;
                if !decimals.is_integer() {
                    return plan_err!("vector_to_text: decimals must be an integer, got {decimals}");
                }
            }
            _ => {
                return plan_err!(
                    "vector_to_text: expected 1 or 2 arguments (v[, decimals]), got {}",
                    arg_types.len()
                );
            }
        }
        Ok(arg_types.to_vec())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let decimals = match args.args.get(1) {
            None => None,
            Some(ColumnarValue::Scalar(value)) => {
                literal_count(self.name(), "decimals", Some(value), (0, MAX_DECIMALS))?
            }
            Some(ColumnarValue::Array(_)) => {
                return exec_err!("vector_to_text: decimals must be an integer literal");
            }
        };
        let is_scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let vectors = Vectors::from_columnar(self.name(), 1, &args.args[0])?;
        let rows = if is_scalar { 1 } else { args.number_rows };
        let mut line = String::new();
        let mut texts = StringBuilder::with_capacity(rows, rows * vectors.dim().unwrap_or(0) * 8);
        for row in 0..rows {
            let Some(v) = vectors.row(row) else {
                texts.append_null();
                continue;
            };
            line.clear();
            line.push('[');
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    line.push_str(", ");
                }
                let _ = match decimals {
                    Some(d) => write!(line, "{x:.d$}"),
                    None => write!(line, "{x:?}"),
                };
            }
            line.push(']');
            texts.append_value(&line);
        }
        let result: ArrayRef = Arc::new(texts.finish());
        to_columnar(result, is_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
