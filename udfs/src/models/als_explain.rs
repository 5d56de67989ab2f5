//! `als_explain(model, interactions, pairs [, top])`: why an iALS model (`train_als`) scores an
//! item for a user, as Hu, Koren & Volinsky (2008, §5) explain it and `implicit`'s `explain()`
//! computes it. The user's factor solves `(YᵀC^uY + λI)·x_u = YᵀC^u·p_u`, so with
//! `W^u = (YᵀC^uY + λI)⁻¹` the score is `y_iᵀx_u = Σ_j (y_iᵀW^u y_j)·c_uj` over the items j of
//! the user's history (`c_uj = alpha·weight`): each term is item j's contribution. The score is
//! that of the exact solution, which the model's stored factor (a few conjugate-gradient steps
//! per sweep) approaches; both are returned.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float32Array, ListArray, RecordBatch, StructArray, UInt32Array};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::directory::model_argument;
use super::file::{ModelFile, named_error};
use crate::table_function::interactions::{IdIndex, Interactions};
use crate::table_function::{Arguments, Planned, Run, TableFunction, expect_same_ids};

const NAME: &str = "als_explain";

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Why an iALS model (train_als) scores an item for a user, as Hu, Koren & Volinsky (2008) explain it and the implicit library's explain() does: with W = (YᵀC^uY + λI)⁻¹ the score y_iᵀx_u is Σ_j (y_iᵀ W y_j)·c_uj over the user's history items j (confidence c = alpha·weight), each term an item's contribution. One row per (user, item) pair whose user has history and whose item the model knows: (user, item, score, model_score, because) — score is the exact solution's (the sum of all contributions), model_score the stored factors' dot product, because the top history items with their contributions, largest first.",
    syntax_example = "als_explain(model, interactions, pairs [, top => 10] [, user => 'column', item => 'column', weight => 'column', pair_user => 'column', pair_item => 'column'])",
    sql_example = r#"```sql
