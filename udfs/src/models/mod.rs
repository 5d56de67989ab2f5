//! Models trained in-process from SQL, saved to files and used again by path:
//!
//! - `train_als(interactions, path, factors [, iterations [, regularization [, alpha [, seed]]]])`
//!   trains iALS on (user, item[, weight]) rows, saves it at `path`, and returns a report row
//!   (model, users, items, factors, iterations, loss, seconds);
//! - `train_item2vec(interactions, path, dim [, epochs [, window [, negatives [, seed]]]])`
//!   trains item2vec on each user's time-ordered items and saves it the same way;
//! - `model_vectors(path, 'users' | 'items')` reads a saved model's vectors as (id, vector)
//!   rows, ready for `recommend()`.
//!
//! Model files live in [`file`]; training algorithms in one file each.

pub mod als;
pub mod attention_query;
pub mod features;
pub mod file;
pub mod item2vec;
pub mod progress;
pub mod sasrec;
pub(crate) mod training;
pub mod transformer;
pub mod two_tower;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::array::{AsArray, UInt32Array};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::Expr;
use serde_json::json;

use crate::compute::{Computation, ComputeTable, Interrupt};
use crate::recommend::interactions::{IdIndex, Interactions};
use crate::recommend::{literal, resolve, text_argument};
use als::AlsConfig;
use file::ModelFile;
use item2vec::Item2VecConfig;
use progress::{Progress, ProgressMode, TrainingProgress};

const TRAIN_ALS: &str = "train_als";
const MODEL_VECTORS: &str = "model_vectors";
const TRAIN_ITEM2VEC: &str = "train_item2vec";

/// (name, syntax, description) of the model table functions, for `\df`.
pub const DOCS: [(&str, &str, &str); 3] = [
    (
        TRAIN_ALS,
        "train_als(interactions, path, factors [, iterations [, regularization [, alpha [, seed]]]])",
        "Trains implicit-feedback matrix factorisation (iALS) on (user, item[, weight]) rows and saves it at path. \
         Defaults: 15 iterations, regularization 0.01, alpha 1, seed 42. Returns one report row.",
    ),
    (
        TRAIN_ITEM2VEC,
        "train_item2vec(interactions, path, dim [, epochs [, window [, negatives [, seed]]]])",
        "Trains item2vec (skip-gram with negative sampling) on each user's items ordered by the third column \
         (e.g. a timestamp; input order without one) and saves it at path. Defaults: 5 epochs, window 5, \
         5 negatives, seed 42. Returns one report row.",
    ),
    (
        MODEL_VECTORS,
        "model_vectors(path, 'users' | 'items')",
        "The user or item vectors of a saved model as (id, vector) rows.",
    ),
];

pub(crate) fn number(function: &str, exprs: &[Expr], index: usize, role: &str, default: f64) -> Result<f64> {
    match literal(exprs, index) {
        None | Some(ScalarValue::Null) => Ok(default),
        Some(value) => match value.cast_to(&DataType::Float64) {
            Ok(ScalarValue::Float64(Some(v))) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => plan_err!(
                "{function}: argument {} ({role}) must be a number ≥ 0, got {value}",
                index + 1
            ),
        },
    }
}

pub(crate) fn count(function: &str, exprs: &[Expr], index: usize, role: &str, default: usize) -> Result<usize> {
    match literal(exprs, index) {
        None | Some(ScalarValue::Null) => Ok(default),
        Some(ScalarValue::Int64(Some(n))) if n > 0 => Ok(n as usize),
        Some(other) => plan_err!(
            "{function}: argument {} ({role}) must be a positive integer, got {other}",
            index + 1
        ),
    }
}

/// What every training function starts from: the interactions table (argument 1, with at
/// least `columns` columns) and the model path (argument 2).
pub(crate) struct TrainingCall {
    pub interactions: Arc<dyn TableProvider>,
    pub path: String,
    pub mode: ProgressMode,
}

