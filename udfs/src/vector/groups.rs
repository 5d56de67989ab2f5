//! Per-group f64 vectors in one flat buffer — the running sums of the vector aggregates
//! (`vector_mean`, the pooling aggregates) — with the dimension learned from the first vector
//! seen and every later one checked against it.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::EmitTo;

/// Group g's vector is `values[g * dim..(g + 1) * dim]`.
#[derive(Debug)]
pub struct GroupSums {
    function: &'static str,
    dim: Option<usize>,
    groups: usize,
    values: Vec<f64>,
}

impl GroupSums {
    pub fn new(function: &'static str, dim: Option<usize>) -> Self {
        Self {
            function,
            dim,
            groups: 0,
            values: Vec::new(),
        }
    }

    /// The dimension, once known (0 before).
    pub fn dim(&self) -> usize {
        self.dim.unwrap_or(0)
    }

    pub fn known_dim(&self) -> Option<usize> {
        self.dim
    }

    /// Learns the dimension from the first vector and checks every later one against it.
    pub fn accept_dimension(&mut self, dim: Option<usize>) -> Result<()> {
        match (self.dim, dim) {
            (_, None) => Ok(()),
            (None, Some(d)) => {
                self.dim = Some(d);
                self.values = vec![0.0; self.groups * d];
                Ok(())
            }
            (Some(a), Some(b)) if a != b => {
                exec_err!("{}: vectors have different dimensions: {a} and {b}", self.function)
            }
            _ => Ok(()),
        }
    }

    pub fn resize(&mut self, groups: usize) {
        self.groups = groups;
        self.values.resize(groups * self.dim(), 0.0);
    }

    /// Every group's vector, flat.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    pub fn row_mut(&mut self, group: usize) -> &mut [f64] {
        let dim = self.dim();
        &mut self.values[group * dim..(group + 1) * dim]
    }

    /// Removes the first groups (or all) named by `emit_to`, returning their vectors.
    pub fn take(&mut self, emit_to: EmitTo) -> Vec<f64> {
        match emit_to {
            EmitTo::All => {
                self.groups = 0;
                std::mem::take(&mut self.values)
            }
            EmitTo::First(n) => {
                self.groups -= n;
                let rest = self.values.split_off(n * self.dim());
                std::mem::replace(&mut self.values, rest)
            }
        }
    }

    /// Taken vectors of `groups` groups as a `List<Float64>` state column, one list per group.
    pub fn state_array(&self, values: Vec<f64>, groups: usize) -> Result<ArrayRef> {
        let dim = self.dim();
        Ok(Arc::new(ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Float64, true)),
            OffsetBuffer::from_repeated_length(dim, groups),
            Arc::new(Float64Array::from(values)),
            None,
        )?))
    }

    pub fn size(&self) -> usize {
        self.values.capacity() * size_of::<f64>()
    }
}
