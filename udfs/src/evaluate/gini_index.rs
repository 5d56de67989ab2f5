//! `gini_index(exposure)`: how unequally a list of non-negative amounts is spread — over the
//! catalogue, each item's exposure (how many lists show it) — as the Gini index
//! `Σ_i (2i − n − 1)·x_(i) / (n·Σ x)` over the values sorted ascending (i = 1..n): 0 when every
//! item is shown alike, towards 1 when a few items take every slot. Items never shown must be in
//! the group with 0 (a LEFT JOIN from the catalogue), or the index cannot see them.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility};
use datafusion_macros::user_doc;

const NAME: &str = "gini_index";

#[user_doc(
    doc_section(label = "Evaluation Functions"),
    description = "The Gini index of a group of non-negative amounts, Σ_i (2i − n − 1)·x_(i) / (n·Σx) over the values sorted ascending: how unequally recommendations expose the catalogue when the amounts are each item's count of appearances in the lists (0 = every item alike; near 1 = a few items everywhere). Items shown in no list belong in the group with 0 (LEFT JOIN the catalogue). NULLs are skipped; NULL for an empty group or a zero sum.",
    syntax_example = "gini_index(exposure)",
    sql_example = r#"```sql
> SELECT gini_index(coalesce(r.shown, 0)) FROM items i
  LEFT JOIN (SELECT item_id, count(*) AS shown FROM recs GROUP BY item_id) r USING (item_id);
```"#,
    argument(
        name = "exposure",
        description = "A non-negative number per item, e.g. how many lists show it."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GiniIndex {
    signature: Signature,
}

impl Default for GiniIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl GiniIndex {
    pub fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for GiniIndex {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if !arg_types[0].is_numeric() && !arg_types[0].is_null() {
            return plan_err!("{NAME}: argument 1 (exposure) must be a number, got {}", arg_types[0]);
        }
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[values]", args.name),
            DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            true,
        ))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(GiniAccumulator::default()))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// The Gini index of `values`, `None` for none or a zero sum.
pub fn gini(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    let total: f64 = values.iter().sum();
    if values.is_empty() || total <= 0.0 {
        return None;
    }
    let weighted: f64 = values
        .iter()
        .enumerate()
        .map(|(i, x)| (2.0 * (i as f64 + 1.0) - n - 1.0) * x)
        .sum();
    Some(weighted / (n * total))
}

#[derive(Debug, Default)]
struct GiniAccumulator {
    values: Vec<f64>,
}

impl GiniAccumulator {
    fn add(&mut self, values: &ArrayRef) -> Result<()> {
        let values = cast(values, &DataType::Float64)?;
        for value in values.as_primitive::<Float64Type>().iter().flatten() {
            if !(value.is_finite() && value >= 0.0) {
                return exec_err!("{NAME}: exposure must be a finite number ≥ 0, got {value}");
            }
            self.values.push(value);
        }
        Ok(())
    }
}

impl Accumulator for GiniAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for list in lists.iter().flatten() {
            self.add(&list)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = Float64Array::from(std::mem::take(&mut self.values));
        let field = Arc::new(Field::new_list_field(DataType::Float64, true));
        let list = ListArray::new(
            field,
            OffsetBuffer::from_lengths([values.len()]),
            Arc::new(values),
            None,
        );
        Ok(vec![ScalarValue::List(Arc::new(list))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(gini(&mut self.values)))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.values.capacity() * size_of::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        assert_eq!(gini(&mut [5.0, 5.0, 5.0, 5.0]), Some(0.0));
        // One of four items takes everything: (2·4 − 5)/4 = 0.75.
        assert_eq!(gini(&mut [0.0, 0.0, 0.0, 8.0]), Some(0.75));
        // 1, 2, 3: (−2·1 + 0·2 + 2·3) / (3·6) = 4/18.
        assert!((gini(&mut [3.0, 1.0, 2.0]).unwrap() - 4.0 / 18.0).abs() < 1e-12);
        assert_eq!(gini(&mut []), None);
        assert_eq!(gini(&mut [0.0, 0.0]), None);
    }
}
