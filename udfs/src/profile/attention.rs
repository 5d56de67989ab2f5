//! Attention pooling of a user's event vectors into one profile, `U = Σ a_i·Z_i` with
//! `a = softmax(logit)`:
//!
//! - `attention_pool(vector, query [, bias])`: `logit_i = q_i·z_i / √d + bias_i`. The query is a
//!   column (the user's feature profile, or the mean of the user's vectors joined in; NULL means
//!   no query term); `bias` carries recency and event weights (e.g. `-0.1 * position` or
//!   `ln(rating)`).
//! - `decayed_mean(vector, age, half_life)`: time-decayed mean pooling, weights `0.5^(age /
//!   half_life)` — attention whose logits are `-ln 2 · age / half_life`.
//! - `attention_weights(id, vector, query [, bias])`: the weights themselves as a list of
//!   `{id, weight}`, largest first, to explain a profile by the events that drove it.
//!
//! The pooling aggregates are streaming (an online softmax: running maximum, denominator and
//! weighted sum per group), with a `GroupsAccumulator` for `GROUP BY user` over many events.

use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray, StructArray};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::vector::groups::GroupSums;
use crate::vector::{Vectors, check_vector_type, output_type, vector_array};

/// How the logits of a pooling aggregate are formed from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Logits {
    /// `attention_pool(vector, query [, bias])`.
    Attention,
    /// `decayed_mean(vector, age, half_life)`.
    Decay,
}

impl Logits {
    fn name(self) -> &'static str {
        match self {
            Logits::Attention => "attention_pool",
            Logits::Decay => "decayed_mean",
        }
    }

    /// The logit of every row (None: the row is skipped).
    fn compute(self, values: &[ArrayRef], vectors: &Vectors) -> Result<Vec<Option<f64>>> {
        let name = self.name();
        let column = |i: usize| -> Result<Option<ArrayRef>> {
            match values.get(i) {
                Some(array) if array.data_type() != &DataType::Null => Ok(Some(cast(array, &DataType::Float64)?)),
                _ => Ok(None),
            }
        };
        match self {
            Logits::Attention => {
                let queries = match values.get(1) {
                    Some(q) if q.data_type() != &DataType::Null => Some(Vectors::try_new(name, 2, q)?),
                    _ => None,
                };
                let bias = column(2)?;
                let bias = bias.as_ref().map(|b| b.as_primitive::<Float64Type>());
                (0..vectors.len())
                    .map(|row| {
                        let Some(z) = vectors.row(row) else { return Ok(None) };
                        let mut logit = 0.0f64;
                        if let Some(q) = queries.as_ref().and_then(|q| q.row(row)) {
                            if q.len() != z.len() {
                                return exec_err!(
                                    "{name}: the query has {} dimensions but the vectors have {}",
                                    q.len(),
                                    z.len()
                                );
                            }
                            logit += f64::from(crate::vector::kernels::dot(q, z)) / (z.len() as f64).sqrt();
                        }
                        if let Some(b) = bias {
                            logit += if b.is_valid(row) { b.value(row) } else { 0.0 };
                        }
                        Ok(Some(logit))
                    })
                    .collect()
            }
            Logits::Decay => {
                let (Some(age), Some(half_life)) = (column(1)?, column(2)?) else {
                    return Ok(vec![None; vectors.len()]);
                };
                let (age, half_life) = (
                    age.as_primitive::<Float64Type>(),
                    half_life.as_primitive::<Float64Type>(),
                );
                (0..vectors.len())
                    .map(|row| {
                        if vectors.row(row).is_none() || age.is_null(row) || half_life.is_null(row) {
                            return Ok(None);
                        }
                        let h = half_life.value(row);
                        if h <= 0.0 {
                            return exec_err!("{name}: half_life must be positive, got {h}");
                        }
                        Ok(Some(-std::f64::consts::LN_2 * age.value(row) / h))
                    })
                    .collect()
            }
        }
    }
}

#[user_doc(
    doc_section(label = "Profile Functions"),
    description = "Attention pooling of a group's vectors into one profile: Σ a_i·z_i with a = softmax(q_i·z_i/√d + bias_i). The query q is a column (the user's feature profile, or the mean of the user's vectors joined in; NULL leaves only the bias); bias carries recency and event weights, e.g. -0.1 * position or ln(rating).",
    syntax_example = "attention_pool(vector, query [, bias])",
    sql_example = r#"```sql
> SELECT e.user_id, attention_pool(i.embedding, m.profile, -0.05 * e.position)
  FROM events e JOIN items i USING (item_id) JOIN means m USING (user_id) GROUP BY e.user_id;
