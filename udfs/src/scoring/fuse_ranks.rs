//! `fuse_ranks(lists, weights [, k [, c]])`: weighted reciprocal-rank fusion of several
//! recommenders' lists, `(user, item, method, rank)` rows, into one list per user: an item
//! scores `Σ_m w_m / (c + rank_m)` over the methods m that list it (Cormack et al. 2009, with
//! each method's weight), so the methods' own score scales do not matter. The weights table is
//! `(method, weight[, weighting])`: with a third column, every weighting (a name for one set of
//! weights) gets its own lists in one call, as tuning a blend on validation needs.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch, UInt32Array, UInt64Array};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::common::{HashMap, Result, exec_err, plan_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::table_function::interactions::IdIndex;
use crate::table_function::{Arguments, Planned, Run, TableFunction, expect_same_ids};

const NAME: &str = "fuse_ranks";

#[user_doc(
    doc_section(label = "Recommendation Functions"),
    description = "Weighted reciprocal-rank fusion of several recommenders' lists ((user, item, method, rank) rows) into one list per user: an item scores Σ_m w_m / (c + rank_m) over the methods that list it, w_m from the weights table ((method, weight[, weighting]) rows; methods it does not name are left out). With a weighting column, each weighting gets its own lists (the output's first column), so one call scores a whole grid of blends. Equal scores are ordered by item id. Rows: ([weighting,] user, rank, item, score).",
    syntax_example = "fuse_ranks(lists, weights [, k => n] [, c => 60] [, user => 'column', item => 'column', method => 'column', rank => 'column', weight_method => 'column', weight => 'column', weighting => 'column'])",
    sql_example = r#"```sql
