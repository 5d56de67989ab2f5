//! `attention_weights(id, vector, query [, bias])`: the attention weights of a profile as a list
//! of `{id, weight}`, largest first, to explain a profile by the events that drove it.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray, StructArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility};
use datafusion_macros::user_doc;

use crate::vector::{Vectors, check_vector_type};

use super::pooling::Logits;

#[user_doc(
    doc_section(label = "Profile Functions"),
    description = "The attention weights attention_pool would give a group's events, as a list of {id, weight} with the largest first: which events drove the profile.",
    syntax_example = "attention_weights(id, vector, query [, bias])",
    sql_example = r#"```sql
> SELECT e.user_id, attention_weights(e.item_id, i.embedding, m.profile, -0.05 * e.position)
  FROM events e JOIN items i USING (item_id) JOIN means m USING (user_id) GROUP BY e.user_id;
```"#,
    argument(name = "id", description = "The event's id (e.g. the item), of any type."),
    argument(name = "vector", description = "The event's vector."),
    argument(name = "query", description = "The query vector; NULL for none."),
    argument(name = "bias", description = "A number added to the event's logit (optional).")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AttentionWeights {
    signature: Signature,
}

impl Default for AttentionWeights {
    fn default() -> Self {
        Self::new()
    }
}

impl AttentionWeights {
    pub fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Any(3),
                    datafusion::logical_expr::TypeSignature::Any(4),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

fn weight_fields(id: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("id", id.clone(), true),
        Field::new("weight", DataType::Float64, true),
    ])
}

impl AggregateUDFImpl for AttentionWeights {
    fn name(&self) -> &str {
        "attention_weights"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_vector_type("attention_weights", 2, &arg_types[1])?;
        Logits::Attention.check_types("attention_weights", 3, &arg_types[2..])?;
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(weight_fields(&arg_types[0])),
            true,
        ))))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[logits]", args.name),
            args.return_type().clone(),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let DataType::List(field) = args.return_type() else {
            return plan_err!("attention_weights: unexpected return type {}", args.return_type());
        };
        let DataType::Struct(fields) = field.data_type() else {
            return plan_err!("attention_weights: unexpected return type {}", args.return_type());
        };
        Ok(Box::new(WeightsAccumulator {
            fields: fields.clone(),
            logits: Vec::new(),
        }))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[derive(Debug)]
struct WeightsAccumulator {
    fields: Fields,
    /// (id, logit) of every event; the state carries logits, evaluation normalises them.
    logits: Vec<(ScalarValue, f64)>,
}

impl WeightsAccumulator {
    fn list(&self, entries: &[(ScalarValue, f64)]) -> Result<ScalarValue> {
        let ids = if entries.is_empty() {
            datafusion::arrow::array::new_empty_array(self.fields[0].data_type())
        } else {
            ScalarValue::iter_to_array(entries.iter().map(|(id, _)| id.clone()))?
        };
        let weights: ArrayRef = Arc::new(Float64Array::from(entries.iter().map(|(_, w)| *w).collect::<Vec<_>>()));
        let structs = StructArray::try_new(self.fields.clone(), vec![ids, weights], None)?;
        Ok(ScalarValue::List(Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(DataType::Struct(self.fields.clone()), true)),
            OffsetBuffer::from_lengths([structs.len()]),
            Arc::new(structs),
            None,
        ))))
    }
}

impl Accumulator for WeightsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let vectors = Vectors::try_new("attention_weights", 2, &values[1])?;
        let logits = Logits::Attention.compute("attention_weights", &values[1..], &vectors)?;
        for (row, logit) in logits.into_iter().enumerate() {
            if let Some(logit) = logit {
                self.logits.push((ScalarValue::try_from_array(&values[0], row)?, logit));
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for row in (0..lists.len()).filter(|&row| lists.is_valid(row)) {
            let entries = lists.value(row);
            let entries = entries.as_struct();
            let logits = entries.column(1).as_primitive::<Float64Type>();
            for i in 0..entries.len() {
                self.logits
                    .push((ScalarValue::try_from_array(entries.column(0), i)?, logits.value(i)));
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.list(&self.logits)?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let max = self.logits.iter().map(|(_, l)| *l).fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = self.logits.iter().map(|(_, l)| (l - max).exp()).sum();
        let mut weights: Vec<(ScalarValue, f64)> = self
            .logits
            .iter()
            .map(|(id, l)| (id.clone(), (l - max).exp() / total))
            .collect();
        weights.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal))
        });
        self.list(&weights)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.logits.iter().map(|(id, _)| id.size() + 8).sum::<usize>()
    }
}
