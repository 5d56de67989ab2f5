//! A table of (user, item[, weight]) rows as two sparse matrices (by user and by item), with
//! the ids mapped to dense indices in id order. Repeated (user, item) pairs add their weights; rows with a
//! NULL id or weight are skipped. This is what every collaborative-filtering function reads.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Float32Type};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{HashMap, Result, plan_err};
use rayon::prelude::*;

/// Compressed sparse rows: row `r` holds `indices[offsets[r]..offsets[r + 1]]` with weights.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Csr {
    pub offsets: Vec<usize>,
    pub indices: Vec<u32>,
    pub weights: Vec<f32>,
}

impl Csr {
    pub fn row(&self, r: usize) -> impl Iterator<Item = (u32, f32)> + '_ {
        let range = self.offsets[r]..self.offsets[r + 1];
        self.indices[range.clone()]
            .iter()
            .copied()
            .zip(self.weights[range].iter().copied())
    }

    pub fn row_indices(&self, r: usize) -> &[u32] {
        &self.indices[self.offsets[r]..self.offsets[r + 1]]
    }

    pub fn row_len(&self, r: usize) -> usize {
        self.offsets[r + 1] - self.offsets[r]
    }

    pub fn rows(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Builds `rows` rows from (row, column, weight) entries in any order: each row's columns
    /// sorted, repeated columns adding their weights. Placed by counting rather than sorting
    /// all entries, so the memory is the matrix's own.
    fn from_entries(rows: usize, entries: impl Fn(&mut dyn FnMut(u32, u32, f32))) -> Self {
        let mut offsets = vec![0usize; rows + 1];
        entries(&mut |r, _, _| offsets[r as usize + 1] += 1);
        for r in 0..rows {
            offsets[r + 1] += offsets[r];
        }
        let mut next = offsets.clone();
        let mut indices = vec![0u32; offsets[rows]];
        let mut weights = vec![0f32; offsets[rows]];
        entries(&mut |r, c, w| {
            let at = &mut next[r as usize];
            indices[*at] = c;
            weights[*at] = w;
            *at += 1;
        });
        // Each row sorted and its repeats added, in parallel; then rows moved up over the gaps.
        let mut rows_of: Vec<(&mut [u32], &mut [f32])> = Vec::with_capacity(rows);
        let (mut rest_indices, mut rest_weights) = (indices.as_mut_slice(), weights.as_mut_slice());
        for r in 0..rows {
            let len = offsets[r + 1] - offsets[r];
            let (row_indices, tail_indices) = std::mem::take(&mut rest_indices).split_at_mut(len);
            let (row_weights, tail_weights) = std::mem::take(&mut rest_weights).split_at_mut(len);
            rows_of.push((row_indices, row_weights));
            (rest_indices, rest_weights) = (tail_indices, tail_weights);
        }
        let lengths: Vec<usize> = rows_of
            .into_par_iter()
            .map(|(row_indices, row_weights)| merge_repeats(row_indices, row_weights))
            .collect();
        let mut write = 0;
        for (r, len) in lengths.into_iter().enumerate() {
            let read = offsets[r];
            indices.copy_within(read..read + len, write);
            weights.copy_within(read..read + len, write);
            offsets[r] = write;
            write += len;
        }
        offsets[rows] = write;
        indices.truncate(write);
        weights.truncate(write);
        Csr {
            offsets,
            indices,
            weights,
        }
    }

    /// The same matrix by columns (`columns` of them), each column's rows in order.
    pub fn transposed(&self, columns: usize) -> Csr {
        let mut offsets = vec![0usize; columns + 1];
        for &c in &self.indices {
            offsets[c as usize + 1] += 1;
        }
        for c in 0..columns {
            offsets[c + 1] += offsets[c];
        }
        let mut next = offsets.clone();
        let mut indices = vec![0u32; self.indices.len()];
        let mut weights = vec![0f32; self.weights.len()];
        for r in 0..self.rows() {
            for (c, w) in self.row(r) {
                let at = &mut next[c as usize];
                indices[*at] = r as u32;
                weights[*at] = w;
                *at += 1;
            }
        }
        Csr {
            offsets,
            indices,
            weights,
        }
    }

    /// The Euclidean norm of each row.
    pub fn norms(&self) -> Vec<f32> {
        (0..self.rows())
            .map(|r| self.row(r).map(|(_, w)| w * w).sum::<f32>().sqrt())
            .collect()
    }
}

