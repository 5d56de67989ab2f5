//! Ranking metrics for one user at a time: `precision_at_k`, `recall_at_k`, `hit_at_k`,
//! `ndcg_at_k`, `average_precision_at_k` and `reciprocal_rank_at_k`, each
//! `(recommended list, relevant list, k) → Float64`, with binary relevance.
//!
//! `recommended` is ranked best first and cut at `k`; `relevant` is a set. A user with nothing
//! relevant (a NULL or empty list) gets NULL, so `AVG()` over users skips them; a NULL
//! recommended list counts as empty (every metric 0). Ids may be of any type; the relevant
//! list is cast to the recommended list's element type.
//!
use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, DocSection, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// Which metric a [`RankingMetricUdf`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RankingMetric {
    Precision,
    Recall,
    Hit,
    Ndcg,
    AveragePrecision,
    ReciprocalRank,
}

impl RankingMetric {
    pub const ALL: [RankingMetric; 6] = [
        RankingMetric::Precision,
        RankingMetric::Recall,
        RankingMetric::Hit,
        RankingMetric::Ndcg,
        RankingMetric::AveragePrecision,
        RankingMetric::ReciprocalRank,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RankingMetric::Precision => "precision_at_k",
            RankingMetric::Recall => "recall_at_k",
            RankingMetric::Hit => "hit_at_k",
            RankingMetric::Ndcg => "ndcg_at_k",
            RankingMetric::AveragePrecision => "average_precision_at_k",
            RankingMetric::ReciprocalRank => "reciprocal_rank_at_k",
        }
    }

    fn description(self) -> &'static str {
        match self {
            RankingMetric::Precision => "Share of the top k recommendations that are relevant: hits / k.",
            RankingMetric::Recall => "Share of the relevant items found in the top k: hits / |relevant|.",
            RankingMetric::Hit => "1 when at least one of the top k recommendations is relevant, else 0 (HR@k).",
            RankingMetric::Ndcg => {
                "Normalised discounted cumulative gain: Σ 1/log2(rank + 1) over relevant items in the top k, \
                 divided by the same sum for a perfect list of min(k, |relevant|) items."
            }
            RankingMetric::AveragePrecision => {
                "Average precision: the mean of precision@i over the ranks i ≤ k holding a relevant item, \
                 divided by min(k, |relevant|) (the per-user term of MAP@k)."
            }
            RankingMetric::ReciprocalRank => {
                "1 / rank of the first relevant item in the top k, 0 when none (MRR@k per user)."
            }
        }
    }

    /// The metric for one user, from the 0-based positions of hits in the top k.
    pub fn score(self, hit_positions: &[usize], relevant: usize, k: usize) -> f64 {
        let hits = hit_positions.len() as f64;
        let discount = |position: usize| 1.0 / ((position + 2) as f64).log2();
        match self {
            RankingMetric::Precision => hits / k as f64,
            RankingMetric::Recall => hits / relevant as f64,
            RankingMetric::Hit => (hits > 0.0) as u8 as f64,
            RankingMetric::Ndcg => {
                let dcg: f64 = hit_positions.iter().map(|&p| discount(p)).sum();
                let ideal: f64 = (0..relevant.min(k)).map(discount).sum();
                dcg / ideal
            }
            RankingMetric::AveragePrecision => {
                let sum: f64 = hit_positions
                    .iter()
                    .enumerate()
                    .map(|(found, &position)| (found + 1) as f64 / (position + 1) as f64)
                    .sum();
                sum / relevant.min(k) as f64
            }
            RankingMetric::ReciprocalRank => hit_positions.first().map_or(0.0, |&p| 1.0 / (p + 1) as f64),
        }
    }
}

/// One ranking metric as a scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RankingMetricUdf {
    metric: RankingMetric,
    signature: Signature,
    documentation: Documentation,
}

impl RankingMetricUdf {
    pub fn new(metric: RankingMetric) -> Self {
        let documentation = Documentation::builder(
            DocSection {
                include: true,
                label: "Evaluation Functions",
                description: None,
            },
            format!(
                "{} NULL when nothing is relevant, so AVG() over users skips them.",
                metric.description()
            ),
            format!("{}(recommended, relevant, k)", metric.name()),
        )
        .with_sql_example(format!(
            "```sql\n> SELECT avg({}(recommended, relevant, 10)) FROM per_user_lists;\n```",
            metric.name()
        ))
        .with_argument("recommended", "The recommended ids, best first (a list).")
        .with_argument("relevant", "The ids that are relevant for the user (a list).")
        .with_argument("k", "The cut-off: a positive integer.")
        .build();
        Self {
            metric,
            signature: Signature::any(3, Volatility::Immutable),
            documentation,
        }
    }
}