impl TrainingCall {
    pub(crate) fn parse(
        function: &str,
        args: &TableFunctionArgs,
        syntax: &str,
        arity: std::ops::RangeInclusive<usize>,
        columns: &str,
    ) -> Result<Self> {
        let exprs = args.exprs();
        if !arity.contains(&exprs.len()) {
            return plan_err!("{function}: expected {syntax}, got {} arguments", exprs.len());
        }
        let table_name = text_argument(function, exprs, 0, "interactions")?.unwrap_or_default();
        let interactions = resolve(function, args.session(), &table_name, "interactions")?;
        let path = text_argument(function, exprs, 1, "path")?
            .filter(|p| !p.is_empty())
            .ok_or_else(|| DataFusionError::Plan(format!("{function}: argument 2 (path) must name the model file")))?;
        // The columns before the optional part, e.g. 2 for "user, item[, weight]".
        let required = columns.split('[').next().unwrap_or_default();
        let needed = required.split(',').filter(|c| !c.trim().is_empty()).count();
        if interactions.schema().fields().len() < needed {
            return plan_err!("{function}: the interactions table needs ({columns}) columns");
        }
        Ok(Self {
            interactions,
            path,
            mode: progress_mode(args.session()),
        })
    }

    /// The training run as a table: computed from the interactions when scanned.
    pub(crate) fn table(self, detail: String, schema: SchemaRef, compute: Computation) -> Arc<dyn TableProvider> {
        Arc::new(ComputeTable {
            name: "TrainExec",
            detail,
            inputs: vec![self.interactions],
            schema,
            compute,
        })
    }
}

/// The `train_als` table function.
#[derive(Debug, Default)]
pub struct TrainAls;

impl TableFunctionImpl for TrainAls {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let call = TrainingCall::parse(TRAIN_ALS, &args, DOCS[0].1, 3..=7, "user, item[, weight]")?;
        let exprs = args.exprs();
        let config = AlsConfig {
            factors: count(TRAIN_ALS, exprs, 2, "factors", 64)?,
            iterations: count(TRAIN_ALS, exprs, 3, "iterations", 15)?,
            regularization: number(TRAIN_ALS, exprs, 4, "regularization", 0.01)? as f32,
            alpha: number(TRAIN_ALS, exprs, 5, "alpha", 1.0)? as f32,
            seed: number(TRAIN_ALS, exprs, 6, "seed", 42.0)? as u64,
        };
        let detail = format!(
            "iALS, factors={}, iterations={}, path={}",
            config.factors, config.iterations, call.path
        );
        let (path, mode) = (PathBuf::from(&call.path), call.mode);
        let compute: Computation = Arc::new(move |tables: &[RecordBatch], interrupt: &Interrupt| {
            train_als(&tables[0], &path, &config, mode, interrupt)
        });
        Ok(call.table(detail, report_schema(), compute))
    }
}

pub(crate) fn report_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("users", DataType::Int64, false),
        Field::new("items", DataType::Int64, false),
        Field::new("factors", DataType::Int64, false),
        Field::new("iterations", DataType::Int64, false),
        Field::new("loss", DataType::Float64, false),
        Field::new("seconds", DataType::Float64, false),
    ]))
}

/// What every profile function starts from: a saved model of `kind` (argument 1) and the table
/// it encodes (argument 2, in the `role` named in errors).
pub(crate) struct ProfileCall {
    pub path: String,
    pub table: Arc<dyn TableProvider>,
    pub file: ModelFile,
}

impl ProfileCall {
    pub(crate) fn parse(
        function: &str,
        args: &TableFunctionArgs,
        syntax: &str,
        kind: &str,
        role: &str,
    ) -> Result<Self> {
        let exprs = args.exprs();
        if exprs.len() != 2 {
            return plan_err!("{function}: expected {syntax}");
        }
        let path = text_argument(function, exprs, 0, "path")?.unwrap_or_default();
        let table_name = text_argument(function, exprs, 1, role)?.unwrap_or_default();
        let table = resolve(function, args.session(), &table_name, role)?;
        let file = ModelFile::load(std::path::Path::new(&path), Some(kind)).map_err(planning_error(function))?;
        Ok(Self { path, table, file })
    }
}

