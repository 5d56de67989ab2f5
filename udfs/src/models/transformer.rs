//! The transformer sequence encoder from SQL:
//!
//! - `train_sasrec(interactions, path [, dim [, epochs [, max_len [, layers [, heads [, dropout
//!   [, seed]]]]]]])` trains on (user, item, order) rows — each user's items ordered by the third
//!   column — and saves the model at `path`; returns a report row (model, users, items, epochs,
//!   loss, validation_ndcg10, seconds);
//! - `sasrec_profiles(path, interactions)` encodes each user's ordered history into a profile
//!   in the item space, as (user, vector) rows for `recommend()` with `model_vectors(path,
//!   'items')`. Items the model does not know are skipped; users with none known get no row.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    UInt32Array,
};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, Result, exec_datafusion_err, exec_err, plan_err};
use serde_json::json;

use super::file::ModelFile;
use super::progress::{Progress, ProgressMode};
use super::sasrec::{self, SasRecConfig};
use super::{ProfileCall, TrainingCall, count, number};
use crate::compute::{Computation, ComputeTable, Interrupt};
use crate::recommend::interactions::IdIndex;

const TRAIN: &str = "train_sasrec";
const PROFILES: &str = "sasrec_profiles";

/// (name, syntax, description) of the transformer table functions, for `\df`.
pub const DOCS: [(&str, &str, &str); 2] = [
    (
        TRAIN,
        "train_sasrec(interactions, path [, dim [, epochs [, max_len [, layers [, heads [, dropout [, seed]]]]]]])",
        "Trains a SASRec-style transformer on each user's items ordered by the third column (next-item prediction, \
         full softmax, early stopping on validation NDCG@10) and saves it at path. Defaults: dim 64, 200 epochs, \
         max_len 50, 2 layers, 1 head, dropout 0.2, seed 42.",
    ),
    (
        PROFILES,
        "sasrec_profiles(path, interactions)",
        "Each user's ordered history encoded by a saved SASRec model into a profile in the item space: (user, vector).",
    ),
];

/// Each user's rows, ordered by the third column (then item), as row indices.
pub(crate) fn histories(batch: &RecordBatch) -> Result<(ArrayRef, Vec<Vec<usize>>)> {
    if batch.num_columns() < 3 {
        return plan_err!("{TRAIN}: the interactions table needs (user, item, order) columns");
    }
    let (_, users, first_rows) = IdIndex::build(batch.column(0))?;
    let order = batch.column(2);
    let order = if order.data_type().is_temporal() {
        cast(order, &DataType::Int64)?
    } else {
        Arc::clone(order)
    };
    let order = cast(&order, &DataType::Float64)?;
    let order = order.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    // Equal order keys are broken by item id, so histories do not depend on row order.
    let (_, items, _) = IdIndex::build(batch.column(1))?;
    let mut rows: Vec<(u32, f64, u32, usize)> = (0..batch.num_rows())
        .filter(|&row| order.is_valid(row))
        .filter_map(|row| Some((users[row]?, order.value(row), items[row]?, row)))
        .collect();
    rows.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    let mut histories = vec![Vec::new(); first_rows.len()];
    for (user, _, _, row) in rows {
        histories[user as usize].push(row);
    }
    let user_ids = take(batch.column(0).as_ref(), &UInt32Array::from(first_rows), None)?;
    Ok((user_ids, histories))
}

/// The `train_sasrec` table function.
#[derive(Debug, Default)]
pub struct TrainSasRec;

