//! `calibration_kl(list_genres, history_genres)`: how far a list's genre distribution is from
//! the user's (Steck, Calibrated Recommendations, RecSys 2018): `KL(p ‖ q̃) = Σ_g p(g)·ln(p(g) /
//! q̃(g))`, p the history's distribution, q the list's, both the given genre weights divided by
//! their sums, and `q̃ = (1 − α)·q + α·p` with α = 0.01 so a genre the list lacks costs a finite
//! amount. 0 when the list is calibrated; `rerank_calibrated` lowers it.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::common::utils::take_function_args;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::vector::{Vectors, check_vector_type, to_columnar};

const NAME: &str = "calibration_kl";

/// Steck's smoothing of the list's distribution towards the history's.
pub const ALPHA: f64 = 0.01;

#[user_doc(
    doc_section(label = "Evaluation Functions"),
    description = "Steck's miscalibration of a recommendation list (RecSys 2018): KL(p ‖ q̃) = Σ_g p(g)·ln(p(g)/q̃(g)), p the user's history genre distribution, q the list's (each vector divided by its sum), q̃ = 0.99·q + 0.01·p. 0 for a list whose genres match the history's; NULL when either vector is NULL or the history's sums to nothing. Genre weights must be ≥ 0 and the vectors of one dimension.",
    syntax_example = "calibration_kl(list_genres, history_genres)",
    sql_example = r#"```sql
> SELECT calibration_kl(vector_mean(i.genres), h.genres) FROM recs r JOIN items i USING (item_id)
  JOIN history_genres h USING (user_id) GROUP BY r.user_id, h.genres;
```"#,
    argument(
        name = "list_genres",
        description = "The genre weights of the list: e.g. the sum or mean of its items' genre vectors."
    ),
    argument(
        name = "history_genres",
        description = "The genre weights of the user's history, of the same dimension."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CalibrationKl {
    signature: Signature,
}

impl Default for CalibrationKl {
    fn default() -> Self {
        Self::new()
    }
}

impl CalibrationKl {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// `KL(p ‖ q̃)` for a distribution `p` and the list's genre weights `sum` over `length` items
/// (`q = sum / length`), with `q̃ = (1 − α)·q + α·p`.
pub fn smoothed_kl(p: &[f64], sum: impl Fn(usize) -> f64, length: f64) -> f64 {
    let mut divergence = 0.0;
    for (g, &pg) in p.iter().enumerate() {
        if pg > 0.0 {
            let q = (1.0 - ALPHA) * sum(g) / length + ALPHA * pg;
            divergence += pg * (pg / q).ln();
        }
    }
    divergence
}

/// The miscalibration of the list with genre weights `list` for the history with weights
/// `history`; `None` when the history's weights sum to nothing or a weight is negative.
pub fn calibration(list: &[f32], history: &[f32]) -> Option<f64> {
    if list.iter().chain(history).any(|w| *w < 0.0 || !w.is_finite()) {
        return None;
    }
    let history_total: f64 = history.iter().map(|&w| f64::from(w)).sum();
    if history_total <= 0.0 {
        return None;
    }
    let p: Vec<f64> = history.iter().map(|&w| f64::from(w) / history_total).collect();
    let list_total: f64 = list.iter().map(|&w| f64::from(w)).sum();
    let q = |g: usize| {
        if list_total > 0.0 {
            f64::from(list[g]) / list_total
        } else {
            0.0
        }
    };
    Some(smoothed_kl(&p, q, 1.0))
}

impl ScalarUDFImpl for CalibrationKl {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [list, history] = take_function_args(NAME, arg_types)?;
        check_vector_type(NAME, 1, list)?;
        check_vector_type(NAME, 2, history)?;
        crate::vector::check_same_fixed_dimension(NAME, list, history)?;
        Ok(arg_types.to_vec())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [list, history] = take_function_args(NAME, &args.args)?;
        let all_scalar = matches!((list, history), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        let lists = Vectors::from_columnar(NAME, 1, list)?;
        let histories = Vectors::from_columnar(NAME, 2, history)?;
        lists.check_same_dimension(&histories, NAME)?;
        let rows = if all_scalar { 1 } else { args.number_rows };
        let result: Float64Array = (0..rows)
            .map(|row| match (lists.row(row), histories.row(row)) {
                (Some(list), Some(history)) => calibration(list, history),
                _ => None,
            })
            .collect();
        let result: ArrayRef = Arc::new(result);
        to_columnar(result, all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // A list with the history's genres is calibrated.
        assert!(calibration(&[2.0, 2.0], &[1.0, 1.0]).unwrap().abs() < 1e-12);
        // History (0.5, 0.5), list all genre 0: q̃ = (0.995, 0.005);
        // KL = 0.5·ln(0.5/0.995) + 0.5·ln(0.5/0.005).
        let expected = 0.5 * (0.5f64 / 0.995).ln() + 0.5 * (0.5f64 / 0.005).ln();
        assert!((calibration(&[3.0, 0.0], &[1.0, 1.0]).unwrap() - expected).abs() < 1e-12);
        assert_eq!(calibration(&[1.0, 0.0], &[0.0, 0.0]), None);
        assert_eq!(calibration(&[-1.0, 0.0], &[1.0, 0.0]), None);
    }
}
