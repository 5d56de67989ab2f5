//! `similar_items(items, k [, metric])`: each item's k nearest items by their vectors, never
//! the item itself — "more like this" lists, through the same blocked top-k kernel as
//! `recommend`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float32Array, RecordBatch, UInt32Array, UInt64Array};
use datafusion::arrow::compute::{sort_to_indices, take, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};

use super::recommend::first_repeated;
use super::selection::{self, ItemMatrix, Metric, Selection};
use crate::table_function::{Arguments, Planned, Run, TableFunction};
use crate::vector::Vectors;

const NAME: &str = "similar_items";

#[user_doc(
    doc_section(label = "Recommendation Functions"),
    description = "The k most similar items of every item by cosine (default), dot or l2 between item vectors, never the item itself. Equal scores are ordered by item id; items with a NULL vector (or a zero vector under cosine) get no rows and are nobody's neighbour. Rows: (item, rank, similar_item, score).",
    syntax_example = "similar_items(items, k [, metric => 'cosine'] [, item => 'column', vector => 'column'])",
    sql_example = r#"```sql
> SELECT * FROM similar_items('item_vectors', 10) WHERE item_id = 42;
```"#,
    argument(name = "items", description = "A table or view of (item id, vector) rows."),
    argument(name = "k", description = "How many similar items per item: a positive integer."),
    argument(
        name = "metric",
        description = "'cosine' (default), 'dot' or 'l2' (score = distance, smaller first)."
    ),
    argument(
        name = "item",
        description = "The column of items that holds the item id (default: the first)."
    ),
    argument(
        name = "vector",
        description = "The column of items that holds the vector (default: the second)."
    )
)]
#[derive(Debug, Default)]
pub struct SimilarItems;

/// Options of one call.
#[derive(Debug, Serialize, Deserialize)]
struct Options {
    k: usize,
    metric: Metric,
}

impl TableFunction for SimilarItems {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(2..=3)?;
        let input = args.required_input(0, "items", Some("item, vector"))?;
        let k = args.positive_integer(1, "k", None)?;
        let metric = match args.text(2, "metric")? {
            None => Metric::Cosine,
            Some(name) => Metric::parse(&name)
                .ok_or_else(|| args.invalid(2, "metric", "'cosine', 'dot' or 'l2'", format!("'{name}'")))?,
        };
        super::recommend::check_columns(NAME, &input.table, "items", true)?;
        let id = input.table.provider.schema().field(0).clone();
        let schema = Arc::new(Schema::new(vec![
            Field::new(id.name(), id.data_type().clone(), true),
            Field::new("rank", DataType::UInt64, false),
            Field::new(format!("similar_{}", id.name()), id.data_type().clone(), true),
            Field::new("score", DataType::Float32, false),
        ]));
        Planned::new(vec![input], &Options { k, metric }, schema)
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { k, metric } = run.call.options()?;
        // In id order, so that ties (broken by position) are broken by id.
        let order = sort_to_indices(inputs[0].column(0), None, None)?;
        let items = take_record_batch(&inputs[0], &order)?;
        if let Some(id) = first_repeated(items.column(0))? {
            return exec_err!("{NAME}: item {id} appears more than once in the items table; give each item one vector");
        }
        let vectors = Vectors::try_new(NAME, 1, items.column(1))?;
        vectors.expect_finite(NAME, "items", items.column(0))?;
        let (count, dim) = (vectors.len(), vectors.dim().unwrap_or(0));
        let k = k.min(count.saturating_sub(1));
        run.reserve(
            count * (dim + 2) * size_of::<f32>()
                + selection::working_bytes(count, count)
                + count * k * (2 * size_of::<u32>() + size_of::<u64>() + size_of::<f32>()),
        )?;
        let rows: Vec<Option<&[f32]>> = (0..count).map(|row| vectors.row(row)).collect();
        let matrix = ItemMatrix::new(rows.iter().copied(), dim, metric);
        let itself: Vec<u32> = (0..count as u32).collect();
        let selection = Selection { k, threshold: None };
        let best = selection::top_k(&rows, &matrix, selection, |item| &itself[item..item + 1]);
        run.cancelled()?;
        let total: usize = best.iter().map(Vec::len).sum();
        let (mut item_rows, mut ranks, mut similar_rows, mut scores) = (
            Vec::with_capacity(total),
            Vec::with_capacity(total),
            Vec::with_capacity(total),
            Vec::with_capacity(total),
        );
        for (item, list) in best.iter().enumerate() {
            for (rank, &(similar, score)) in list.iter().enumerate() {
                item_rows.push(item as u32);
                ranks.push(rank as u64 + 1);
                similar_rows.push(similar);
                scores.push(score);
            }
        }
        let ids = items.column(0);
        let columns: Vec<ArrayRef> = vec![
            take(ids.as_ref(), &UInt32Array::from(item_rows), None)?,
            Arc::new(UInt64Array::from(ranks)),
            take(ids.as_ref(), &UInt32Array::from(similar_rows), None)?,
            Arc::new(Float32Array::from(scores)),
        ];
        Ok(RecordBatch::try_new(Arc::clone(run.schema), columns)?)
    }
}