impl TableFunctionImpl for TrainSasRec {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let call = TrainingCall::parse(TRAIN, &args, DOCS[0].1, 2..=9, "user, item, order")?;
        let exprs = args.exprs();
        let config = SasRecConfig {
            items: 0,
            dim: count(TRAIN, exprs, 2, "dim", 64)?,
            epochs: count(TRAIN, exprs, 3, "epochs", 200)?,
            max_len: count(TRAIN, exprs, 4, "max_len", 50)?,
            layers: count(TRAIN, exprs, 5, "layers", 2)?,
            heads: count(TRAIN, exprs, 6, "heads", 1)?,
            dropout: number(TRAIN, exprs, 7, "dropout", 0.2)? as f32,
            learning_rate: 0.001,
            batch: 128,
            seed: number(TRAIN, exprs, 8, "seed", 42.0)? as u64,
        };
        if !config.dim.is_multiple_of(config.heads) {
            return plan_err!(
                "{TRAIN}: dim ({}) must be a multiple of heads ({})",
                config.dim,
                config.heads
            );
        }
        if config.dropout >= 1.0 {
            return plan_err!("{TRAIN}: dropout must be below 1, got {}", config.dropout);
        }
        let detail = format!(
            "SASRec, dim={}, epochs={}, path={}",
            config.dim, config.epochs, call.path
        );
        let (path, mode) = (PathBuf::from(&call.path), call.mode);
        let compute: Computation = Arc::new(move |tables: &[RecordBatch], interrupt: &Interrupt| {
            train(&tables[0], &path, config, mode, interrupt)
        });
        Ok(call.table(detail, report_schema(), compute))
    }
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
    path: &Path,
    mut config: SasRecConfig,
    mode: ProgressMode,
    interrupt: &Interrupt,
) -> Result<RecordBatch> {
    let (_, histories) = histories(batch)?;
    let (_, items, item_rows) = IdIndex::build(batch.column(1))?;
    config.items = item_rows.len();
    let sequences: Vec<Vec<u32>> = histories
        .iter()
        .map(|rows| rows.iter().filter_map(|&row| items[row].map(|i| i + 1)).collect())
        .collect();
    if sequences.iter().all(|s| s.len() < 3) {
        return exec_err!("{TRAIN}: no user has three items in sequence (training needs two, validation one more)");
    }
    let started = Instant::now();
    let mut progress = Progress::new(TRAIN, mode, config.epochs);
    let failed = |e: candle_core::Error| exec_datafusion_err!("{TRAIN}: {e}");
    let (varmap, report) = sasrec::train(&sequences, &config, |done, loss, validation| {
        progress.update_with_validation(done, Some(loss), validation);
        !interrupt.cancelled()
    })
    .map_err(failed)?;
    let seconds = started.elapsed().as_secs_f64();
    if interrupt.cancelled() {
        progress.finish("cancelled; no model written");
        return exec_err!("{TRAIN}: cancelled; no model written");
    }
    if !report.loss.is_finite() {
        progress.finish("the loss became NaN; no model written");
        return exec_err!(
            "{TRAIN}: the loss became {} (NaN or infinite), so training stopped and no model was written; lower the learning rate or dim",
            report.loss
        );
    }
    let model = sasrec::load(
        config,
        varmap
            .data()
            .lock()
            .expect("variables")
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
            .collect(),
    )
    .map_err(failed)?;
    let vectors = model.item_vectors().map_err(failed)?;
    let item_ids = take(batch.column(1).as_ref(), &UInt32Array::from(item_rows), None)?;
    let tensors: HashMap<String, candle_core::Tensor> = varmap
        .data()
        .lock()
        .expect("variables")
        .iter()
        .map(|(name, var)| (format!("network.{name}"), var.as_tensor().clone()))
        .collect();
    let file = ModelFile {
        kind: "sasrec".to_string(),
        config: json!({
            "items": config.items, "dim": config.dim, "layers": config.layers, "heads": config.heads,
            "max_len": config.max_len, "dropout": config.dropout, "epochs": report.epochs,
            "seed": config.seed, "loss": report.loss, "validation_ndcg10": report.validation_ndcg,
        }),
        matrices: HashMap::from([("items".to_string(), (vectors, config.items, config.dim))]),
        tensors,
        ids: HashMap::from([("items".to_string(), item_ids)]),
    };
    file.save(path)?;
    progress.finish(&format!(
        "{} users, {} items, {} epochs, loss {:.4}, validation NDCG@10 {:.4}, {seconds:.1} s → {}",
        sequences.len(),
        config.items,
        report.epochs,
        report.loss,
        report.validation_ndcg,
        path.display()
    ));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![path.display().to_string()])),
        Arc::new(Int64Array::from(vec![sequences.len() as i64])),
        Arc::new(Int64Array::from(vec![config.items as i64])),
        Arc::new(Int64Array::from(vec![report.epochs as i64])),
        Arc::new(Float64Array::from(vec![f64::from(report.loss)])),
        Arc::new(Float64Array::from(vec![report.validation_ndcg])),
        Arc::new(Float64Array::from(vec![seconds])),
    ];
    Ok(RecordBatch::try_new(report_schema(), columns)?)
}

