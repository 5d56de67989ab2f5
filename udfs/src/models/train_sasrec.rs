//! `train_sasrec(interactions, model => …, dim => …, …)`: trains the SASRec transformer
//! ([`super::sasrec`]) on (user, item, order) rows — each user's items ordered by the third
//! column — and saves it as the named model (or at a path), optionally with an item-feature
//! table whose frozen vectors (e.g. text embeddings) the model projects into its item space;
//! returns a report row (model, users, items, epochs, loss, validation_ndcg10, seconds).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::compute::{cast, concat, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Result, exec_datafusion_err, exec_err, plan_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::file::ModelFile;
use super::progress::Progress;
use super::sasrec::{self, SasRecConfig, default_patience};
use super::training::{
    Target, check_finished, finish, histories, interactions_and_model, network_tensors, progress_mode,
};
use crate::table_function::arguments::expect_same_ids;
use crate::table_function::interactions::IdIndex;
use crate::table_function::{Arguments, Planned, Run, TableFunction};
use crate::vector::Vectors;

const NAME: &str = "train_sasrec";

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Trains a SASRec-style transformer on each user's items ordered by the third column: item and position embeddings, causal multi-head self-attention blocks, next-item prediction with a full softmax, early stopping on validation NDCG@10 (each user's last training item held out of training; the best epoch's weights are kept, and training ends after patience epochs without improvement). With item_features (an (item, vector) table, e.g. embed_texts of the items' titles) an item is its id embedding plus a learned projection of its frozen vector, and items that have a vector but no interactions get one from the vector alone: model_vectors(model, 'items') returns them too, so new items can be recommended. Saves it as a named model and returns one report row (model, users, items, epochs, loss, validation_ndcg10, seconds).",
    syntax_example = "train_sasrec(interactions [, model => 'sasrec'] [, dim => 64] [, max_epochs => 200] [, max_len => 50] [, layers => 2] [, heads => 1] [, dropout => 0.2] [, seed => 42] [, learning_rate => 0.001] [, patience => 15] [, item_features => 'table'] [, id_dropout => 0.0] [, refit => false] [, user => 'column', item => 'column', order => 'column'])",
    sql_example = r#"```sql
> SELECT * FROM train_sasrec('events', model => 'sasrec_v1', epochs => 60, max_len => 50,
                             user => 'user_id', item => 'item_id', order => 'ts');