/// Interactions with dense user and item indices.
#[derive(Debug)]
pub struct Interactions {
    /// The id of each user index, and of each item index.
    pub user_ids: ArrayRef,
    pub item_ids: ArrayRef,
    pub by_user: Csr,
    pub by_item: Csr,
    user_index: IdIndex,
}

/// Sorts one row's entries by column and adds the weights of repeated columns; returns how
/// many distinct columns lead the row.
fn merge_repeats(indices: &mut [u32], weights: &mut [f32]) -> usize {
    if indices.is_sorted_by(|a, b| a < b) {
        return indices.len();
    }
    let mut pairs: Vec<(u32, f32)> = indices.iter().copied().zip(weights.iter().copied()).collect();
    pairs.sort_by_key(|&(c, _)| c);
    let mut len = 0;
    for (c, w) in pairs {
        if len > 0 && indices[len - 1] == c {
            weights[len - 1] += w;
        } else {
            indices[len] = c;
            weights[len] = w;
            len += 1;
        }
    }
    len
}

/// Maps ids of one type to dense indices.
#[derive(Debug)]
pub struct IdIndex {
    converter: RowConverter,
    data_type: DataType,
    index: HashMap<Box<[u8]>, u32>,
}

impl IdIndex {
    /// Indexes the distinct ids of `ids` in sorted order, so that ties broken by index are
    /// broken by id whatever order the rows came in. Returns the index of every row (NULL →
    /// None) and, for each index, the first row holding it.
    pub fn build(ids: &ArrayRef) -> Result<(Self, Vec<Option<u32>>, Vec<u32>)> {
        let converter = RowConverter::new(vec![SortField::new(ids.data_type().clone())])?;
        let rows = converter.convert_columns(&[Arc::clone(ids)])?;
        let mut first_row: HashMap<&[u8], u32> = HashMap::new();
        for row in (0..ids.len()).filter(|&row| ids.is_valid(row)) {
            first_row.entry(rows.row(row).data()).or_insert(row as u32);
        }
        let mut distinct: Vec<(&[u8], u32)> = first_row.into_iter().collect();
        distinct.sort_unstable();
        let index: HashMap<Box<[u8]>, u32> = distinct
            .iter()
            .enumerate()
            .map(|(i, (key, _))| (Box::from(*key), i as u32))
            .collect();
        let first_rows = distinct.iter().map(|(_, row)| *row).collect();
        let positions = (0..ids.len())
            .map(|row| match ids.is_valid(row) {
                true => index.get(rows.row(row).data()).copied(),
                false => None,
            })
            .collect();
        let data_type = ids.data_type().clone();
        Ok((
            Self {
                converter,
                data_type,
                index,
            },
            positions,
            first_rows,
        ))
    }

    /// Indexes each id of `ids` by the row it first appears in.
    pub fn by_row(ids: &ArrayRef) -> Result<Self> {
        let converter = RowConverter::new(vec![SortField::new(ids.data_type().clone())])?;
        let rows = converter.convert_columns(&[Arc::clone(ids)])?;
        let mut index: HashMap<Box<[u8]>, u32> = HashMap::with_capacity(ids.len());
        for row in (0..ids.len()).filter(|&row| ids.is_valid(row)) {
            index.entry(Box::from(rows.row(row).data())).or_insert(row as u32);
        }
        Ok(Self {
            converter,
            data_type: ids.data_type().clone(),
            index,
        })
    }

    /// The index of each id in `ids` (cast to the indexed type), None when unknown or NULL.
    pub fn lookup(&self, ids: &ArrayRef) -> Result<Vec<Option<u32>>> {
        let ids = cast(ids, &self.data_type)?;
        let rows = self.converter.convert_columns(&[Arc::clone(&ids)])?;
        Ok((0..ids.len())
            .map(|row| match ids.is_null(row) {
                true => None,
                false => self.index.get(rows.row(row).data()).copied(),
            })
            .collect())
    }
}