/// The `sasrec_profiles` table function.
#[derive(Debug, Default)]
pub struct SasRecProfiles;

impl TableFunctionImpl for SasRecProfiles {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let ProfileCall {
            path,
            table: interactions,
            file,
        } = ProfileCall::parse(PROFILES, &args, DOCS[1].1, "sasrec", "interactions")?;
        let named = super::planning_error(PROFILES);
        let value = |key: &str| file.setting(key).map_err(&named);
        let config = SasRecConfig {
            items: value("items")?,
            dim: value("dim")?,
            layers: value("layers")?,
            heads: value("heads")?,
            max_len: value("max_len")?,
            dropout: 0.0,
            epochs: 0,
            learning_rate: 0.0,
            batch: 0,
            seed: 0,
        };
        let schema = interactions.schema();
        if schema.fields().len() < 3 {
            return plan_err!("{PROFILES}: the interactions table needs (user, item, order) columns");
        }
        let output = Arc::new(Schema::new(vec![
            Field::new(schema.field(0).name(), schema.field(0).data_type().clone(), true),
            Field::new("vector", crate::vector::vector_type(config.dim), false),
        ]));
        let model = Arc::new(sasrec::load(config, file.network()).map_err(|e| {
            DataFusionError::Plan(format!(
                "{PROFILES}: model '{path}' does not match its configuration: {e}"
            ))
        })?);
        let known = Arc::clone(file.matrix("items", "items").map_err(&named)?.2);
        let schema_out = Arc::clone(&output);
        let compute: Computation = Arc::new(move |tables: &[RecordBatch], _: &Interrupt| {
            let batch = &tables[0];
            let (user_ids, histories) = histories(batch)?;
            let (index, _, _) = IdIndex::build(&known)?;
            let positions = index.lookup(batch.column(1))?;
            let mut users = Vec::new();
            let mut sequences = Vec::new();
            for (user, rows) in histories.iter().enumerate() {
                let sequence: Vec<u32> = rows.iter().filter_map(|&row| positions[row].map(|i| i + 1)).collect();
                if !sequence.is_empty() {
                    users.push(user as u32);
                    sequences.push(sequence);
                }
            }
            let profiles = model
                .profiles(&sequences)
                .map_err(|e| exec_datafusion_err!("{PROFILES}: {e}"))?;
            let vectors = FixedSizeListArray::try_new(
                Arc::new(Field::new_list_field(DataType::Float32, true)),
                config.dim as i32,
                Arc::new(Float32Array::from(profiles)),
                None,
            )?;
            let ids = take(user_ids.as_ref(), &UInt32Array::from(users), None)?;
            Ok(RecordBatch::try_new(
                Arc::clone(&schema_out),
                vec![ids, Arc::new(vectors)],
            )?)
        });
        Ok(Arc::new(ComputeTable {
            name: "SasRecProfilesExec",
            detail: format!("model={path}"),
            inputs: vec![interactions],
            schema: output,
            compute,
        }))
    }
}