/// An error found while planning a call of `function`, as a planning error that names it.
pub(crate) fn planning_error(function: &str) -> impl Fn(DataFusionError) -> DataFusionError + '_ {
    move |e| match e {
        DataFusionError::Execution(message) => DataFusionError::Plan(format!("{function}: {message}")),
        other => other,
    }
}

/// The progress mode the session asks for (silent when it says nothing).
pub(crate) fn progress_mode(session: &dyn datafusion::catalog::Session) -> ProgressMode {
    session
        .config()
        .get_extension::<TrainingProgress>()
        .map(|p| p.0)
        .unwrap_or_default()
}

fn train_als(
    batch: &RecordBatch,
    path: &std::path::Path,
    config: &AlsConfig,
    mode: ProgressMode,
    interrupt: &Interrupt,
) -> Result<RecordBatch> {
    let interactions = Interactions::from_batch(TRAIN_ALS, batch)?;
    if interactions.users() == 0 || interactions.items() == 0 {
        return exec_err!("{TRAIN_ALS}: the interactions table has no rows to train on");
    }
    let started = Instant::now();
    let mut progress = Progress::new(TRAIN_ALS, mode, config.iterations);
    let model = als::train(&interactions, config, |done| {
        progress.update(done, None);
        !interrupt.cancelled()
    });
    let seconds = started.elapsed().as_secs_f64();
    if interrupt.cancelled() {
        progress.finish("cancelled; no model written");
        return exec_err!("{TRAIN_ALS}: cancelled; no model written");
    }
    if !model.loss.is_finite() {
        return exec_err!(
            "{TRAIN_ALS}: the loss became {} — lower alpha or raise regularization",
            model.loss
        );
    }
    let f = config.factors;
    let file = ModelFile {
        kind: "als".to_string(),
        config: json!({
            "factors": f,
            "iterations": config.iterations,
            "regularization": config.regularization,
            "alpha": config.alpha,
            "seed": config.seed,
            "loss": model.loss,
        }),
        tensors: HashMap::new(),
        matrices: HashMap::from([
            ("users".to_string(), (model.user_factors, interactions.users(), f)),
            ("items".to_string(), (model.item_factors, interactions.items(), f)),
        ]),
        ids: HashMap::from([
            ("users".to_string(), Arc::clone(&interactions.user_ids)),
            ("items".to_string(), Arc::clone(&interactions.item_ids)),
        ]),
    };
    file.save(path)?;
    progress.finish(&format!(
        "{} users × {} items, {f} factors, {} iterations, loss {:.4}, {seconds:.2} s → {}",
        interactions.users(),
        interactions.items(),
        config.iterations,
        model.loss,
        path.display()
    ));
    report(
        path,
        interactions.users(),
        interactions.items(),
        f,
        config.iterations,
        model.loss,
        seconds,
    )
}

/// The `train_item2vec` table function.
#[derive(Debug, Default)]
pub struct TrainItem2Vec;