```"#,
    argument(name = "interactions", description = "A table or view of (user, item, order) rows."),
    argument(
        name = "model",
        description = "A model name, kept in the models directory (default 'sasrec'), or a path to a .safetensors file: where the model is saved."
    ),
    argument(
        name = "dim",
        description = "Embedding dimensions, a multiple of heads (default 64)."
    ),
    argument(
        name = "epochs | max_epochs",
        description = "Most passes over the data (default 200; early stopping ends sooner)."
    ),
    argument(
        name = "max_len",
        description = "The latest items of a history that are read (default 50)."
    ),
    argument(name = "layers", description = "Self-attention blocks (default 2)."),
    argument(name = "heads", description = "Attention heads (default 1)."),
    argument(name = "dropout", description = "Dropout rate, from 0 to below 1 (default 0.2)."),
    argument(
        name = "seed",
        description = "A non-negative integer that fixes the model (default 42)."
    ),
    argument(
        name = "learning_rate",
        description = "The Adam step size, above 0 and at most 1 (default 0.001)."
    ),
    argument(
        name = "patience",
        description = "Epochs without a better validation NDCG@10 after which training stops (default 15; checked every 5 epochs, or every patience epochs when fewer)."
    ),
    argument(
        name = "item_features",
        description = "A table or view of (item, vector) rows — the first column the item id, the second a fixed-size vector, one row per item — whose vectors the model projects and adds to its item embeddings (default: none, ids alone)."
    ),
    argument(
        name = "id_dropout",
        description = "With item_features: the share of items, from 0 to below 1, whose id embedding each training step drops, so that the model learns to rank items by their vectors alone, as it ranks new items (default 0)."
    ),
    argument(
        name = "refit",
        description = "After early stopping has chosen the epoch count, train again from the same start for that many epochs on every item, the held-out last ones included (default false): the model then learns from each user's latest item too, and training takes up to twice as long."
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
        description = "The column that orders each user's items, e.g. a timestamp (default: the third)."
    )
)]
#[derive(Debug, Default)]
pub struct TrainSasRec;

/// Options of one call.
#[derive(Debug, Serialize, Deserialize)]
struct Options {
    #[serde(flatten)]
    target: Target,
    #[serde(flatten)]
    config: SasRecConfig,
}

impl TableFunction for TrainSasRec {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(1..=14)?;
        let (input, target) = interactions_and_model(args, "user, item, order", "sasrec")?;
        let features = args.input(11, "item_features", None)?;
        let feature_dim = match &features {
            None => 0,
            Some(features) => feature_dim(&input, features)?,
        };
        let config = SasRecConfig {
            items: 0,
            cold_items: 0,
            feature_dim,
            id_dropout: args.number(12, "id_dropout", 0.0..=0.99, 0.0)? as f32,
            dim: args.positive_integer(2, "dim", Some(64))?,
            epochs: args.positive_integer(3, "epochs", Some(200))?,
            max_len: args.positive_integer(4, "max_len", Some(50))?,
            layers: args.positive_integer(5, "layers", Some(2))?,
            heads: args.positive_integer(6, "heads", Some(1))?,
            dropout: args.number(7, "dropout", 0.0..=0.99, 0.2)? as f32,
            learning_rate: args.number(9, "learning_rate", 1e-9..=1.0, 0.001)?,
            patience: args.positive_integer(10, "patience", Some(default_patience()))?,
            refit: args.boolean(13, "refit", false)?,
            batch: 128,
            seed: args.seed(8)?,
        };
        if config.id_dropout > 0.0 && features.is_none() {
            return plan_err!(
                "{NAME}: id_dropout drops id embeddings so that items are ranked by their features alone; give item_features => 'table' with it"
            );
        }
        if !config.dim.is_multiple_of(config.heads) {
            return plan_err!(
                "{NAME}: dim ({}) must be a multiple of heads ({})",
                config.dim,
                config.heads
            );
        }
        let inputs = std::iter::once(input).chain(features).collect();
        Planned::new(inputs, &Options { target, config }, report_schema())
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { target, config } = run.call.options()?;
        train(&inputs[0], inputs.get(1), &target, config, run)
    }
}

/// The dimensions of the item_features table's vectors, once its columns are checked against
/// the interactions'.
fn feature_dim(interactions: &crate::table_function::Input, features: &crate::table_function::Input) -> Result<usize> {
    let schema = features.table.provider.schema();
    let (Some(item), Some(vector)) = (schema.fields().first(), schema.fields().get(1)) else {
        return plan_err!("{NAME}: the item_features table needs (item, vector) columns");
    };
    let interactions_schema = interactions.table.provider.schema();
    expect_same_ids(
        NAME,
        ("interactions", interactions_schema.field(1)),
        ("item_features", item),
    )?;
    match vector.data_type() {
        DataType::FixedSizeList(_, dim) if *dim > 0 => Ok(*dim as usize),
        other => plan_err!(
            "{NAME}: column '{}' of the item_features table must hold fixed-size vectors, got {other}",
            vector.name()
        ),
    }
}

/// An item_features table read for train_sasrec or sasrec_profiles: its ids, cast to the
/// interactions' id type, and the row holding each item's vector — one row per item, every value
/// finite, `dim` of them. Rows without an id or a vector are left out.
pub(super) struct ItemFeatureRows {
    pub ids: ArrayRef,
    vectors: Vectors,
    /// The row of each item that has a vector, in the order of the ids' first appearance.
    pub rows: Vec<u32>,
}

impl ItemFeatureRows {
    /// Reads `features` for `function`, where it is argument `position` (1-based).
    pub fn read(
        function: &str,
        position: usize,
        features: &RecordBatch,
        id_type: &DataType,
        dim: usize,
    ) -> Result<Self> {
        let ids = cast(features.column(0), id_type)?;
        let vectors = Vectors::try_new(function, position, features.column(1))?;
        let (_, distinct, first_rows) = IdIndex::build(&ids)?;
        let mut row_of = vec![None; first_rows.len()];
        for (row, item) in distinct.iter().enumerate() {
            let (Some(item), Some(vector)) = (item, vectors.row(row)) else {
                continue;
            };
            if row_of[*item as usize].replace(row as u32).is_some() {
                return exec_err!(
                    "{function}: the item_features table has more than one vector for an item; give one row per item"
                );
            }
            if vector.len() != dim {
                return exec_err!(
                    "{function}: the item_features table holds vectors of {} dimensions, the model reads {dim}",
                    vector.len()
                );
            }
            if vector.iter().any(|v| !v.is_finite()) {
                return exec_err!("{function}: the item_features table holds a vector with NaN or infinite values");
            }
        }
        let mut rows: Vec<u32> = row_of.into_iter().flatten().collect();
        rows.sort_unstable();
        Ok(Self { ids, vectors, rows })
    }

    /// The vector on `row`, one of [`Self::rows`].
    pub fn vector(&self, row: u32) -> &[f32] {
        self.vectors.row(row as usize).unwrap_or_default()
    }
}

/// The frozen feature matrix `(1 + items + cold, feature_dim)` in the model's item order —
/// row 0 padding, then the trained items (`trained_ids`, zeros for those without a vector),
/// then the items that have a vector but no interactions — and the ids of those cold items.
fn item_features(
    features: &RecordBatch,
    trained_ids: &ArrayRef,
    config: &mut SasRecConfig,
) -> Result<(candle_core::Tensor, ArrayRef)> {
    let dim = config.feature_dim;
    let table = ItemFeatureRows::read(NAME, 12, features, trained_ids.data_type(), dim)?;
    let trained = IdIndex::by_row(trained_ids)?.lookup(&table.ids)?;
    let mut matrix = vec![0f32; (1 + config.items) * dim];
    let mut cold_rows = Vec::new();
    for &row in &table.rows {
        let vector = table.vector(row);
        match trained[row as usize] {
            Some(i) => matrix[(i as usize + 1) * dim..(i as usize + 2) * dim].copy_from_slice(vector),
            None => {
                matrix.extend_from_slice(vector);
                cold_rows.push(row);
            }
        }
    }
    config.cold_items = cold_rows.len();
    let rows = 1 + config.items + config.cold_items;
    let cold_ids = take(table.ids.as_ref(), &UInt32Array::from(cold_rows), None)?;
    let tensor = candle_core::Tensor::from_vec(matrix, (rows, dim), &candle_core::Device::Cpu)
        .map_err(|e| exec_datafusion_err!("{NAME}: {e}"))?;
    Ok((tensor, cold_ids))
}

fn report_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("users", DataType::Int64, false),
        Field::new("items", DataType::Int64, false),
        Field::new("epochs", DataType::Int64, false),
        Field::new("loss", DataType::Float64, false),
        Field::new("validation_ndcg10", DataType::Float64, false),
        Field::new("seconds", DataType::Float64, false),
    ]))
}

fn train(
    batch: &RecordBatch,
    features: Option<&RecordBatch>,
    target: &Target,
    mut config: SasRecConfig,
    run: &Run,
) -> Result<RecordBatch> {
    let path = Path::new(&target.path);
    let (_, histories) = histories(batch)?;
    let (_, items, item_rows) = IdIndex::build(batch.column(1))?;
    config.items = item_rows.len();
    let mut item_ids = take(batch.column(1).as_ref(), &UInt32Array::from(item_rows), None)?;
    let features = match features {
        Some(features) => {
            let (matrix, cold_ids) = item_features(features, &item_ids, &mut config)?;
            item_ids = concat(&[item_ids.as_ref(), cold_ids.as_ref()])?;
            Some(matrix)
        }
        None => None,
    };
    let sequences: Vec<Vec<u32>> = histories
        .iter()
        .map(|rows| rows.iter().filter_map(|&row| items[row].map(|i| i + 1)).collect())
        .collect();
    if sequences.iter().all(|s| s.len() < 3) {
        return exec_err!("{NAME}: no user has three items in sequence (training needs two, validation one more)");
    }
    // Positions past the longest history would never be read, and a max_len of 10^12 would
    // size the position table by the argument alone.
    let longest = sequences.iter().map(Vec::len).max().unwrap_or(1);
    config.max_len = config.max_len.min(longest);
    let started = Instant::now();
    let most_epochs = config.epochs * (1 + usize::from(config.refit));
    let mut progress = Progress::new(NAME, progress_mode(run), most_epochs);
    let failed = |e: candle_core::Error| exec_datafusion_err!("{NAME}: {e}");
    let (varmap, report) = sasrec::train(&sequences, features.as_ref(), &config, |done, loss, validation| {
        progress.update_with_validation(done, Some(loss), validation);
        !run.interrupt.cancelled()
    })
    .map_err(failed)?;
    let seconds = started.elapsed().as_secs_f64();
    let advice = "lower the learning rate or dim";
    check_finished(&progress, run, report.loss, advice)?;
    let mut tensors: HashMap<String, candle_core::Tensor> = varmap
        .data()
        .lock()
        .expect("variables")
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect();
    if let Some(features) = &features {
        tensors.insert("features".to_string(), features.clone());
    }
    let model = sasrec::load(config, tensors).map_err(failed)?;
    let vectors = model.item_vectors().map_err(failed)?;
    let mut tensors = network_tensors(&varmap);
    let mut settings = json!({
        "items": config.items, "dim": config.dim, "layers": config.layers, "heads": config.heads,
        "max_len": config.max_len, "dropout": config.dropout, "epochs": report.epochs,
        "seed": config.seed, "loss": report.loss, "validation_ndcg10": report.validation_ndcg,
    });
    if let Some(features) = features {
        tensors.insert("network.features".to_string(), features);
        settings["feature_dim"] = json!(config.feature_dim);
        settings["cold_items"] = json!(config.cold_items);
        if config.id_dropout > 0.0 {
            settings["id_dropout"] = json!(config.id_dropout);
        }
    }
    if config.refit {
        settings["refit"] = json!(true);
    }
    let all_items = config.items + config.cold_items;
    let file = ModelFile {
        kind: "sasrec".to_string(),
        config: settings,
        matrices: HashMap::from([("items".to_string(), (vectors, all_items, config.dim))]),
        tensors,
        ids: HashMap::from([("items".to_string(), item_ids)]),
    };
    let cold = match config.cold_items {
        0 => String::new(),
        n => format!(" (and {n} known only by their features)"),
    };
    let summary = format!(
        "{} users, {} items{cold}, {} epochs, loss {:.4}, validation NDCG@10 {:.4}, {seconds:.1} s",
        sequences.len(),
        config.items,
        report.epochs,
        report.loss,
        report.validation_ndcg,
    );
    finish(
        &progress,
        run,
        report.loss,
        advice,
        &file,
        path,
        batch.num_rows(),
        &summary,
    )?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![target.model.clone()])),
        Arc::new(Int64Array::from(vec![sequences.len() as i64])),
        Arc::new(Int64Array::from(vec![config.items as i64])),
        Arc::new(Int64Array::from(vec![report.epochs as i64])),
        Arc::new(Float64Array::from(vec![f64::from(report.loss)])),
        Arc::new(Float64Array::from(vec![report.validation_ndcg])),
        Arc::new(Float64Array::from(vec![seconds])),
    ];
    Ok(RecordBatch::try_new(report_schema(), columns)?)
}
