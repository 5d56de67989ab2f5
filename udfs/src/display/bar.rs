//! `bar(x, min, max [, width])`: a horizontal bar of block characters whose length is
//! proportional to `x - min`, as DuckDB's `bar`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion_macros::user_doc;

const FULL_BLOCK: char = '█';
/// One to seven eighths of a block.
const PARTIAL_BLOCKS: [char; 7] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉'];
const DEFAULT_WIDTH: f64 = 80.0;
const MAX_WIDTH: f64 = 1000.0;

#[user_doc(
    doc_section(label = "Display Functions"),
    description = "A bar of block characters, for charts in the terminal: its length is proportional to x - min, and width characters when x reaches max. Values at or below min draw an empty bar, values at or above max a full one; the bar is padded with spaces to width characters so bars line up. NULL when any argument is NULL.",
    syntax_example = "bar(x, min, max[, width])",
    sql_example = r#"```sql
> SELECT n, bar(n, 0, 4, 8) AS chart FROM (VALUES (1), (2), (3.5)) AS t(n);
+-----+----------+
| n   | chart    |
+-----+----------+
| 1.0 | ██       |
| 2.0 | ████     |
| 3.5 | ███████  |
+-----+----------+
```"#,
    argument(name = "x", description = "The value to draw."),
    argument(name = "min", description = "The value of an empty bar."),
    argument(name = "max", description = "The value of a full bar."),
    argument(
        name = "width",
        description = "Optional: characters of a full bar, 1 to 1000 (default 80)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Bar {
    signature: Signature,
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

impl Bar {
    pub fn new() -> Self {
        let numbers = |count| TypeSignature::Uniform(count, vec![DataType::Float64]);
        Self {
            signature: Signature::one_of(vec![numbers(3), numbers(4)], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Bar {
    fn name(&self) -> &str {
        "bar"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let is_scalar = args.args.iter().all(|arg| matches!(arg, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let numbers: Vec<_> = arrays.iter().map(|array| array.as_primitive::<Float64Type>()).collect();
        let rows = numbers[0].len();
        let mut bars = StringBuilder::with_capacity(rows, rows * 24);
        let mut line = String::new();
        for row in 0..rows {
            let value = |i: usize| (!numbers[i].is_null(row)).then(|| numbers[i].value(row));
            let width = match numbers.get(3) {
                Some(_) => value(3),
                None => Some(DEFAULT_WIDTH),
            };
            let (Some(x), Some(min), Some(max), Some(width)) = (value(0), value(1), value(2), width) else {
                bars.append_null();
                continue;
            };
            draw(x, min, max, width, &mut line)?;
            bars.append_value(&line);
        }
        let result: ArrayRef = Arc::new(bars.finish());
        if is_scalar {
            return datafusion::common::ScalarValue::try_from_array(&result, 0).map(ColumnarValue::Scalar);
        }
        Ok(ColumnarValue::Array(result))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// Draws one bar into `line`, in eighths of a character.
fn draw(x: f64, min: f64, max: f64, width: f64, line: &mut String) -> Result<()> {
    if !(1.0..=MAX_WIDTH).contains(&width) {
        return exec_err!("bar: argument 4 (width) must be between 1 and {MAX_WIDTH}, got {width}");
    }
    let length = if x.is_nan() || min.is_nan() || max.is_nan() || x <= min {
        0.0
    } else if x >= max {
        width
    } else {
        width * (x - min) / (max - min)
    };
    if !length.is_finite() {
        return exec_err!("bar: the bar for x = {x} between {min} and {max} has no finite length");
    }
    let eighths = (length * 8.0) as usize;
    let (full, eighths_left) = (eighths / 8, eighths % 8);
    line.clear();
    line.extend(std::iter::repeat_n(FULL_BLOCK, full));
    let mut used = full;
    if let Some(&partial) = eighths_left.checked_sub(1).and_then(|i| PARTIAL_BLOCKS.get(i)) {
        line.push(partial);
        used += 1;
    }
    line.extend(std::iter::repeat_n(' ', (width as usize).saturating_sub(used)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(x: f64, min: f64, max: f64, width: f64) -> String {
        let mut line = String::new();
        draw(x, min, max, width, &mut line).unwrap();
        line
    }

    #[test]
    fn length_is_proportional_and_padded_to_width() {
        assert_eq!(bar(2.0, 0.0, 4.0, 8.0), "████    ");
        assert_eq!(bar(3.5, 0.0, 4.0, 8.0), "███████ ");
        assert_eq!(bar(1.0, 0.0, 64.0, 8.0), "▏       ");
        assert_eq!(bar(-1.0, 0.0, 4.0, 3.0), "   ");
        assert_eq!(bar(9.0, 0.0, 4.0, 3.0), "███");
        assert_eq!(bar(f64::NAN, 0.0, 4.0, 2.0), "  ");
        assert!(draw(1.0, 0.0, 2.0, 0.5, &mut String::new()).is_err());
        assert!(draw(1.0, 0.0, 2.0, 1e9, &mut String::new()).is_err());
    }
}
