//! `train_item2vec(interactions, model => …, dim => …, …)`: trains item2vec
//! ([`super::item2vec`]) on each user's items ordered by the third column and saves it as the
//! named model (or at a path); returns a report row.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::file::ModelFile;
use super::item2vec::{self, Item2VecConfig};
use super::progress::Progress;
use super::training::{Target, finish, interactions_and_model, progress_mode, report, report_schema};
use crate::table_function::interactions::IdIndex;
use crate::table_function::{Arguments, Planned, Run, TableFunction};

const NAME: &str = "train_item2vec";

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Trains item2vec (skip-gram with negative sampling, one thread so a seed fixes the model) on each user's items ordered by the third column (e.g. a timestamp; input order without one) and saves it as a named model. Returns one report row; model_vectors(model, 'items') reads the item vectors back.",
    syntax_example = "train_item2vec(interactions [, model => 'item2vec'] [, dim => 64] [, epochs => 5] [, window => 5] [, negatives => 5] [, seed => 42] [, user => 'column', item => 'column', order => 'column'])",
    sql_example = r#"```sql
> SELECT * FROM train_item2vec('events', model => 'i2v', dim => 64,
                               user => 'user_id', item => 'item_id', order => 'ts');
```"#,
    argument(
        name = "interactions",
        description = "A table or view of (user, item[, order]) rows."
    ),
    argument(
        name = "model",
        description = "A model name, kept in the models directory (default 'item2vec'), or a path to a .safetensors file: where the model is saved."
    ),
    argument(name = "dim", description = "Dimensions of the item vectors (default 64)."),
    argument(name = "epochs", description = "Passes over the sequences (default 5)."),
    argument(
        name = "window",
        description = "Items on each side that count as context (default 5)."
    ),
    argument(name = "negatives", description = "Negative samples per positive (default 5)."),
    argument(
        name = "seed",
        description = "A non-negative integer that fixes the model (default 42)."
    ),
    argument(
        name = "user",
        description = "The column of interactions that holds the user id (default: the first)."
    ),
    argument(
        name = "item",
        description = "The column that holds the item id (default: the second)."
    ),
    argument(
        name = "order",
        description = "The column that orders each user's items, e.g. a timestamp (default: the third, if any; input order when absent)."
    )
)]
#[derive(Debug, Default)]
pub struct TrainItem2Vec;

/// Options of one call.
#[derive(Debug, Serialize, Deserialize)]
struct Options {
    #[serde(flatten)]
    target: Target,
    #[serde(flatten)]
    config: Item2VecConfig,
}

impl TableFunction for TrainItem2Vec {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(1..=7)?;
        let (input, target) = interactions_and_model(args, "user, item[, order]", "item2vec")?;
        let config = Item2VecConfig {
            dim: args.positive_integer(2, "dim", Some(64))?,
            epochs: args.positive_integer(3, "epochs", Some(5))?,
            window: args.positive_integer(4, "window", Some(5))?,
            negatives: args.positive_integer(5, "negatives", Some(5))?,
            learning_rate: 0.025,
            seed: args.seed(6)?,
        };
        Planned::new(vec![input], &Options { target, config }, report_schema())
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { target, config } = run.call.options()?;
        let path = Path::new(&target.path);
        let (item_ids, items, sequences) = sequences(&inputs[0])?;
        if sequences.iter().all(|s| s.len() < 2) {
            return exec_err!("{NAME}: no user has two items in sequence, so there is nothing to learn from");
        }
        let started = Instant::now();
        let mut progress = Progress::new(NAME, progress_mode(run), config.epochs);
        let model = item2vec::train(&sequences, items, &config, |done, loss| {
            progress.update(done, Some(loss));
            loss.is_finite() && !run.interrupt.cancelled()
        });
        let seconds = started.elapsed().as_secs_f64();
        let file = ModelFile {
            kind: "item2vec".to_string(),
            config: json!({
                "dim": config.dim, "epochs": config.epochs, "window": config.window,
                "negatives": config.negatives, "seed": config.seed, "loss": model.loss,
            }),
            matrices: HashMap::from([("items".to_string(), (model.vectors, items, config.dim))]),
            tensors: HashMap::new(),
            ids: HashMap::from([("items".to_string(), item_ids)]),
        };
        let summary = format!(
            "{} users, {items} items, dim {}, {} epochs, loss {:.4}, {seconds:.2} s",
            sequences.len(),
            config.dim,
            config.epochs,
            model.loss,
        );
        finish(
            &progress,
            run,
            model.loss,
            "lower dim or epochs",
            &file,
            path,
            inputs[0].num_rows(),
            &summary,
        )?;
        report(
            &target.model,
            sequences.len(),
            items,
            config.dim,
            config.epochs,
            model.loss,
            seconds,
        )
    }
}

/// Each user's items in the order of the third column (then item), as index sequences.
fn sequences(batch: &RecordBatch) -> Result<(ArrayRef, usize, Vec<Vec<u32>>)> {
    let (_, users, _) = IdIndex::build(batch.column(0))?;
    let (_, items, item_rows) = IdIndex::build(batch.column(1))?;
    let order: Option<ArrayRef> = match batch.columns().get(2) {
        Some(column) => {
            let as_int = if column.data_type().is_temporal() {
                cast(column, &DataType::Int64)?
            } else {
                Arc::clone(column)
            };
            Some(cast(&as_int, &DataType::Float64)?)
        }
        None => None,
    };
    let mut rows: Vec<(u32, f64, u32)> = (0..batch.num_rows())
        .filter_map(|row| {
            let key = match &order {
                Some(o) if o.is_null(row) => return None,
                Some(o) => o.as_primitive::<datafusion::arrow::datatypes::Float64Type>().value(row),
                None => row as f64,
            };
            Some((users[row]?, key, items[row]?))
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut sequences: Vec<Vec<u32>> = Vec::new();
    let mut current = None;
    for (user, _, item) in rows {
        if current != Some(user) {
            sequences.push(Vec::new());
            current = Some(user);
        }
        sequences.last_mut().expect("a sequence").push(item);
    }
    let item_ids = take(batch.column(1).as_ref(), &UInt32Array::from(item_rows.clone()), None)?;
    Ok((item_ids, item_rows.len(), sequences))
}
