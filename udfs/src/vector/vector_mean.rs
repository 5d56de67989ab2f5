//! `vector_mean`: the element-wise mean of the non-NULL vectors in a group, with a
//! vectorised `GroupsAccumulator` so `GROUP BY user` over millions of events stays fast.
//!
//! Sums are kept in f64 so long groups do not lose precision; the state crosses partitions
//! as (sum: List<Float64>, count: UInt64).

use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, UInt64Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::common::utils::take_function_args;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::groups::GroupSums;
use super::vectors::{Vectors, check_vector_type, fixed_dimension, output_type, vector_array};

const NAME: &str = "vector_mean";

#[user_doc(
    doc_section(label = "Vector Functions"),
    description = "Aggregate: the element-wise mean of the vectors in a group (such as a user profile: the mean of the vectors of the items the user interacted with). NULL vectors are skipped; a group with no vector gives NULL. All vectors must have the same dimension.",
    syntax_example = "vector_mean(v)",
    sql_example = r#"```sql
> SELECT user_id, vector_to_text(vector_mean(item_vector)) FROM events GROUP BY user_id;
```"#,
    argument(
        name = "v",
        description = "A vector column: fixed-size or variable-size lists of numbers."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VectorMean {
    signature: Signature,
}

impl Default for VectorMean {
    fn default() -> Self {
        Self::new()
    }
}

impl VectorMean {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for VectorMean {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let [input] = take_function_args(NAME, arg_types)?;
        Ok(output_type(input))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [input] = take_function_args(NAME, arg_types)?;
        check_vector_type(NAME, 1, input)?;
        Ok(arg_types.to_vec())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let sum_type = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
        Ok(vec![
            Arc::new(Field::new(format!("{}[sum]", args.name), sum_type, true)),
            Arc::new(Field::new(format!("{}[count]", args.name), DataType::UInt64, false)),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(VectorMeanAccumulator {
            groups: MeanGroups::new(args.return_type().clone()),
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(MeanGroups::new(args.return_type().clone())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// Running sums and counts of many groups.
#[derive(Debug)]
struct MeanGroups {
    return_type: DataType,
    sums: GroupSums,
    counts: Vec<u64>,
}

impl MeanGroups {
    fn new(return_type: DataType) -> Self {
        Self {
            sums: GroupSums::new(NAME, fixed_dimension(&return_type)),
            return_type,
            counts: Vec::new(),
        }
    }

    fn resize(&mut self, total_groups: usize) {
        self.counts.resize(total_groups, 0);
        self.sums.resize(total_groups);
    }

    fn add(&mut self, group: usize, vector: impl Iterator<Item = f64>, count: u64) {
        for (sum, x) in self.sums.row_mut(group).iter_mut().zip(vector) {
            *sum += x;
        }
        self.counts[group] += count;
    }

    /// Removes the first groups (or all) named by `emit_to`, returning their sums and counts.
    fn take(&mut self, emit_to: EmitTo) -> (Vec<f64>, Vec<u64>) {
        (self.sums.take(emit_to), emit_to.take_needed(&mut self.counts))
    }

    fn means(&self, sums: &[f64], counts: &[u64]) -> Result<ArrayRef> {
        let dim = self.sums.dim();
        let mut values = vec![0f32; counts.len() * dim];
        for (group, count) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            for j in 0..dim {
                values[group * dim + j] = (sums[group * dim + j] / *count as f64) as f32;
            }
        }
        let nulls = NullBuffer::from_iter(counts.iter().map(|c| *c > 0));
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        vector_array(&self.return_type, values, dim, counts.len(), nulls)
    }

    fn state_arrays(&self, sums: Vec<f64>, counts: Vec<u64>) -> Result<Vec<ArrayRef>> {
        let sums = self.sums.state_array(sums, counts.len())?;
        Ok(vec![sums, Arc::new(UInt64Array::from(counts))])
    }

    fn merge_states(&mut self, states: &[ArrayRef], group_of_row: impl Fn(usize) -> usize) -> Result<()> {
        let sums = states[0].as_list::<i32>();
        let sum_values = sums.values().as_primitive::<Float64Type>().values();
        let offsets = sums.value_offsets();
        let counts = states[1].as_primitive::<UInt64Type>();
        for row in (0..counts.len()).filter(|row| counts.value(*row) > 0) {
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            self.sums.accept_dimension(Some(end - start))?;
            self.add(
                group_of_row(row),
                sum_values[start..end].iter().copied(),
                counts.value(row),
            );
        }
        Ok(())
    }
}

fn row_passes(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

impl GroupsAccumulator for MeanGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let vectors = Vectors::try_new(NAME, 1, &values[0])?;
        self.sums.accept_dimension(vectors.dim())?;
        self.resize(total_num_groups);
        for (row, group) in group_indices.iter().enumerate() {
            if !row_passes(opt_filter, row) {
                continue;
            }
            if let Some(v) = vectors.row(row) {
                self.add(*group, v.iter().map(|x| f64::from(*x)), 1);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (sums, counts) = self.take(emit_to);
        self.means(&sums, &counts)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (sums, counts) = self.take(emit_to);
        self.state_arrays(sums, counts)
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.resize(total_num_groups);
        self.merge_states(values, |row| group_indices[row])
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let vectors = Vectors::try_new(NAME, 1, &values[0])?;
        let dim = vectors.dim().or(self.sums.known_dim()).unwrap_or(0);
        let mut sums = Vec::with_capacity(vectors.len() * dim);
        let counts = (0..vectors.len())
            .map(|row| match vectors.row(row).filter(|_| row_passes(opt_filter, row)) {
                Some(v) => {
                    sums.extend(v.iter().map(|x| f64::from(*x)));
                    1
                }
                None => {
                    sums.resize(sums.len() + dim, 0.0);
                    0
                }
            })
            .collect();
        self.state_arrays(sums, counts)
    }

    fn size(&self) -> usize {
        self.sums.size() + self.counts.capacity() * size_of::<u64>()
    }
}

/// The single-group accumulator: one `MeanGroups` with one group.
#[derive(Debug)]
struct VectorMeanAccumulator {
    groups: MeanGroups,
}

impl Accumulator for VectorMeanAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = values[0].len();
        self.groups.update_batch(values, &vec![0; rows], None, 1)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.groups.resize(1);
        self.groups.merge_states(states, |_| 0)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.groups.resize(1);
        let (sums, counts) = (self.groups.sums.values().to_vec(), self.groups.counts.clone());
        let arrays = self.groups.state_arrays(sums, counts)?;
        arrays.iter().map(|a| ScalarValue::try_from_array(a, 0)).collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.groups.resize(1);
        let means = self.groups.means(self.groups.sums.values(), &self.groups.counts)?;
        ScalarValue::try_from_array(&means, 0)
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.groups.size()
    }
}
