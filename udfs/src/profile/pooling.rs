//! The machinery `attention_pool` and `decayed_mean` share, `U = Σ a_i·Z_i` with
//! `a = softmax(logit)`: how each forms its logits ([`Logits`]), and a streaming online softmax
//! (running maximum, denominator and weighted sum per group) with a `GroupsAccumulator` for
//! `GROUP BY user` over many events.

use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};

use crate::vector::groups::GroupSums;
use crate::vector::{Vectors, vector_array};

/// How the logits of a pooling aggregate are formed from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Logits {
    /// `attention_pool(vector, query [, bias])`.
    Attention,
    /// `decayed_mean(vector, age, half_life)`.
    Decay,
}

impl Logits {
    pub fn name(self) -> &'static str {
        match self {
            Logits::Attention => "attention_pool",
            Logits::Decay => "decayed_mean",
        }
    }

    /// Checks at planning time the types of the arguments after the vector (`types`): a
    /// query vector and a numeric bias, or a numeric age and half-life. `first` is the
    /// position of the first of them in `function`'s arguments.
    pub fn check_types(self, function: &str, first: usize, types: &[DataType]) -> Result<()> {
        let roles: &[&str] = match self {
            Logits::Attention => &["query", "bias"],
            Logits::Decay => &["age", "half_life"],
        };
        for (i, (role, data_type)) in roles.iter().zip(types).enumerate() {
            let position = first + i;
            if data_type == &DataType::Null {
                continue;
            }
            if *role == "query" {
                crate::vector::check_vector_type(function, position, data_type)?;
            } else if !data_type.is_numeric() {
                return plan_err!("{function}: argument {position} ({role}) must be a number, got {data_type}");
            }
        }
        Ok(())
    }

    /// The logit of every row (None: the row is skipped); errors name `function`.
    pub fn compute(self, function: &str, values: &[ArrayRef], vectors: &Vectors) -> Result<Vec<Option<f64>>> {
        let name = function;
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

/// The `AggregateUDFImpl` of a pooling aggregate whose logits are formed as `$logits` says.
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
                    signature: datafusion::logical_expr::Signature::one_of(
                        $arities
                            .iter()
                            .map(|&n| datafusion::logical_expr::TypeSignature::Any(n))
                            .collect(),
                        datafusion::logical_expr::Volatility::Immutable,
                    ),
                }
            }
        }

        impl datafusion::logical_expr::AggregateUDFImpl for $udaf {
            fn name(&self) -> &str {
                $logits.name()
            }

            fn signature(&self) -> &datafusion::logical_expr::Signature {
                &self.signature
            }

            fn return_type(
                &self,
                arg_types: &[datafusion::arrow::datatypes::DataType],
            ) -> datafusion::common::Result<datafusion::arrow::datatypes::DataType> {
                $crate::vector::check_vector_type($logits.name(), 1, &arg_types[0])?;
                $logits.check_types($logits.name(), 2, &arg_types[1..])?;
                Ok($crate::vector::output_type(&arg_types[0]))
            }

            fn state_fields(
                &self,
                args: datafusion::logical_expr::function::StateFieldsArgs,
            ) -> datafusion::common::Result<Vec<datafusion::arrow::datatypes::FieldRef>> {
                $crate::profile::pooling::pool_state_fields(args.name)
            }

            fn accumulator(
                &self,
                args: datafusion::logical_expr::function::AccumulatorArgs,
            ) -> datafusion::common::Result<Box<dyn datafusion::logical_expr::Accumulator>> {
                Ok(Box::new($crate::profile::pooling::PoolAccumulator(
                    $crate::profile::pooling::PoolGroups::new($logits, args.return_type().clone()),
                )))
            }

            fn groups_accumulator_supported(&self, _args: datafusion::logical_expr::function::AccumulatorArgs) -> bool {
                true
            }

            fn create_groups_accumulator(
                &self,
                args: datafusion::logical_expr::function::AccumulatorArgs,
            ) -> datafusion::common::Result<Box<dyn datafusion::logical_expr::GroupsAccumulator>> {
                Ok(Box::new($crate::profile::pooling::PoolGroups::new(
                    $logits,
                    args.return_type().clone(),
                )))
            }

            fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
                self.doc()
            }
        }
    };
}

pub(crate) use pooling_udaf;

pub fn pool_state_fields(name: &str) -> Result<Vec<FieldRef>> {
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
pub struct PoolGroups {
    logits: Logits,
    return_type: DataType,
    max: Vec<f64>,
    denominator: Vec<f64>,
    sums: GroupSums,
}

impl PoolGroups {
    pub fn new(logits: Logits, return_type: DataType) -> Self {
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
        let logits = self.logits.compute(self.logits.name(), values, &vectors)?;
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
pub struct PoolAccumulator(pub PoolGroups);

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
