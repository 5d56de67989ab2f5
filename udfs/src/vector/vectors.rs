//! Reading vector arguments and building vector results.
//!
//! [`Vectors`] views any accepted vector column as one flat f32 buffer plus a row
//! validity mask, so kernels index `values[row * dim..]` with no per-row allocation.
//! `FixedSizeList<Float32>` is read without copying; other list types are cast once.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, GenericListArray, ListArray, OffsetSizeTrait,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::ColumnarValue;

/// `FixedSizeList<Float32, dim>`, the type of a vector.
pub fn vector_type(dim: usize) -> DataType {
    DataType::FixedSizeList(Arc::new(Field::new_list_field(DataType::Float32, true)), dim as i32)
}

/// `List<Float32>`, the result type when the dimension is unknown at planning time.
pub fn variable_vector_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)))
}

/// The result type for a vector computed from an argument of type `input`.
pub fn output_type(input: &DataType) -> DataType {
    match input {
        DataType::FixedSizeList(_, dim) => vector_type(*dim as usize),
        _ => variable_vector_type(),
    }
}

/// The dimension a type fixes at planning time, if it fixes one.
pub fn fixed_dimension(data_type: &DataType) -> Option<usize> {
    match data_type {
        DataType::FixedSizeList(_, dim) => Some(*dim as usize),
        _ => None,
    }
}

/// Checks at planning time that argument `position` (1-based) of `function` can be a vector.
pub fn check_vector_type(function: &str, position: usize, data_type: &DataType) -> Result<()> {
    let element = match data_type {
        DataType::Null => return Ok(()),
        DataType::FixedSizeList(field, _) | DataType::List(field) | DataType::LargeList(field) => field.data_type(),
        other => {
            return plan_err!("{function}: argument {position} must be a vector (a list of numbers), got {other}");
        }
    };
    if element.is_numeric() || element == &DataType::Null {
        Ok(())
    } else {
        plan_err!("{function}: argument {position} must be a vector of numbers, got a list of {element}")
    }
}

/// Checks at planning time that two fixed dimensions agree.
pub fn check_same_fixed_dimension(function: &str, a: &DataType, b: &DataType) -> Result<()> {
    match (fixed_dimension(a), fixed_dimension(b)) {
        (Some(da), Some(db)) if da != db => {
            plan_err!("{function}: vectors have different dimensions: {da} and {db}")
        }
        _ => Ok(()),
    }
}

/// A column of vectors as one flat f32 buffer.
#[derive(Debug, Clone)]
pub struct Vectors {
    values: ScalarBuffer<f32>,
    dim: Option<usize>,
    len: usize,
    nulls: Option<NullBuffer>,
    broadcast: bool,
}

impl Vectors {
    /// Reads argument `position` (1-based) of `function`; a scalar is broadcast to every row.
    pub fn from_columnar(function: &str, position: usize, value: &ColumnarValue) -> Result<Self> {
        match value {
            ColumnarValue::Array(array) => Self::try_new(function, position, array),
            ColumnarValue::Scalar(scalar) => {
                let mut vectors = Self::try_new(function, position, &scalar.to_array()?)?;
                vectors.broadcast = true;
                Ok(vectors)
            }
        }
    }

    /// Reads a vector column. A row holding a NULL element is a NULL vector.
    pub fn try_new(function: &str, position: usize, array: &ArrayRef) -> Result<Self> {
        check_vector_type(function, position, array.data_type())?;
        match array.data_type() {
            DataType::Null => Ok(Self {
                values: ScalarBuffer::from(Vec::new()),
                dim: None,
                len: array.len(),
                nulls: Some(NullBuffer::new_null(array.len())),
                broadcast: false,
            }),
            DataType::FixedSizeList(_, dim) => {
                let list = array.as_fixed_size_list();
                let dim = *dim as usize;
                let child = f32_values(list.values())?;
                let nulls = with_element_nulls(list.nulls(), child.nulls(), list.len(), |row| {
                    (row * dim, (row + 1) * dim)
                });
                Ok(Self {
                    values: child.values().clone(),
                    dim: Some(dim),
                    len: list.len(),
                    nulls,
                    broadcast: false,
                })
            }
            DataType::List(_) => Self::from_list(function, position, array.as_list::<i32>()),
            DataType::LargeList(_) => Self::from_list(function, position, array.as_list::<i64>()),
            _ => unreachable!("check_vector_type accepts only list types"),
        }
    }