```"#,
    argument(name = "vector", description = "The event's vector, e.g. the item's embedding."),
    argument(name = "query", description = "The query vector, same dimension; NULL for none."),
    argument(name = "bias", description = "A number added to the event's logit (optional).")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AttentionPool {
    signature: Signature,
}

#[user_doc(
    doc_section(label = "Profile Functions"),
    description = "Time-decayed mean of a group's vectors: weights 0.5^(age / half_life), so an event half_life old counts half as much as one happening now.",
    syntax_example = "decayed_mean(vector, age, half_life)",
    sql_example = r#"```sql
> SELECT user_id, decayed_mean(embedding, now_ts - ts, 86400 * 30) FROM events GROUP BY user_id;
```"#,
    argument(name = "vector", description = "The event's vector."),
    argument(name = "age", description = "How old the event is, in any unit."),
    argument(
        name = "half_life",
        description = "The age at which an event's weight halves, same unit; positive."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DecayedMean {
    signature: Signature,
}

macro_rules! pooling_udaf {
    ($udaf:ty, $logits:expr, $arities:expr) => {
        impl Default for $udaf {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $udaf {
            pub fn new() -> Self {
                Self {
                    signature: Signature::one_of(
                        $arities
                            .iter()
                            .map(|&n| datafusion::logical_expr::TypeSignature::Any(n))
                            .collect(),
                        Volatility::Immutable,
                    ),
                }
            }
        }

        impl AggregateUDFImpl for $udaf {
            fn name(&self) -> &str {
                $logits.name()
            }

            fn signature(&self) -> &Signature {
                &self.signature
            }

            fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
                check_vector_type($logits.name(), 1, &arg_types[0])?;
                Ok(output_type(&arg_types[0]))
            }

            fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
                pool_state_fields(args.name)
            }

            fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
                Ok(Box::new(PoolAccumulator(PoolGroups::new(
                    $logits,
                    args.return_type().clone(),
                ))))
            }

            fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
                true
            }

            fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
                Ok(Box::new(PoolGroups::new($logits, args.return_type().clone())))
            }

            fn documentation(&self) -> Option<&Documentation> {
                self.doc()
            }
        }
    };
}

pooling_udaf!(AttentionPool, Logits::Attention, [2usize, 3]);
pooling_udaf!(DecayedMean, Logits::Decay, [3usize]);

fn pool_state_fields(name: &str) -> Result<Vec<FieldRef>> {
    Ok(vec![
        Arc::new(Field::new(format!("{name}[max]"), DataType::Float64, true)),
        Arc::new(Field::new(format!("{name}[denominator]"), DataType::Float64, true)),
        Arc::new(Field::new(
            format!("{name}[sum]"),
            DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            true,
        )),
    ])
}

/// Online-softmax state of many groups: each group's running maximum logit, denominator and
/// weighted sum, the last two scaled by `exp(-max)`.
#[derive(Debug)]
struct PoolGroups {
    logits: Logits,
    return_type: DataType,
    max: Vec<f64>,
    denominator: Vec<f64>,
    sums: GroupSums,
}

impl PoolGroups {
    fn new(logits: Logits, return_type: DataType) -> Self {
        Self {
            logits,
            sums: GroupSums::new(logits.name(), crate::vector::fixed_dimension(&return_type)),
            return_type,
            max: Vec::new(),
            denominator: Vec::new(),
        }
    }

    fn resize(&mut self, groups: usize) {
        self.max.resize(groups, f64::NEG_INFINITY);
        self.denominator.resize(groups, 0.0);
        self.sums.resize(groups);
    }

    /// Adds weight `exp(logit)` (relative to the group's running maximum) of a vector, or of a
    /// partial state whose denominator is `weight` and sum `vector`.
    fn add(&mut self, group: usize, logit: f64, weight: f64, vector: impl Iterator<Item = f64>) {
        let old = self.max[group];
        let new = old.max(logit);
        let keep = if old == f64::NEG_INFINITY {
            0.0
        } else {
            (old - new).exp()
        };
        let scale = (logit - new).exp();
        self.max[group] = new;
        self.denominator[group] = self.denominator[group] * keep + weight * scale;
        for (s, x) in self.sums.row_mut(group).iter_mut().zip(vector) {
            *s = *s * keep + x * scale;
        }
    }

    fn take(&mut self, emit_to: EmitTo) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let max = emit_to.take_needed(&mut self.max);
        let denominator = emit_to.take_needed(&mut self.denominator);
        (max, denominator, self.sums.take(emit_to))
    }

    fn profiles(&self, denominator: &[f64], sums: &[f64]) -> Result<ArrayRef> {
        let dim = self.sums.dim();
        let mut values = vec![0f32; denominator.len() * dim];
        for (g, d) in denominator.iter().enumerate().filter(|(_, d)| **d > 0.0) {
            for j in 0..dim {
                values[g * dim + j] = (sums[g * dim + j] / d) as f32;
            }
        }
        let nulls = NullBuffer::from_iter(denominator.iter().map(|d| *d > 0.0));
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        vector_array(&self.return_type, values, dim, denominator.len(), nulls)
    }

    fn state_arrays(&self, max: Vec<f64>, denominator: Vec<f64>, sums: Vec<f64>) -> Result<Vec<ArrayRef>> {
        let groups = max.len();
        Ok(vec![
            Arc::new(Float64Array::from(max)),
            Arc::new(Float64Array::from(denominator)),
            self.sums.state_array(sums, groups)?,
        ])
    }

    fn update(
        &mut self,
        values: &[ArrayRef],
        group_of_row: impl Fn(usize) -> usize,
        filter: Option<&BooleanArray>,
    ) -> Result<()> {
        let vectors = Vectors::try_new(self.logits.name(), 1, &values[0])?;
        self.sums.accept_dimension(vectors.dim())?;
        let logits = self.logits.compute(values, &vectors)?;
        for (row, logit) in logits.into_iter().enumerate() {
            let passes = filter.is_none_or(|f| f.is_valid(row) && f.value(row));
            if let (Some(logit), Some(z), true) = (logit, vectors.row(row), passes) {
                self.add(group_of_row(row), logit, 1.0, z.iter().map(|x| f64::from(*x)));
            }
        }
        Ok(())
    }

    fn merge(&mut self, states: &[ArrayRef], group_of_row: impl Fn(usize) -> usize) -> Result<()> {
        let max = states[0].as_primitive::<Float64Type>();
        let denominator = states[1].as_primitive::<Float64Type>();
        let sums = states[2].as_list::<i32>();
        let values = sums.values().as_primitive::<Float64Type>().values();
        let offsets = sums.value_offsets();
        for row in (0..max.len()).filter(|&row| denominator.value(row) > 0.0) {
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            self.sums.accept_dimension(Some(end - start))?;
            self.add(
                group_of_row(row),
                max.value(row),
                denominator.value(row),
                values[start..end].iter().copied(),
            );
        }
        Ok(())
    }
}

impl GroupsAccumulator for PoolGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        self.update(values, |row| group_indices[row], opt_filter)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (_, denominator, sums) = self.take(emit_to);
        self.profiles(&denominator, &sums)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (max, denominator, sums) = self.take(emit_to);
        self.state_arrays(max, denominator, sums)
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.resize(total_num_groups);
        self.merge(values, |row| group_indices[row])
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let mut single = PoolGroups::new(self.logits, self.return_type.clone());
        single.sums.accept_dimension(self.sums.known_dim())?;
        single.resize(values[0].len());
        single.update(values, |row| row, opt_filter)?;
        let (max, denominator, sums) = single.take(EmitTo::All);
        single.state_arrays(max, denominator, sums)
    }

    fn size(&self) -> usize {
        self.sums.size() + (self.max.capacity() + self.denominator.capacity()) * size_of::<f64>()
    }
}

/// One group: a `PoolGroups` with a single group.
#[derive(Debug)]
struct PoolAccumulator(PoolGroups);

impl Accumulator for PoolAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.resize(1);
        self.0.update(values, |_| 0, None)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.resize(1);
        self.0.merge(states, |_| 0)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.resize(1);
        let groups = &self.0;
        let arrays = groups.state_arrays(
            groups.max.clone(),
            groups.denominator.clone(),
            groups.sums.values().to_vec(),
        )?;
        arrays.iter().map(|a| ScalarValue::try_from_array(a, 0)).collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.resize(1);
        let profiles = self.0.profiles(&self.0.denominator, self.0.sums.values())?;
        ScalarValue::try_from_array(&profiles, 0)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.0.size()
    }
}

#[user_doc(
    doc_section(label = "Profile Functions"),
    description = "The attention weights attention_pool would give a group's events, as a list of {id, weight} with the largest first: which events drove the profile.",
    syntax_example = "attention_weights(id, vector, query [, bias])",
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
        let logits = Logits::Attention.compute(&values[1..], &vectors)?;
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
