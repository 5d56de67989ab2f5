//! Why `recommend()` chose an item: its `explain_with` history — `(user, item, vector[,
//! weight])`, the events a pooled profile was made of — split into each history item's part of
//! the score. For a profile `u = Σ_j a_j·z_j` (a mean, a decayed mean, an attention pool with
//! the pooling's weights `a_j`) the dot score is exactly `u·v = Σ_j a_j·(z_j·v)`, and the cosine
//! score `u·v / (‖u‖‖v‖)` is the same sum divided by both norms: each term is a history item's
//! contribution, contributions over the whole history sum to the score, and an item's share is
//! its part of that sum. Without a weight column every item weighs `1/n` (the mean).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float32Array, ListArray, StructArray, UInt32Array};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Float32Type};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::{HashMap, Result, exec_err};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::physical_plan::{ExecutionPlan, collect};

use super::selection::{ItemMatrix, Metric};
use crate::vector::Vectors;

const NAME: &str = "recommend";

/// The `because` column's type: for each recommended item, its history items that contribute
/// most, with their contribution to the score and their share of it.
pub fn because_type(item_type: &DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(Fields::from(vec![
            Field::new("item", item_type.clone(), true),
            Field::new("contribution", DataType::Float32, false),
            Field::new("share", DataType::Float32, false),
        ])),
        true,
    )))
}

/// Every user's history: item ids, vectors and pooling weights, by the user id's row-format
/// bytes.
#[derive(Debug)]
pub struct History {
    converter: RowConverter,
    user_type: DataType,
    /// Each user's rows of the history.
    rows: HashMap<Box<[u8]>, Vec<u32>>,
    item_ids: ArrayRef,
    vectors: Vec<f32>,
    weights: Vec<f32>,
    dim: usize,
}

impl History {
    /// Reads the history input whole; `user_type` is the users table's id type, `dim` the
    /// items' dimension (`None` when no item has a vector).
    pub async fn load(
        history: Arc<dyn ExecutionPlan>,
        user_type: &DataType,
        dim: Option<usize>,
        reservation: &MemoryReservation,
        context: Arc<TaskContext>,
    ) -> Result<Self> {
        let schema = history.schema();
        let batches = collect(history, context)
            .await
            .map_err(|e| e.context(format!("{NAME}: reading the explain_with table")))?;
        let batch = concat_batches(&schema, &batches)?;
        drop(batches);
        let vectors = Vectors::try_new(NAME, 3, batch.column(2))?;
        let history_dim = vectors.dim();
        if let (Some(history_dim), Some(dim)) = (history_dim, dim)
            && history_dim != dim
        {
            return exec_err!(
                "{NAME}: the explain_with table's vectors have {history_dim} dimensions but the item vectors have {dim}"
            );
        }
        let dim = history_dim.or(dim).unwrap_or(0);
        let n = batch.num_rows();
        reservation.try_grow(batch.get_array_memory_size() + n * (dim + 2) * size_of::<f32>())?;
        let users = cast(batch.column(0), user_type)?;
        let converter = RowConverter::new(vec![SortField::new(user_type.clone())])?;
        let user_rows = converter.convert_columns(&[Arc::clone(&users)])?;
        let given = match batch.num_columns() {
            4 => Some(cast(batch.column(3), &DataType::Float32)?),
            _ => None,
        };
        let mut rows: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
        let mut flat = Vec::with_capacity(n * dim);
        let mut weights = Vec::with_capacity(n);
        let mut kept = Vec::with_capacity(n);
        let given_weights = given.as_ref().map(|w| w.as_primitive::<Float32Type>());
        for row in 0..n {
            let vector = vectors.row(row);
            let weight = match given_weights {
                Some(w) if w.is_valid(row) => w.value(row),
                Some(_) => continue,
                None => 1.0,
            };
            if !weight.is_finite() {
                return exec_err!(
                    "{NAME}: the explain_with table's weight column holds {weight}; weights must be finite"
                );
            }
            let (Some(vector), true) = (vector, users.is_valid(row)) else {
                continue;
            };
            rows.entry(Box::from(user_rows.row(row).data()))
                .or_default()
                .push(weights.len() as u32);
            flat.extend_from_slice(vector);
            weights.push(weight);
            kept.push(row as u32);
        }
        let item_ids = take(batch.column(1).as_ref(), &UInt32Array::from(kept), None)?;
        if given.is_none() {
            for list in rows.values() {
                let mean = 1.0 / list.len() as f32;
                list.iter().for_each(|&row| weights[row as usize] = mean);
            }
        }
        Ok(Self {
            converter,
            user_type: user_type.clone(),
            rows,
            item_ids,
            vectors: flat,
            weights,
            dim,
        })
    }