> SELECT * FROM fuse_ranks('candidates', 'blend', k => 10, c => 10);
```"#,
    argument(
        name = "lists",
        description = "A table or view of (user, item, method, rank) rows, rank 1 the best."
    ),
    argument(
        name = "weights",
        description = "A table or view of (method, weight[, weighting]) rows: each method's weight, per weighting."
    ),
    argument(
        name = "k",
        description = "How many items per user (default: every item of the lists)."
    ),
    argument(
        name = "c",
        description = "The constant added to every rank, a number ≥ 0 (default 60, as Cormack et al.): larger flattens the difference between ranks."
    ),
    argument(
        name = "user",
        description = "The column of lists that holds the user id (default: the first)."
    ),
    argument(
        name = "item",
        description = "The column of lists that holds the item id (default: the second)."
    ),
    argument(
        name = "method",
        description = "The column of lists that names the method (default: the third)."
    ),
    argument(
        name = "rank",
        description = "The column of lists that holds the rank (default: the fourth)."
    ),
    argument(
        name = "weight_method",
        description = "The column of weights that names the method (default: the first)."
    ),
    argument(
        name = "weight",
        description = "The column of weights that holds the weight (default: the second)."
    ),
    argument(
        name = "weighting",
        description = "The column of weights that names the weighting (default: the third, if any)."
    )
)]
#[derive(Debug, Default)]
pub struct FuseRanks;

#[derive(Debug, Serialize, Deserialize)]
struct Options {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<usize>,
    c: f64,
}

impl TableFunction for FuseRanks {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(2..=4)?;
        let lists = args.required_input(0, "lists", Some("user, item, method, rank"))?;
        let weights = args.required_input(1, "weights", Some("weight_method, weight[, weighting]"))?;
        let k = args.optional_positive_integer(2, "k")?;
        let c = args.number(3, "c", 0.0..=f64::INFINITY, 60.0)?;
        let (l, w) = (lists.table.provider.schema(), weights.table.provider.schema());
        expect_same_ids(NAME, ("lists", l.field(2)), ("weights", w.field(0)))?;
        if !l.field(3).data_type().is_integer() {
            return plan_err!(
                "{NAME}: the fourth column of the lists table (rank) must be an integer, got {}",
                l.field(3).data_type()
            );
        }
        if !w.field(1).data_type().is_numeric() {
            return plan_err!(
                "{NAME}: the second column of the weights table (weight) must be a number, got {}",
                w.field(1).data_type()
            );
        }
        let mut fields = Vec::new();
        if let Some(weighting) = w.fields().get(2) {
            fields.push(Field::new(weighting.name(), weighting.data_type().clone(), true));
        }
        let item_name = match l.field(1).name() == l.field(0).name() {
            true => format!("item_{}", l.field(1).name()),
            false => l.field(1).name().clone(),
        };
        fields.extend([
            Field::new(l.field(0).name(), l.field(0).data_type().clone(), true),
            Field::new("rank", DataType::UInt64, false),
            Field::new(item_name, l.field(1).data_type().clone(), true),
            Field::new("score", DataType::Float64, false),
        ]);
        Planned::new(vec![lists, weights], &Options { k, c }, Arc::new(Schema::new(fields)))
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let mut parts = Vec::new();
        self.compute_in_parts(inputs, run, &mut |part| {
            parts.push(part);
            Ok(true)
        })?;
        Ok(concat_batches(run.schema, &parts)?)
    }

    /// Users' fused lists a slice of users at a time: with a grid of weightings the output is
    /// weightings × users × items long (15 million rows for 252 weightings of the top 10 on a
    /// MovieLens-1M-sized set), so it is handed on as it is made, never held whole.
    fn compute_in_parts(
        &self,
        inputs: &[RecordBatch],
        run: &Run,
        emit: &mut dyn FnMut(RecordBatch) -> Result<bool>,
    ) -> Result<()> {
        let Options { k, c } = run.call.options()?;
        let (lists, weights) = (&inputs[0], &inputs[1]);
        // Weightings, and each one's weight per method.
        let named = weights.num_columns() == 3;
        let (weighting_of_row, weighting_rows) = match weights.columns().get(2) {
            Some(column) => {
                let (_, of_row, first_rows) = IdIndex::build(column)?;
                (of_row, first_rows)
            }
            None => (vec![Some(0); weights.num_rows()], vec![0]),
        };
        let (method_index, method_of_row, _) = IdIndex::build(weights.column(0))?;
        let methods = method_of_row
            .iter()
            .flatten()
            .map(|&m| m as usize + 1)
            .max()
            .unwrap_or(0);
        let weightings = weighting_rows.len();
        let weight_values = cast(weights.column(1), &DataType::Float64)?;
        let weight_values = weight_values.as_primitive::<Float64Type>();
        // Each method's (weighting, weight) pairs.
        let mut weight_of: Vec<Vec<(u32, f64)>> = vec![Vec::new(); methods];
        for row in 0..weights.num_rows() {
            let (Some(method), Some(weighting)) = (method_of_row[row], weighting_of_row[row]) else {
                continue;
            };
            if !weight_values.is_valid(row) {
                continue;
            }
            let weight = weight_values.value(row);
            if !weight.is_finite() {
                return exec_err!("{NAME}: the weights table holds the weight {weight}; weights must be finite");
            }
            if weight_of[method as usize].iter().any(|&(w, _)| w == weighting) {
                return exec_err!("{NAME}: the weights table gives one method two weights in the same weighting");
            }
            weight_of[method as usize].push((weighting, weight));
        }
        // The lists' rows by user.
        let (_, user_of_row, user_rows) = IdIndex::build(lists.column(0))?;
        let (_, item_of_row, item_rows) = IdIndex::build(lists.column(1))?;
        let method_of_list_row = method_index.lookup(lists.column(2))?;
        let ranks = cast(lists.column(3), &DataType::Int64)?;
        let ranks = ranks.as_primitive::<Int64Type>();
        run.reserve(lists.num_rows() * 32 + user_rows.len() * 64)?;
        let mut by_user: Vec<Vec<u32>> = vec![Vec::new(); user_rows.len()];
        for row in 0..lists.num_rows() {
            if let (Some(user), Some(_), Some(_)) = (user_of_row[row], item_of_row[row], method_of_list_row[row])
                && ranks.is_valid(row)
            {
                if ranks.value(row) < 1 {
                    return exec_err!("{NAME}: ranks start at 1, got {}", ranks.value(row));
                }
                by_user[user as usize].push(row as u32);
            }
        }
        let fusion = Fusion {
            weightings,
            weight_of: &weight_of,
            item_of_row: &item_of_row,
            method_of_list_row: &method_of_list_row,
            ranks,
            c,
            k,
        };
        let mut accounted = 0;
        for (part, users) in by_user.chunks(USERS_PER_PART).enumerate() {
            run.cancelled()?;
            let first_user = part * USERS_PER_PART;
            // For each user: every weighting's fused list, (weighting, item, score) best first.
            let fused: Vec<Vec<(u32, u32, f64)>> = users.par_iter().map(|rows| fusion.fuse(rows)).collect();
            let total: usize = fused.iter().map(Vec::len).sum();
            let (mut weighting_col, mut user_col, mut rank_col, mut item_col, mut score_col) = (
                Vec::with_capacity(total),
                Vec::with_capacity(total),
                Vec::with_capacity(total),
                Vec::with_capacity(total),
                Vec::with_capacity(total),
            );
            for (user, list) in fused.iter().enumerate() {
                let mut rank = 0u64;
                let mut previous = None;
                for &(weighting, item, score) in list {
                    if previous != Some(weighting) {
                        rank = 0;
                        previous = Some(weighting);
                    }
                    rank += 1;
                    weighting_col.push(weighting_rows[weighting as usize]);
                    user_col.push(user_rows[first_user + user]);
                    rank_col.push(rank);
                    item_col.push(item_rows[item as usize]);
                    score_col.push(score);
                }
            }
            let mut columns = Vec::new();
            if named {
                columns.push(take(
                    weights.column(2).as_ref(),
                    &UInt32Array::from(weighting_col),
                    None,
                )?);
            }
            columns.push(take(lists.column(0).as_ref(), &UInt32Array::from(user_col), None)?);
            columns.push(Arc::new(UInt64Array::from(rank_col)) as _);
            columns.push(take(lists.column(1).as_ref(), &UInt32Array::from(item_col), None)?);
            columns.push(Arc::new(Float64Array::from(score_col)) as _);
            let batch = RecordBatch::try_new(Arc::clone(run.schema), columns)?;
            // The largest part is accounted: the parts before it have been handed on.
            let bytes = batch.get_array_memory_size();
            if bytes > accounted {
                run.reserve(bytes - accounted)?;
                accounted = bytes;
            }
            if !emit(batch)? {
                break;
            }
        }
        Ok(())
    }
}

/// Users whose fused lists make one part of the output.
const USERS_PER_PART: usize = 256;

/// What fusing one user's rows reads: each method's (weighting, weight) pairs and the lists'
/// rows as item and method indices with their ranks.
struct Fusion<'a> {
    weightings: usize,
    weight_of: &'a [Vec<(u32, f64)>],
    item_of_row: &'a [Option<u32>],
    method_of_list_row: &'a [Option<u32>],
    ranks: &'a Int64Array,
    c: f64,
    k: Option<usize>,
}

impl Fusion<'_> {
    /// One user's fused list for every weighting, `(weighting, item, score)` best first within
    /// each weighting, at most `k` per weighting.
    fn fuse(&self, rows: &[u32]) -> Vec<(u32, u32, f64)> {
        let weightings = self.weightings;
        let mut local: HashMap<u32, usize> = HashMap::new();
        let mut items: Vec<u32> = Vec::new();
        for &row in rows {
            let item = self.item_of_row[row as usize].expect("kept rows have an item");
            local.entry(item).or_insert_with(|| {
                items.push(item);
                items.len() - 1
            });
        }
        let mut scores = vec![0.0f64; items.len() * weightings];
        let mut listed = vec![false; items.len() * weightings];
        for &row in rows {
            let row = row as usize;
            let at = local[&self.item_of_row[row].expect("kept rows have an item")];
            let method = self.method_of_list_row[row].expect("kept rows have a method") as usize;
            let rank = self.ranks.value(row) as f64;
            for &(weighting, weight) in &self.weight_of[method] {
                scores[at * weightings + weighting as usize] += weight / (self.c + rank);
                listed[at * weightings + weighting as usize] = true;
            }
        }
        let mut out = Vec::new();
        for weighting in 0..weightings {
            let mut list: Vec<(u32, f64)> = (0..items.len())
                .filter(|&at| listed[at * weightings + weighting])
                .map(|at| (items[at], scores[at * weightings + weighting]))
                .collect();
            list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            list.truncate(self.k.unwrap_or(usize::MAX));
            out.extend(list.into_iter().map(|(item, score)| (weighting as u32, item, score)));
        }
        out
    }
}
