//! Row-major matrix products on slices, single-threaded: the fused training operations
//! ([`super::cross_entropy`], [`super::encoder_block`]) and the text encoder run many small
//! products at once in parallel tasks of their own, so each product is one gemm call on one
//! thread.

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
    let out_fits = m == 0 || n == 0 || (n <= out_stride && (m - 1) * out_stride + n <= out.len());
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
            1,
            out_stride as isize,
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
}