> SELECT * FROM als_explain('als_v1', 'events', 'recommended', top => 3);
```"#,
    argument(
        name = "model",
        description = "A model saved by train_als: its name or its file's path."
    ),
    argument(
        name = "interactions",
        description = "A table or view of (user, item[, weight]) rows: the histories, as the model was trained on them."
    ),
    argument(
        name = "pairs",
        description = "A table or view of the (user, item) pairs to explain."
    ),
    argument(
        name = "top",
        description = "How many history items because lists per pair (default 10, as implicit)."
    ),
    argument(
        name = "user",
        description = "The column of interactions that holds the user id (default: the first)."
    ),
    argument(
        name = "item",
        description = "The column of interactions that holds the item id (default: the second)."
    ),
    argument(
        name = "weight",
        description = "The column of interactions that holds the weight (default: the third, if any; 1 when absent)."
    ),
    argument(
        name = "pair_user",
        description = "The column of pairs that holds the user id (default: the first)."
    ),
    argument(
        name = "pair_item",
        description = "The column of pairs that holds the item id (default: the second)."
    )
)]
#[derive(Debug, Default)]
pub struct AlsExplain;

#[derive(Debug, Serialize, Deserialize)]
struct Options {
    path: String,
    top: usize,
}

/// One explained pair: its row of `pairs`, the score, and the top (history item, contribution)
/// pairs.
type Explained = (usize, f32, Vec<(u32, f32)>);

fn because_type(item_type: &DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(Fields::from(vec![
            Field::new("item", item_type.clone(), true),
            Field::new("contribution", DataType::Float32, false),
        ])),
        true,
    )))
}

impl TableFunction for AlsExplain {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(3..=4)?;
        let path = model_argument(args, 0)?;
        let interactions = args.required_input(1, "interactions", Some("user, item[, weight]"))?;
        let pairs = args.required_input(2, "pairs", Some("pair_user, pair_item"))?;
        let top = args.positive_integer(3, "top", Some(10))?;
        let summary = super::file::summary(Path::new(&path)).map_err(named_error(NAME))?;
        if summary.kind != "als" {
            return plan_err!("{NAME}: model '{path}' is of kind '{}', not 'als'", summary.kind);
        }
        let (i, p) = (interactions.table.provider.schema(), pairs.table.provider.schema());
        expect_same_ids(NAME, ("interactions", i.field(0)), ("pairs", p.field(0)))?;
        expect_same_ids(NAME, ("interactions", i.field(1)), ("pairs", p.field(1)))?;
        let schema = Arc::new(Schema::new(vec![
            Field::new(p.field(0).name(), p.field(0).data_type().clone(), true),
            Field::new(p.field(1).name(), p.field(1).data_type().clone(), true),
            Field::new("score", DataType::Float32, false),
            Field::new("model_score", DataType::Float32, true),
            Field::new("because", because_type(i.field(1).data_type()), true),
        ]));
        Planned::new(vec![interactions, pairs], &Options { path, top }, schema)
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { path, top } = run.call.options()?;
        let file = ModelFile::load(Path::new(&path), Some("als")).map_err(named_error(NAME))?;
        let (items, f, model_items) = file.matrix("items", "items").map_err(named_error(NAME))?;
        let (users, _, model_users) = file.matrix("users", "users").map_err(named_error(NAME))?;
        let setting = |key: &str| match file.config[key].as_f64() {
            Some(value) if value.is_finite() => Ok(value),
            _ => exec_err!("{NAME}: model '{path}' has no setting '{key}'; the file is damaged"),
        };
        let (alpha, regularization) = (setting("alpha")?, setting("regularization")?);
        let history = Interactions::from_batch(NAME, &inputs[0])?;
        let pairs = &inputs[1];
        run.reserve(history.memory_size() + rayon::current_num_threads() * f * f * 2 * size_of::<f64>())?;

        // Interactions' items as rows of the model's item matrix.
        let model_item_index = IdIndex::by_row(model_items)?;
        let history_items = model_item_index.lookup(&history.item_ids)?;
        let pair_users = history.user_indices(pairs.column(0))?;
        let pair_items = model_item_index.lookup(pairs.column(1))?;
        let stored_users = IdIndex::by_row(model_users)?.lookup(pairs.column(0))?;
        let mut by_user: HashMap<u32, Vec<usize>> = HashMap::new();
        for row in 0..pairs.num_rows() {
            if let (Some(user), Some(_)) = (pair_users[row], pair_items[row]) {
                by_user.entry(user).or_default().push(row);
            }
        }
        let yty = gram(items, f);
        let row_of = |index: u32| &items[index as usize * f..(index as usize + 1) * f];
        let mut explained: Vec<Explained> = by_user
            .into_par_iter()
            .flat_map_iter(|(user, rows)| {
                // The user's history as (item of the interactions, row of the model, confidence).
                let own: Vec<(u32, u32, f64)> = history
                    .by_user
                    .row(user as usize)
                    .filter_map(|(item, weight)| Some((item, history_items[item as usize]?, alpha * f64::from(weight))))
                    .filter(|&(_, _, confidence)| confidence >= 0.0)
                    .collect();
                let mut a = yty.clone();
                for d in 0..f {
                    a[d * f + d] += regularization;
                }
                for &(_, item, confidence) in &own {
                    let y = row_of(item);
                    for r in 0..f {
                        let scaled = (confidence - 1.0) * f64::from(y[r]);
                        for c in 0..f {
                            a[r * f + c] += scaled * f64::from(y[c]);
                        }
                    }
                }
                let factor = cholesky(a, f);
                rows.into_iter()
                    .map(|row| {
                        let item = pair_items[row].expect("kept pairs have a model item");
                        let Some(factor) = &factor else {
                            return (row, f32::NAN, Vec::new());
                        };
                        let weighted = solve(factor, f, row_of(item));
                        let mut parts: Vec<(u32, f32)> = own
                            .iter()
                            .map(|&(item, j, confidence)| {
                                let s: f64 = weighted.iter().zip(row_of(j)).map(|(w, y)| w * f64::from(*y)).sum();
                                (item, (s * confidence) as f32)
                            })
                            .collect();
                        let score: f32 = parts.iter().map(|p| p.1).sum();
                        parts.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                        parts.truncate(top);
                        (row, score, parts)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        if explained.iter().any(|(_, score, _)| score.is_nan()) {
            return exec_err!(
                "{NAME}: a user's system (YᵀCY + λI) is not positive definite; model '{path}' needs regularization > 0"
            );
        }
        explained.sort_unstable_by_key(|(row, _, _)| *row);

        let rows: Vec<u32> = explained.iter().map(|(row, _, _)| *row as u32).collect();
        let scores: Vec<f32> = explained.iter().map(|(_, score, _)| *score).collect();
        let model_scores: Float32Array = explained
            .iter()
            .map(|&(row, _, _)| {
                let user = stored_users[row]?;
                let item = pair_items[row]?;
                let x = &users[user as usize * f..(user as usize + 1) * f];
                Some(x.iter().zip(row_of(item)).map(|(a, b)| a * b).sum())
            })
            .collect();
        let mut offsets = vec![0i32];
        let (mut because_items, mut contributions) = (Vec::new(), Vec::new());
        for (_, _, parts) in &explained {
            for &(item, contribution) in parts {
                because_items.push(item);
                contributions.push(contribution);
            }
            offsets.push(because_items.len() as i32);
        }
        let DataType::List(field) = because_type(history.item_ids.data_type()) else {
            unreachable!("because_type is a list")
        };
        let DataType::Struct(fields) = field.data_type().clone() else {
            unreachable!("because_type holds structs")
        };
        let entries = StructArray::try_new(
            fields,
            vec![
                take(history.item_ids.as_ref(), &UInt32Array::from(because_items), None)?,
                Arc::new(Float32Array::from(contributions)),
            ],
            None,
        )?;
        let because = ListArray::try_new(field, OffsetBuffer::new(offsets.into()), Arc::new(entries), None)?;
        let indices = UInt32Array::from(rows);
        let columns: Vec<ArrayRef> = vec![
            take(pairs.column(0).as_ref(), &indices, None)?,
            take(pairs.column(1).as_ref(), &indices, None)?,
            Arc::new(Float32Array::from(scores)),
            Arc::new(model_scores),
            Arc::new(because),
        ];
        Ok(RecordBatch::try_new(Arc::clone(run.schema), columns)?)
    }
}

/// `YᵀY` of the rows of `y` (each `f` long), in f64.
fn gram(y: &[f32], f: usize) -> Vec<f64> {
    let rows: Vec<&[f32]> = y.chunks_exact(f).collect();
    let partials = rows.par_chunks(1024).map(|chunk| {
        let mut sum = vec![0.0f64; f * f];
        for row in chunk {
            for r in 0..f {
                let v = f64::from(row[r]);
                for c in 0..f {
                    sum[r * f + c] += v * f64::from(row[c]);
                }
            }
        }
        sum
    });
    partials.reduce(
        || vec![0.0f64; f * f],
        |mut a, b| {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
            a
        },
    )
}

/// The lower-triangular `L` with `L·Lᵀ = a` (`f × f`, row-major), `None` when `a` is not
/// positive definite.
fn cholesky(mut a: Vec<f64>, f: usize) -> Option<Vec<f64>> {
    for j in 0..f {
        let mut diagonal = a[j * f + j];
        for k in 0..j {
            diagonal -= a[j * f + k] * a[j * f + k];
        }
        if diagonal.is_nan() || diagonal <= 0.0 {
            return None;
        }
        let diagonal = diagonal.sqrt();
        a[j * f + j] = diagonal;
        for i in j + 1..f {
            let mut value = a[i * f + j];
            for k in 0..j {
                value -= a[i * f + k] * a[j * f + k];
            }
            a[i * f + j] = value / diagonal;
        }
        for i in 0..j {
            a[i * f + j] = 0.0;
        }
    }
    Some(a)
}

/// `x` with `L·Lᵀ·x = b`.
fn solve(l: &[f64], f: usize, b: &[f32]) -> Vec<f64> {
    let mut y = vec![0.0f64; f];
    for i in 0..f {
        let mut value = f64::from(b[i]);
        for k in 0..i {
            value -= l[i * f + k] * y[k];
        }
        y[i] = value / l[i * f + i];
    }
    for i in (0..f).rev() {
        let mut value = y[i];
        for k in i + 1..f {
            value -= l[k * f + i] * y[k];
        }
        y[i] = value / l[i * f + i];
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The solve inverts a small positive-definite system.
    #[test]
    fn cholesky_solves() {
        let a = vec![4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let l = cholesky(a.clone(), 3).unwrap();
        let x = solve(&l, 3, &[1.0, 2.0, 3.0]);
        for r in 0..3 {
            let product: f64 = (0..3).map(|c| a[r * 3 + c] * x[c]).sum();
            assert!((product - [1.0, 2.0, 3.0][r]).abs() < 1e-9, "{product}");
        }
        assert!(cholesky(vec![1.0, 2.0, 2.0, 1.0], 2).is_none());
    }
}
