//! Row-major matrix products on slices, single-threaded: the fused training operations
//! ([`super::cross_entropy`], [`super::encoder_block`]) and the text encoder run many small
//! products at once in parallel tasks of their own, so each product is one gemm call on one
//! thread.
//!
//! gemm reads its left operand by columns: a row-major left operand is first copied into
//! columns one element at a time (a sixth of the text encoder's time went to that copy). A
//! product whose left operand would be row-major activations is better computed transposed,
//! `(a·b)ᵀ = bᵀ·aᵀ`, with [`multiply_transposed`], where the activations become the right
//! operand, which gemm reads as it lies.

/// A matrix read from `values`: the element at (row, column) is
/// `values[row · row_stride + column · column_stride]`.
pub(crate) struct View<'a> {
    pub values: &'a [f32],
    pub row_stride: usize,
    pub column_stride: usize,
}

impl<'a> View<'a> {
    /// Rows `row_stride` apart, each contiguous.
    pub fn rows(values: &'a [f32], row_stride: usize) -> Self {
        View {
            values,
            row_stride,
            column_stride: 1,
        }
    }

    /// The transpose of [`View::rows`]`(values, row_stride)`.
    pub fn transposed(values: &'a [f32], row_stride: usize) -> Self {
        View {
            values,
            row_stride: 1,
            column_stride: row_stride,
        }
    }

    fn fits(&self, rows: usize, columns: usize) -> bool {
        rows == 0
            || columns == 0
            || (rows - 1) * self.row_stride + (columns - 1) * self.column_stride < self.values.len()
    }
}

/// `out (m × n, rows out_stride apart) = [out +] a (m × k) · b (k × n)`.
pub(crate) fn multiply(
    out: &mut [f32],
    out_stride: usize,
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    a: View,
    b: View,
) {
    product(out, (1, out_stride), accumulate, (m, n, k), a, b);
}

/// `out (n × m, rows out_stride apart) = [out +] (a (m × k) · b (k × n))ᵀ`.
pub(crate) fn multiply_transposed(
    out: &mut [f32],
    out_stride: usize,
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    a: View,
    b: View,
) {
    product(out, (out_stride, 1), accumulate, (m, n, k), a, b);
}

/// `out = [out +] a · b`, element (i, j) of the product at `out[i · row_step + j · column_step]`
/// for `(column_step, row_step)`, the order gemm takes them in; one of the steps is 1, and the
/// other at least the length of the run it steps over, so no two elements share a place.
fn product(
    out: &mut [f32],
    (column_step, row_step): (usize, usize),
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    a: View,
    b: View,
) {
    let run_fits = match (column_step, row_step) {
        (1, rows) => n <= rows,
        (columns, 1) => m <= columns,
        _ => false,
    };
    let out_fits = m == 0 || n == 0 || (run_fits && (m - 1) * row_step + (n - 1) * column_step < out.len());
    assert!(
        out_fits && a.fits(m, k) && b.fits(k, n),
        "multiply: views out of bounds"
    );
    // SAFETY: the assertion above keeps every index gemm touches inside the three slices,
    // and `out` is borrowed mutably, so it overlaps neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            column_step as isize,
            row_step as isize,
            accumulate,
            a.values.as_ptr(),
            a.column_stride as isize,
            a.row_stride as isize,
            b.values.as_ptr(),
            b.column_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strided output and transposed inputs give the textbook product.
    #[test]
    fn multiplies_views() {
        // a = [[1, 2, 3], [4, 5, 6]] (2 × 3), b = aᵀ read from the same values.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = [9.0f32; 2 * 4];
        multiply(
            &mut out,
            4,
            false,
            (2, 2, 3),
            View::rows(&a, 3),
            View::transposed(&a, 3),
        );
        assert_eq!(out, [14.0, 32.0, 9.0, 9.0, 32.0, 77.0, 9.0, 9.0]);
        multiply(&mut out, 4, true, (2, 2, 3), View::rows(&a, 3), View::transposed(&a, 3));
        assert_eq!(&out[..2], &[28.0, 64.0]);
    }

    /// The transposed product is the product's transpose: a (2 × 3) · b (3 × 1) written as a
    /// row, then b's transpose times a's as a column.
    #[test]
    fn multiplies_transposed() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 2.0];
        let mut row = [9.0f32; 3];
        multiply_transposed(&mut row, 3, false, (2, 1, 3), View::rows(&a, 3), View::rows(&b, 1));
        assert_eq!(row, [7.0, 16.0, 9.0]);
        let mut column = [9.0f32; 4];
        multiply_transposed(
            &mut column,
            2,
            false,
            (1, 2, 3),
            View::rows(&b, 3),
            View::transposed(&a, 3),
        );
        assert_eq!(column, [7.0, 9.0, 16.0, 9.0]);
    }
}
