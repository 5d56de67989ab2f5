//! `top_k(item, score, k)`: an aggregate for SQL users who compute their own scores — the k
//! highest-scoring items of each group, best first, as a list of `{item, score}` structs
//! (`unnest` turns it into rows). NULL items and scores are skipped; ties go to the smaller item.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility};
use datafusion::physical_expr::expressions::Literal;
use datafusion_macros::user_doc;

const NAME: &str = "top_k";

#[user_doc(
    doc_section(label = "Recommendation Functions"),
    description = "The k highest-scoring items of each group, best first, as a list of {item, score} structs. NULL items and scores are skipped; ties go to the smaller item. `unnest` turns the list into rows.",
    syntax_example = "top_k(item, score, k)",
    sql_example = r#"```sql
> SELECT user_id, top_k(item_id, score, 2) FROM scores GROUP BY user_id;
```"#,
    argument(name = "item", description = "The item id, of any type."),
    argument(name = "score", description = "A number; higher is better."),
    argument(name = "k", description = "How many items to keep: a positive integer constant.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TopK {
    signature: Signature,
}

impl Default for TopK {
    fn default() -> Self {
        Self::new()
    }
}

impl TopK {
    pub fn new() -> Self {
        Self {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

fn entry_fields(item: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("item", item.clone(), true),
        Field::new("score", DataType::Float64, true),
    ])
}

fn list_of(item: &DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(entry_fields(item)),
        true,
    )))
}

impl AggregateUDFImpl for TopK {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if !arg_types[1].is_numeric() && arg_types[1] != DataType::Null {
            return plan_err!("{NAME}: argument 2 (score) must be a number, got {}", arg_types[1]);
        }
        if !arg_types[2].is_integer() {
            return plan_err!(
                "{NAME}: argument 3 (k) must be a positive integer, got {}",
                arg_types[2]
            );
        }
        Ok(list_of(&arg_types[0]))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[best]", args.name),
            args.return_type().clone(),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let k = match args.exprs[2].downcast_ref::<Literal>().map(|l| l.value()) {
            Some(value) => match value.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(Some(k)) if k > 0 => k as usize,
                other => return plan_err!("{NAME}: argument 3 (k) must be a positive integer, got {other}"),
            },
            None => return plan_err!("{NAME}: argument 3 (k) must be a constant"),
        };
        let DataType::List(field) = args.return_type() else {
            return plan_err!("{NAME}: unexpected return type {}", args.return_type());
        };
        let DataType::Struct(fields) = field.data_type() else {
            return plan_err!("{NAME}: unexpected return type {}", args.return_type());
        };
        Ok(Box::new(TopKAccumulator {
            k,
            best: Vec::new(),
            fields: fields.clone(),
        }))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[derive(Debug)]
struct TopKAccumulator {
    k: usize,
    /// Best first.
    best: Vec<(ScalarValue, f64)>,
    fields: Fields,
}

fn better(a: &(ScalarValue, f64), b: &(ScalarValue, f64)) -> Ordering {
    b.1.total_cmp(&a.1)
        .then_with(|| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal))
}

impl TopKAccumulator {
    fn offer(&mut self, item: ScalarValue, score: f64) {
        let candidate = (item, score);
        if self.best.len() == self.k && better(&candidate, self.best.last().expect("k > 0")) != Ordering::Less {
            return;
        }
        let position = self.best.partition_point(|e| better(e, &candidate) == Ordering::Less);
        self.best.insert(position, candidate);
        self.best.truncate(self.k);
    }

    fn list(&self) -> Result<ScalarValue> {
        let items = ScalarValue::iter_to_array(self.best.iter().map(|(item, _)| item.clone())).or_else(|_| {
            Ok::<_, datafusion::error::DataFusionError>(datafusion::arrow::array::new_empty_array(
                self.fields[0].data_type(),
            ))
        })?;
        let scores: ArrayRef = Arc::new(datafusion::arrow::array::Float64Array::from(
            self.best.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        ));
        let entries = StructArray::try_new(self.fields.clone(), vec![items, scores], None)?;
        Ok(ScalarValue::List(Arc::new(datafusion::arrow::array::ListArray::new(
            Arc::new(Field::new_list_field(DataType::Struct(self.fields.clone()), true)),
            datafusion::arrow::buffer::OffsetBuffer::from_lengths([entries.len()]),
            Arc::new(entries),
            None,
        ))))
    }
}

impl Accumulator for TopKAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let scores = datafusion::arrow::compute::cast(&values[1], &DataType::Float64)?;
        let scores = scores.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        for row in 0..values[0].len() {
            if values[0].is_valid(row) && scores.is_valid(row) && !scores.value(row).is_nan() {
                self.offer(ScalarValue::try_from_array(&values[0], row)?, scores.value(row));
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for row in 0..lists.len() {
            if lists.is_null(row) {
                continue;
            }
            let entries = lists.value(row);
            let entries = entries.as_struct();
            self.update_batch(&[Arc::clone(entries.column(0)), Arc::clone(entries.column(1))])?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.list()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.list()
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.best.iter().map(|(item, _)| item.size()).sum::<usize>()
    }
}