fn list_element(function: &str, position: usize, data_type: &DataType) -> Result<DataType> {
    match data_type {
        DataType::List(field) | DataType::LargeList(field) | DataType::FixedSizeList(field, _) => {
            Ok(field.data_type().clone())
        }
        DataType::Null => Ok(DataType::Null),
        other => plan_err!("{function}: argument {position} must be a list of ids, got {other}"),
    }
}

impl ScalarUDFImpl for RankingMetricUdf {
    fn name(&self) -> &str {
        self.metric.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let name = self.metric.name();
        list_element(name, 1, &args[0])?;
        list_element(name, 2, &args[1])?;
        if !(args[2].is_integer() || args[2] == DataType::Null) {
            return plan_err!("{name}: argument 3 (k) must be an integer, got {}", args[2]);
        }
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.metric.name();
        let all_scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let recommended = as_large_list(&arrays[0])?;
        let element = match recommended.value_type() {
            DataType::Null => list_element(name, 2, arrays[1].data_type())?,
            other => other,
        };
        let relevant = as_large_list(&arrays[1])?;
        let ks = cast(&arrays[2], &DataType::Int64)?;
        let ks: &Int64Array = ks.as_primitive::<Int64Type>();

        let converter = RowConverter::new(vec![SortField::new(element.clone())])?;
        let recommended_rows = converter.convert_columns(&[cast(recommended.values(), &element)?])?;
        let relevant_rows = converter.convert_columns(&[cast(relevant.values(), &element)?])?;
        let recommended_offsets = recommended.value_offsets();
        let relevant_offsets = relevant.value_offsets();

        let mut result = Vec::with_capacity(recommended.len());
        for row in 0..recommended.len() {
            if ks.is_null(row) {
                result.push(None);
                continue;
            }
            let k = ks.value(row);
            if k <= 0 {
                return exec_err!("{name}: k must be a positive integer, got {k}");
            }
            if relevant.is_null(row) {
                result.push(None);
                continue;
            }
            let wanted: HashSet<_> = (relevant_offsets[row] as usize..relevant_offsets[row + 1] as usize)
                .map(|i| relevant_rows.row(i))
                .collect();
            if wanted.is_empty() {
                result.push(None);
                continue;
            }
            let mut hit_positions = Vec::new();
            if recommended.is_valid(row) {
                let start = recommended_offsets[row] as usize;
                let end = (recommended_offsets[row + 1] as usize).min(start + k as usize);
                let mut seen = HashSet::new();
                for (position, i) in (start..end).enumerate() {
                    let id = recommended_rows.row(i);
                    if wanted.contains(&id) && seen.insert(id) {
                        hit_positions.push(position);
                    }
                }
            }
            result.push(Some(self.metric.score(&hit_positions, wanted.len(), k as usize)));
        }
        let result: ArrayRef = Arc::new(Float64Array::from(result));
        crate::vector::to_columnar(result, all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

/// Any list argument as a `LargeList`, so one code path reads every list type.
fn as_large_list(array: &ArrayRef) -> Result<datafusion::arrow::array::LargeListArray> {
    let target = match array.data_type() {
        DataType::List(field) | DataType::LargeList(field) | DataType::FixedSizeList(field, _) => {
            DataType::LargeList(Arc::clone(field))
        }
        _ => DataType::LargeList(Arc::new(datafusion::arrow::datatypes::Field::new_list_field(
            DataType::Null,
            true,
        ))),
    };
    Ok(cast(array, &target)?.as_list::<i64>().clone())
}

#[cfg(test)]
mod tests {
    use super::RankingMetric::*;

    /// Recommended [a, b, c, d], relevant {b, d, x}: hits at ranks 2 and 4.
    #[test]
    fn metrics_by_hand() {
        let hits = [1, 3];
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(Precision.score(&hits, 3, 4), 0.5));
        assert!(close(Recall.score(&hits, 3, 4), 2.0 / 3.0));
        assert!(close(Hit.score(&hits, 3, 4), 1.0));
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let ideal = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!(close(Ndcg.score(&hits, 3, 4), dcg / ideal));
        assert!(close(
            AveragePrecision.score(&hits, 3, 4),
            (1.0 / 2.0 + 2.0 / 4.0) / 3.0
        ));
        assert!(close(ReciprocalRank.score(&hits, 3, 4), 0.5));
        assert!(close(Ndcg.score(&[], 3, 4), 0.0));
    }
}
