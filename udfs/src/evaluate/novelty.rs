//! `novelty(share)`: how unexpected recommended items are — the mean self-information
//! `−log2 p(i)` of the items shown, `p(i)` the share of users who interacted with item i
//! (`item_popularity`'s `share`). Higher is more novel: an item everyone has seen adds 0.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility};
use datafusion_macros::user_doc;

const NAME: &str = "novelty";

#[user_doc(
    doc_section(label = "Evaluation Functions"),
    description = "The mean self-information −log2 p(i) of a group's items, p(i) in (0, 1] the share of users who interacted with item i (item_popularity's share column): how novel recommendations are, in bits (0 for items everyone has). NULLs are skipped; NULL for an empty group.",
    syntax_example = "novelty(share)",
    sql_example = r#"```sql
> SELECT novelty(p.share) FROM recs r JOIN item_popularity('events') p USING (item_id);
```"#,
    argument(name = "share", description = "The item's share of users, a number in (0, 1].")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Novelty {
    signature: Signature,
}

impl Default for Novelty {
    fn default() -> Self {
        Self::new()
    }
}

impl Novelty {
    pub fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for Novelty {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if !arg_types[0].is_numeric() && !arg_types[0].is_null() {
            return plan_err!("{NAME}: argument 1 (share) must be a number, got {}", arg_types[0]);
        }
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(format!("{}[bits]", args.name), DataType::Float64, false)),
            Arc::new(Field::new(format!("{}[count]", args.name), DataType::Float64, false)),
        ])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(NoveltyAccumulator::default()))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[derive(Debug, Default)]
struct NoveltyAccumulator {
    bits: f64,
    count: f64,
}

impl Accumulator for NoveltyAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let shares = cast(&values[0], &DataType::Float64)?;
        for share in shares.as_primitive::<Float64Type>().iter().flatten() {
            if !(share > 0.0 && share <= 1.0) {
                return exec_err!("{NAME}: a share of users must be in (0, 1], got {share}");
            }
            self.bits -= share.log2();
            self.count += 1.0;
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let bits = states[0].as_primitive::<Float64Type>();
        let counts = states[1].as_primitive::<Float64Type>();
        self.bits += bits.iter().flatten().sum::<f64>();
        self.count += counts.iter().flatten().sum::<f64>();
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::from(self.bits), ScalarValue::from(self.count)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64((self.count > 0.0).then(|| self.bits / self.count)))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}