impl TableFunctionImpl for TrainItem2Vec {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let call = TrainingCall::parse(TRAIN_ITEM2VEC, &args, DOCS[1].1, 3..=7, "user, item[, order]")?;
        let exprs = args.exprs();
        let config = Item2VecConfig {
            dim: count(TRAIN_ITEM2VEC, exprs, 2, "dim", 64)?,
            epochs: count(TRAIN_ITEM2VEC, exprs, 3, "epochs", 5)?,
            window: count(TRAIN_ITEM2VEC, exprs, 4, "window", 5)?,
            negatives: count(TRAIN_ITEM2VEC, exprs, 5, "negatives", 5)?,
            learning_rate: 0.025,
            seed: number(TRAIN_ITEM2VEC, exprs, 6, "seed", 42.0)? as u64,
        };
        let detail = format!(
            "item2vec, dim={}, epochs={}, path={}",
            config.dim, config.epochs, call.path
        );
        let (path, mode) = (PathBuf::from(&call.path), call.mode);
        let compute: Computation = Arc::new(move |tables: &[RecordBatch], interrupt: &Interrupt| {
            train_item2vec(&tables[0], &path, &config, mode, interrupt)
        });
        Ok(call.table(detail, report_schema(), compute))
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

fn train_item2vec(
    batch: &RecordBatch,
    path: &std::path::Path,
    config: &Item2VecConfig,
    mode: ProgressMode,
    interrupt: &Interrupt,
) -> Result<RecordBatch> {
    let (item_ids, items, sequences) = sequences(batch)?;
    if sequences.iter().all(|s| s.len() < 2) {
        return exec_err!("{TRAIN_ITEM2VEC}: no user has two items in sequence, so there is nothing to learn from");
    }
    let started = Instant::now();
    let mut progress = Progress::new(TRAIN_ITEM2VEC, mode, config.epochs);
    let model = item2vec::train(&sequences, items, config, |done, loss| {
        progress.update(done, Some(loss));
        loss.is_finite() && !interrupt.cancelled()
    });
    let seconds = started.elapsed().as_secs_f64();
    if interrupt.cancelled() {
        progress.finish("cancelled; no model written");
        return exec_err!("{TRAIN_ITEM2VEC}: cancelled; no model written");
    }
    if !model.loss.is_finite() {
        return exec_err!(
            "{TRAIN_ITEM2VEC}: the loss became {} (NaN or infinite), so training stopped and no model was written",
            model.loss
        );
    }
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
    file.save(path)?;
    progress.finish(&format!(
        "{} users, {items} items, dim {}, {} epochs, loss {:.4}, {seconds:.2} s → {}",
        sequences.len(),
        config.dim,
        config.epochs,
        model.loss,
        path.display()
    ));
    report(
        path,
        sequences.len(),
        items,
        config.dim,
        config.epochs,
        model.loss,
        seconds,
    )
}

pub(crate) fn report(
    path: &std::path::Path,
    users: usize,
    items: usize,
    factors: usize,
    iterations: usize,
    loss: f32,
    seconds: f64,
) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![path.display().to_string()])),
        Arc::new(Int64Array::from(vec![users as i64])),
        Arc::new(Int64Array::from(vec![items as i64])),
        Arc::new(Int64Array::from(vec![factors as i64])),
        Arc::new(Int64Array::from(vec![iterations as i64])),
        Arc::new(Float64Array::from(vec![f64::from(loss)])),
        Arc::new(Float64Array::from(vec![seconds])),
    ];
    Ok(RecordBatch::try_new(report_schema(), columns)?)
}

/// The `model_vectors` table function.
#[derive(Debug, Default)]
pub struct ModelVectors;

impl TableFunctionImpl for ModelVectors {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.len() != 2 {
            return plan_err!("{MODEL_VECTORS}: expected {}", DOCS[2].1);
        }
        let path = text_argument(MODEL_VECTORS, exprs, 0, "path")?.unwrap_or_default();
        let side = text_argument(MODEL_VECTORS, exprs, 1, "side")?.unwrap_or_default();
        if side != "users" && side != "items" {
            return plan_err!("{MODEL_VECTORS}: argument 2 must be 'users' or 'items', got '{side}'");
        }
        let named = planning_error(MODEL_VECTORS);
        let file = ModelFile::load(std::path::Path::new(&path), None).map_err(&named)?;
        let (values, dim, ids) = file.matrix(&side, &side).map_err(&named)?;
        let vectors = FixedSizeListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Float32, true)),
            dim as i32,
            Arc::new(Float32Array::from(values.to_vec())),
            None,
        )?;
        let id_name = if side == "users" { "user_id" } else { "item_id" };
        let schema = Arc::new(Schema::new(vec![
            Field::new(id_name, ids.data_type().clone(), true),
            Field::new("vector", vectors.data_type().clone(), false),
        ]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::clone(ids), Arc::new(vectors)])?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}