impl Interactions {
    /// Reads a batch whose columns are (user, item[, weight, …]); `function` names errors.
    pub fn from_batch(function: &str, batch: &RecordBatch) -> Result<Self> {
        if batch.num_columns() < 2 {
            return plan_err!("{function}: the interactions table needs (user, item[, weight]) columns");
        }
        let weights = match batch.columns().get(2) {
            Some(column) if column.data_type().is_numeric() => Some(cast(column, &DataType::Float32)?),
            _ => None,
        };
        let (user_index, users, user_rows) = IdIndex::build(batch.column(0))?;
        let (_, items, item_rows) = IdIndex::build(batch.column(1))?;
        let weights = weights.as_ref().map(|w| w.as_primitive::<Float32Type>());
        if let Some(weight) = weights.and_then(|w| w.iter().flatten().find(|w| !w.is_finite())) {
            let column = batch.schema().field(2).name().clone();
            return plan_err!(
                "{function}: the weight column '{column}' of the interactions table holds {weight}; weights must be finite numbers"
            );
        }
        let weight = |row: usize| match weights {
            Some(w) if w.is_null(row) => None,
            Some(w) => Some(w.value(row)),
            None => Some(1.0),
        };
        let by_user = Csr::from_entries(user_rows.len(), |add| {
            for (row, (user, item)) in users.iter().zip(&items).enumerate() {
                if let (Some(u), Some(i), Some(w)) = (user, item, weight(row)) {
                    add(*u, *i, w);
                }
            }
        });
        drop((users, items));
        let by_item = by_user.transposed(item_rows.len());
        Ok(Self {
            user_ids: take(batch.column(0).as_ref(), &UInt32Array::from(user_rows), None)?,
            item_ids: take(batch.column(1).as_ref(), &UInt32Array::from(item_rows), None)?,
            by_user,
            by_item,
            user_index,
        })
    }

    pub fn users(&self) -> usize {
        self.by_user.rows()
    }

    /// The bytes the matrices and id maps hold.
    pub fn memory_size(&self) -> usize {
        let csr =
            |m: &Csr| m.offsets.len() * size_of::<usize>() + m.indices.len() * (size_of::<u32>() + size_of::<f32>());
        csr(&self.by_user)
            + csr(&self.by_item)
            + self.user_ids.get_array_memory_size()
            + self.item_ids.get_array_memory_size()
            + self.users() * 48
    }

    pub fn items(&self) -> usize {
        self.by_item.rows()
    }

    /// The user index of each id in `ids`; None for users with no interactions.
    pub fn user_indices(&self, ids: &ArrayRef) -> Result<Vec<Option<u32>>> {
        self.user_index.lookup(ids)
    }

    /// Items by number of users, most popular first (ties: the smaller id first).
    pub fn popularity(&self) -> Vec<(u32, f32)> {
        let users = self.users().max(1) as f32;
        let mut items: Vec<(u32, f32)> = (0..self.items())
            .map(|i| (i as u32, self.by_item.row_indices(i).len() as f32 / users))
            .collect();
        items.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    #[test]
    fn entries_in_any_order_become_sorted_rows_with_repeats_added() {
        let entries = [
            (2, 5, 1.0),
            (0, 3, 1.0),
            (2, 1, 2.0),
            (0, 3, 0.5),
            (2, 5, 4.0),
            (0, 0, 1.0),
        ];
        let csr = Csr::from_entries(4, |add| {
            for &(r, c, w) in &entries {
                add(r, c, w);
            }
        });
        assert_eq!(csr.offsets, vec![0, 2, 2, 4, 4]);
        assert_eq!(csr.row(0).collect::<Vec<_>>(), vec![(0, 1.0), (3, 1.5)]);
        assert_eq!(csr.row(2).collect::<Vec<_>>(), vec![(1, 2.0), (5, 5.0)]);
        assert_eq!((csr.indices.len(), csr.weights.len()), (4, 4));
    }

    #[test]
    fn repeated_pairs_add_and_nulls_are_skipped() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("user", DataType::Utf8, true),
                Field::new("item", DataType::Int64, true),
                Field::new("weight", DataType::Float64, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("a"),
                    Some("b"),
                    None,
                    Some("b"),
                ])),
                Arc::new(Int64Array::from(vec![Some(7), Some(7), Some(8), Some(7), Some(7)])),
                Arc::new(Float64Array::from(vec![
                    Some(1.0),
                    Some(2.0),
                    Some(1.0),
                    Some(1.0),
                    None,
                ])),
            ],
        )
        .unwrap();
        let interactions = Interactions::from_batch("test", &batch).unwrap();
        assert_eq!((interactions.users(), interactions.items()), (2, 2));
        assert_eq!(interactions.by_user.row(0).collect::<Vec<_>>(), vec![(0, 3.0)]);
        assert_eq!(interactions.by_item.row(0).collect::<Vec<_>>(), vec![(0, 3.0)]);
        let lookup: ArrayRef = Arc::new(StringArray::from(vec![Some("b"), Some("z"), None]));
        assert_eq!(interactions.user_indices(&lookup).unwrap(), vec![Some(1), None, None]);
    }
}