    fn from_list<O: OffsetSizeTrait>(function: &str, position: usize, list: &GenericListArray<O>) -> Result<Self> {
        let offsets = list.value_offsets();
        let bounds = |row: usize| (offsets[row].as_usize(), offsets[row + 1].as_usize());
        let mut dim = None;
        for row in 0..list.len() {
            if list.is_null(row) {
                continue;
            }
            let (start, end) = bounds(row);
            match dim {
                None => dim = Some(end - start),
                Some(d) if d != end - start => {
                    return exec_err!(
                        "{function}: argument {position} holds vectors of different dimensions: {d} and {}",
                        end - start
                    );
                }
                Some(_) => {}
            }
        }
        let child = f32_values(list.values())?;
        let nulls = with_element_nulls(list.nulls(), child.nulls(), list.len(), bounds);
        let d = dim.unwrap_or(0);
        let source = child.values();
        let (first, last) = if list.is_empty() {
            (0, 0)
        } else {
            (bounds(0).0, bounds(list.len() - 1).1)
        };
        let contiguous = list.nulls().is_none() && last - first == d * list.len();
        let values = if contiguous {
            source.slice(first, last - first)
        } else {
            let mut flat = Vec::with_capacity(d * list.len());
            for row in 0..list.len() {
                let (start, end) = bounds(row);
                if list.is_valid(row) {
                    flat.extend_from_slice(&source[start..end]);
                } else {
                    flat.resize(flat.len() + d, 0.0);
                }
            }
            ScalarBuffer::from(flat)
        };
        Ok(Self {
            values,
            dim,
            len: list.len(),
            nulls,
            broadcast: false,
        })
    }

    /// The dimension, or `None` when no row has told it yet (every row NULL).
    pub fn dim(&self) -> Option<usize> {
        self.dim
    }

    /// Number of rows (1 for a broadcast scalar).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Row `row`'s vector, or `None` for a NULL row.
    pub fn row(&self, row: usize) -> Option<&[f32]> {
        let row = if self.broadcast { 0 } else { row };
        if self.nulls.as_ref().is_some_and(|n| n.is_null(row)) {
            return None;
        }
        let dim = self.dim?;
        Some(&self.values[row * dim..(row + 1) * dim])
    }

    /// Fails, naming `function`, the `table` and the row's id in `ids`, when a vector holds an
    /// infinite or NaN element: it has no meaningful score or distance (`inf − inf` is NaN), so
    /// a ranking would drop it or place it anywhere rather than say so.
    pub fn expect_finite(&self, function: &str, table: &str, ids: &ArrayRef) -> Result<()> {
        let rows = if self.broadcast { 1 } else { self.len };
        for row in 0..rows {
            if let Some(vector) = self.row(row)
                && let Some(value) = vector.iter().find(|x| !x.is_finite())
            {
                let id = datafusion::common::ScalarValue::try_from_array(ids, row)?;
                return exec_err!(
                    "{function}: the vector of {id} in the {table} table holds {value}; vectors must be finite numbers"
                );
            }
        }
        Ok(())
    }

    /// Fails when both columns know their dimension and the two differ.
    pub fn check_same_dimension(&self, other: &Self, function: &str) -> Result<()> {
        match (self.dim, other.dim) {
            (Some(a), Some(b)) if a != b => {
                exec_err!("{function}: vectors have different dimensions: {a} and {b}")
            }
            _ => Ok(()),
        }
    }
}

fn f32_values(values: &ArrayRef) -> Result<Float32Array> {
    let values = if values.data_type() == &DataType::Float32 {
        Arc::clone(values)
    } else {
        cast(values, &DataType::Float32)?
    };
    Ok(values.as_primitive().clone())
}

/// Row validity: the list's own, and false where any element of the row is NULL.
fn with_element_nulls(
    rows: Option<&NullBuffer>,
    elements: Option<&NullBuffer>,
    len: usize,
    bounds: impl Fn(usize) -> (usize, usize),
) -> Option<NullBuffer> {
    let Some(elements) = elements.filter(|e| e.null_count() > 0) else {
        return rows.cloned();
    };
    let valid = (0..len).map(|row| {
        let (start, end) = bounds(row);
        rows.is_none_or(|r| r.is_valid(row)) && (start..end).all(|i| elements.is_valid(i))
    });
    Some(NullBuffer::from_iter(valid))
}

/// Builds a vector column from flat values: `FixedSizeList<Float32, dim>` when `as_type`
/// is fixed-size, `List<Float32>` otherwise.
pub fn vector_array(
    as_type: &DataType,
    values: Vec<f32>,
    dim: usize,
    len: usize,
    nulls: Option<NullBuffer>,
) -> Result<ArrayRef> {
    let item = Arc::new(Field::new_list_field(DataType::Float32, true));
    let child = Arc::new(Float32Array::from(values));
    Ok(match as_type {
        DataType::FixedSizeList(_, fixed) if *fixed as usize == dim => Arc::new(
            FixedSizeListArray::try_new_with_length(item, dim as i32, child, nulls, len)?,
        ),
        DataType::FixedSizeList(_, fixed) => {
            return exec_err!("vector result of dimension {dim} does not fit the planned dimension {fixed}");
        }
        _ => Arc::new(ListArray::try_new(
            item,
            OffsetBuffer::from_repeated_length(dim, len),
            child,
            nulls,
        )?),
    })
}

/// Wraps a result: a one-row scalar when every argument was a scalar, the array otherwise.
pub fn to_columnar(result: ArrayRef, all_scalar: bool) -> Result<ColumnarValue> {
    Ok(if all_scalar {
        ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&result, 0)?)
    } else {
        ColumnarValue::Array(result)
    })
}
