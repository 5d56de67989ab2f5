//! `intra_list_diversity(vector)`: how different the items of one list are — the mean of
//! `1 − cosine(a, b)` over every pair of the group's item vectors. NULL for fewer than two
//! vectors; NULL and zero vectors are skipped.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float32Array, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility};
use datafusion_macros::user_doc;

use crate::vector::kernels;
use crate::vector::{Vectors, check_vector_type};

const NAME: &str = "intra_list_diversity";

#[user_doc(
    doc_section(label = "Evaluation Functions"),
    description = "Mean pairwise cosine distance (1 − cosine similarity) between the vectors of a group, such as the items recommended to one user. NULL for fewer than two vectors; NULL and zero vectors are skipped.",
    syntax_example = "intra_list_diversity(vector)",
    sql_example = r#"```sql
> SELECT r.user_id, intra_list_diversity(i.genres) FROM recs r JOIN items i USING (item_id) GROUP BY r.user_id;
```"#,
    argument(name = "vector", description = "An item vector (genres, text or learned embedding).")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IntraListDiversity {
    signature: Signature,
}

impl Default for IntraListDiversity {
    fn default() -> Self {
        Self::new()
    }
}

impl IntraListDiversity {
    pub fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

fn flat_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)))
}

impl AggregateUDFImpl for IntraListDiversity {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_vector_type(NAME, 1, &arg_types[0])?;
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        // Unit vectors, one list per vector.
        Ok(vec![Arc::new(Field::new(
            format!("{}[vectors]", args.name),
            DataType::List(Arc::new(Field::new_list_field(flat_list(), true))),
            true,
        ))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(DiversityAccumulator::default()))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[derive(Debug, Default)]
struct DiversityAccumulator {
    /// The group's vectors, each scaled to unit length.
    units: Vec<Vec<f32>>,
}

impl DiversityAccumulator {
    fn add(&mut self, vector: &[f32]) -> Result<()> {
        let norm = kernels::norm(vector);
        if norm == 0.0 {
            return Ok(());
        }
        if let Some(first) = self.units.first()
            && first.len() != vector.len()
        {
            return exec_err!(
                "{NAME}: vectors have different dimensions: {} and {}",
                first.len(),
                vector.len()
            );
        }
        self.units.push(vector.iter().map(|x| x / norm).collect());
        Ok(())
    }
}

impl Accumulator for DiversityAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let vectors = Vectors::try_new(NAME, 1, &values[0])?;
        for row in 0..vectors.len() {
            if let Some(vector) = vectors.row(row) {
                self.add(vector)?;
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for row in 0..lists.len() {
            if lists.is_valid(row) {
                self.update_batch(&[lists.value(row)])?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = Float32Array::from(self.units.concat());
        let inner = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Float32, true)),
            OffsetBuffer::from_lengths(self.units.iter().map(Vec::len)),
            Arc::new(values),
            None,
        );
        let outer = ListArray::new(
            Arc::new(Field::new_list_field(flat_list(), true)),
            OffsetBuffer::from_lengths([inner.len()]),
            Arc::new(inner),
            None,
        );
        Ok(vec![ScalarValue::List(Arc::new(outer))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let n = self.units.len();
        if n < 2 {
            return Ok(ScalarValue::Float64(None));
        }
        let mut total = 0.0f64;
        for i in 0..n {
            for j in i + 1..n {
                total += 1.0 - f64::from(kernels::dot(&self.units[i], &self.units[j]));
            }
        }
        Ok(ScalarValue::Float64(Some(total / (n * (n - 1) / 2) as f64)))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.units.iter().map(|v| v.len() * 4 + 24).sum::<usize>()
    }
}