    /// `ids` in the row format the histories are keyed by.
    pub fn user_rows(&self, ids: &ArrayRef) -> Result<Rows> {
        let ids = cast(ids, &self.user_type)?;
        Ok(self.converter.convert_columns(&[ids])?)
    }

    /// The history rows of the user whose id converts to `user`.
    pub fn of(&self, user: &[u8]) -> &[u32] {
        self.rows.get(user).map_or(&[], Vec::as_slice)
    }

    /// The `top` largest contributions of `history` (rows of one user) to the score of `item`
    /// (a row of `matrix`): (history row, contribution, share of all the history's
    /// contributions), largest first, ties by history order. Under cosine the pooled history's
    /// norm divides every part, so the parts sum to the cosine of any profile that is a positive
    /// multiple of the pooled history (a normalised mean, say).
    pub fn contributions(&self, history: &[u32], matrix: &ItemMatrix, item: u32, top: usize) -> Vec<(u32, f32, f32)> {
        let item_vector = matrix.row(item);
        let vector = |row: u32| &self.vectors[row as usize * self.dim..(row as usize + 1) * self.dim];
        // A cosine matrix holds unit item vectors: only the profile's norm is left to divide by.
        let scale = match matrix.metric() {
            Metric::Cosine => {
                let mut pooled = vec![0.0f32; self.dim];
                for &row in history {
                    let weight = self.weights[row as usize];
                    pooled.iter_mut().zip(vector(row)).for_each(|(p, z)| *p += weight * z);
                }
                let norm = pooled.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm > 0.0 { 1.0 / norm } else { 0.0 }
            }
            _ => 1.0,
        };
        let mut parts: Vec<(u32, f32, f32)> = history
            .iter()
            .map(|&row| {
                let dot: f32 = vector(row).iter().zip(item_vector).map(|(a, b)| a * b).sum();
                (row, self.weights[row as usize] * dot * scale, 0.0)
            })
            .collect();
        let total: f32 = parts.iter().map(|part| part.1).sum();
        if total != 0.0 {
            parts.iter_mut().for_each(|part| part.2 = part.1 / total);
        }
        parts.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        parts.truncate(top);
        parts
    }

    /// The `because` column of the rows whose explanations are `lists`.
    pub fn column(&self, lists: &[Vec<(u32, f32, f32)>]) -> Result<ArrayRef> {
        let DataType::List(field) = because_type(self.item_ids.data_type()) else {
            unreachable!("because_type is a list")
        };
        let DataType::Struct(fields) = field.data_type().clone() else {
            unreachable!("because_type holds structs")
        };
        let mut offsets = Vec::with_capacity(lists.len() + 1);
        offsets.push(0i32);
        let (mut rows, mut contributions, mut shares) = (Vec::new(), Vec::new(), Vec::new());
        for list in lists {
            for &(row, contribution, share) in list {
                rows.push(row);
                contributions.push(contribution);
                shares.push(share);
            }
            offsets.push(rows.len() as i32);
        }
        let entries = StructArray::try_new(
            fields,
            vec![
                take(self.item_ids.as_ref(), &UInt32Array::from(rows), None)?,
                Arc::new(Float32Array::from(contributions)),
                Arc::new(Float32Array::from(shares)),
            ],
            None,
        )?;
        Ok(Arc::new(ListArray::try_new(
            field,
            OffsetBuffer::new(offsets.into()),
            Arc::new(entries),
            None,
        )?))
    }
}
