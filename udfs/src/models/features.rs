//! The neural feature profile from SQL:
//!
//! - `train_two_tower(interactions, path, user_features [, dim [, epochs [, seed]]])` trains the
//!   user tower and item vectors ([`super::two_tower`]) on (user, item) rows and a
//!   `(user, feature, …)` table — number columns are z-scored, other columns hashed as
//!   categories — and saves the model at `path`;
//! - `two_tower_profiles(path, user_features)` turns any user's features into a profile, history
//!   or not, as (user, vector) rows for `recommend()` with `model_vectors(path, 'items')`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, Result, exec_datafusion_err, exec_err, plan_err};
use serde_json::{Value, json};

use super::file::ModelFile;
use super::progress::{Progress, ProgressMode};
use super::two_tower::{self, BUCKETS, Feature, TwoTowerConfig};
use super::{ProfileCall, TrainingCall, count, number, report, report_schema};
use crate::compute::{Computation, ComputeTable, Interrupt};
use crate::recommend::interactions::IdIndex;
use crate::recommend::{resolve, text_argument};

const TRAIN: &str = "train_two_tower";
const PROFILES: &str = "two_tower_profiles";

/// (name, syntax, description) of the feature-profile table functions, for `\df`.
pub const DOCS: [(&str, &str, &str); 2] = [
    (
        TRAIN,
        "train_two_tower(interactions, path, user_features [, dim [, epochs [, seed]]])",
        "Trains a two-tower model: a user tower over the user_features table (numbers z-scored, text hashed) and item \
         vectors, with BPR loss on (user, item) rows; saves it at path. Defaults: dim 32, 20 epochs, seed 42.",
    ),
    (
        PROFILES,
        "two_tower_profiles(path, user_features)",
        "Profiles from users' features alone (cold start included) by a saved two-tower model: (user, vector).",
    ),
];

/// The encoding of each feature column (columns 1.. of the features table).
fn feature_spec(batch: &RecordBatch) -> Result<Vec<(String, Feature)>> {
    let schema = batch.schema();
    (1..batch.num_columns())
        .map(|c| {
            let name = schema.field(c).name().clone();
            let column = batch.column(c);
            if column.data_type().is_numeric() {
                let values = cast(column, &DataType::Float64)?;
                let values: Vec<f64> = values.as_primitive::<Float64Type>().iter().flatten().collect();
                let n = values.len().max(1) as f64;
                let mean = values.iter().sum::<f64>() / n;
                let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                let deviation = if variance > 0.0 { variance.sqrt() } else { 1.0 };
                Ok((name, Feature::Number { mean, deviation }))
            } else {
                Ok((name, Feature::Category))
            }
        })
        .collect()
}

/// Each row's features as `inputs` floats, row-major.
fn encode(batch: &RecordBatch, spec: &[(String, Feature)]) -> Result<Vec<f32>> {
    let width: usize = spec.iter().map(|(_, f)| f.width()).sum();
    let mut out = vec![0.0f32; batch.num_rows() * width];
    let mut offset = 0;
    for (name, feature) in spec {
        let column = batch.column_by_name(name).ok_or_else(|| {
            exec_datafusion_err!("the features table has no column '{name}', which the model was trained on")
        })?;
        match feature {
            Feature::Number { mean, deviation } => {
                let values = cast(column, &DataType::Float64)?;
                let values = values.as_primitive::<Float64Type>();
                for row in 0..batch.num_rows() {
                    if values.is_valid(row) {
                        out[row * width + offset] = ((values.value(row) - mean) / deviation) as f32;
                    }
                }
            }
            Feature::Category => {
                let values = cast(column, &DataType::Utf8)?;
                let values = values.as_string::<i32>();
                for row in 0..batch.num_rows() {
                    if values.is_valid(row) {
                        out[row * width + offset + two_tower::bucket(values.value(row))] = 1.0;
                    }
                }
            }
        }
        offset += feature.width();
    }
    Ok(out)
}

fn spec_json(spec: &[(String, Feature)]) -> Value {
    Value::Array(
        spec.iter()
            .map(|(name, feature)| match feature {
                Feature::Number { mean, deviation } => {
                    json!({"name": name, "kind": "number", "mean": mean, "deviation": deviation})
                }
                Feature::Category => json!({"name": name, "kind": "category", "buckets": BUCKETS}),
            })
            .collect(),
    )
}

fn spec_from_json(value: &Value) -> Option<Vec<(String, Feature)>> {
    value
        .as_array()?
        .iter()
        .map(|f| {
            let name = f["name"].as_str()?.to_string();
            let feature = match f["kind"].as_str()? {
                "number" => Feature::Number {
                    mean: f["mean"].as_f64()?,
                    deviation: f["deviation"].as_f64()?,
                },
                _ => Feature::Category,
            };
            Some((name, feature))
        })
        .collect()
}

/// The `train_two_tower` table function.
#[derive(Debug, Default)]
pub struct TrainTwoTower;

impl TableFunctionImpl for TrainTwoTower {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let call = TrainingCall::parse(TRAIN, &args, DOCS[0].1, 3..=6, "user, item")?;
        let exprs = args.exprs();
        let features_name = text_argument(TRAIN, exprs, 2, "user_features")?.unwrap_or_default();
        let features = resolve(TRAIN, args.session(), &features_name, "user_features")?;
        if features.schema().fields().len() < 2 {
            return plan_err!("{TRAIN}: the user_features table needs (user, feature, …) columns");
        }
        let dim = count(TRAIN, exprs, 3, "dim", 32)?;
        let epochs = count(TRAIN, exprs, 4, "epochs", 20)?;
        let seed = number(TRAIN, exprs, 5, "seed", 42.0)? as u64;
        let detail = format!("two-tower, dim={dim}, epochs={epochs}, path={}", call.path);
        let (path, mode) = (std::path::PathBuf::from(&call.path), call.mode);
        let compute: Computation = Arc::new(move |tables: &[RecordBatch], interrupt: &Interrupt| {
            train(&tables[0], &tables[1], &path, (dim, epochs, seed), mode, interrupt)
        });
        Ok(Arc::new(ComputeTable {
            name: "TrainExec",
            detail,
            inputs: vec![call.interactions, features],
            schema: report_schema(),
            compute,
        }))
    }
}

fn train(
    interactions: &RecordBatch,
    features: &RecordBatch,
    path: &Path,
    (dim, epochs, seed): (usize, usize, u64),
    mode: ProgressMode,
    interrupt: &Interrupt,
) -> Result<RecordBatch> {
    let spec = feature_spec(features)?;
    let (user_index, _, _) = IdIndex::build(features.column(0))?;
    let (_, items, item_rows) = IdIndex::build(interactions.column(1))?;
    let feature_rows = user_index.lookup(interactions.column(0))?;
    let (_, _, first_feature_rows) = IdIndex::build(features.column(0))?;
    let mut positives: Vec<(u32, u32)> = (0..interactions.num_rows())
        .filter_map(|row| Some((feature_rows[row]?, items[row]?)))
        .collect();
    // In id order, so the seeded shuffle does not depend on the order rows arrive in.
    positives.sort_unstable();
    let positives: Vec<(u32, u32)> = positives
        .into_iter()
        .map(|(user, item)| (first_feature_rows[user as usize], item))
        .collect();
    if positives.is_empty() {
        return exec_err!(
            "{TRAIN}: no interaction belongs to a user of the features table, so there is nothing to train on"
        );
    }
    let inputs: usize = spec.iter().map(|(_, f)| f.width()).sum();
    let config = TwoTowerConfig {
        inputs,
        items: item_rows.len(),
        dim,
        hidden: 64,
        epochs,
        learning_rate: 0.005,
        seed,
    };
    let encoded = encode(features, &spec)?;
    let started = Instant::now();
    let mut progress = Progress::new(TRAIN, mode, epochs);
    let failed = |e: candle_core::Error| exec_datafusion_err!("{TRAIN}: {e}");
    let (varmap, loss) = two_tower::train(&encoded, &positives, &config, |done, loss| {
        progress.update(done, Some(loss));
        !interrupt.cancelled()
    })
    .map_err(failed)?;
    let seconds = started.elapsed().as_secs_f64();
    if interrupt.cancelled() {
        progress.finish("cancelled; no model written");
        return exec_err!("{TRAIN}: cancelled; no model written");
    }
    if !loss.is_finite() {
        return exec_err!(
            "{TRAIN}: the loss became {loss} (NaN or infinite), so training stopped and no model was written"
        );
    }
    let tensors: HashMap<String, candle_core::Tensor> = varmap
        .data()
        .lock()
        .expect("variables")
        .iter()
        .map(|(name, var)| (format!("network.{name}"), var.as_tensor().clone()))
        .collect();
    let network: HashMap<String, candle_core::Tensor> = tensors
        .iter()
        .map(|(n, t)| (n.trim_start_matches("network.").to_string(), t.clone()))
        .collect();
    let vectors = two_tower::load(&config, network)
        .and_then(|m| m.item_vectors())
        .map_err(failed)?;
    let item_ids = datafusion::arrow::compute::take(
        interactions.column(1).as_ref(),
        &datafusion::arrow::array::UInt32Array::from(item_rows),
        None,
    )?;
    let file = ModelFile {
        kind: "two_tower".to_string(),
        config: json!({"inputs": inputs, "items": config.items, "dim": dim, "hidden": config.hidden,
                       "epochs": epochs, "seed": seed, "loss": loss, "features": spec_json(&spec)}),
        matrices: HashMap::from([("items".to_string(), (vectors, config.items, dim))]),
        tensors,
        ids: HashMap::from([("items".to_string(), item_ids)]),
    };
    file.save(path)?;
    progress.finish(&format!(
        "{} users with features, {} items, dim {dim}, {epochs} epochs, loss {loss:.4}, {seconds:.1} s → {}",
        features.num_rows(),
        config.items,
        path.display()
    ));
    report(path, features.num_rows(), config.items, dim, epochs, loss, seconds)
}

/// The `two_tower_profiles` table function.
#[derive(Debug, Default)]
pub struct TwoTowerProfiles;

impl TableFunctionImpl for TwoTowerProfiles {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let ProfileCall {
            path,
            table: features,
            file,
        } = ProfileCall::parse(PROFILES, &args, DOCS[1].1, "two_tower", "user_features")?;
        let named = super::planning_error(PROFILES);
        let damaged = || DataFusionError::Plan(format!("{PROFILES}: model '{path}' has a damaged configuration"));
        let value = |key: &str| file.setting(key).map_err(&named);
        let config = TwoTowerConfig {
            inputs: value("inputs")?,
            items: value("items")?,
            dim: value("dim")?,
            hidden: value("hidden")?,
            epochs: 0,
            learning_rate: 0.0,
            seed: 0,
        };
        let spec = spec_from_json(&file.config["features"]).ok_or_else(damaged)?;
        let model = Arc::new(two_tower::load(&config, file.network()).map_err(|e| {
            DataFusionError::Plan(format!(
                "{PROFILES}: model '{path}' does not match its configuration: {e}"
            ))
        })?);
        let schema = features.schema();
        let output = Arc::new(Schema::new(vec![
            Field::new(schema.field(0).name(), schema.field(0).data_type().clone(), true),
            Field::new("vector", crate::vector::vector_type(config.dim), false),
        ]));
        let out = Arc::clone(&output);
        let compute: Computation = Arc::new(move |tables: &[RecordBatch], _: &Interrupt| {
            let batch = &tables[0];
            let encoded = encode(batch, &spec).map_err(super::planning_error(PROFILES))?;
            let rows = batch.num_rows();
            let profiles = candle_core::Tensor::from_vec(encoded, (rows, config.inputs), &candle_core::Device::Cpu)
                .and_then(|x| model.users(&x))
                .and_then(|u| u.flatten_all())
                .and_then(|u| u.to_vec1::<f32>())
                .map_err(|e| exec_datafusion_err!("{PROFILES}: {e}"))?;
            let vectors = FixedSizeListArray::try_new(
                Arc::new(Field::new_list_field(DataType::Float32, true)),
                config.dim as i32,
                Arc::new(Float32Array::from(profiles)),
                None,
            )?;
            let ids: ArrayRef = Arc::clone(batch.column(0));
            Ok(RecordBatch::try_new(Arc::clone(&out), vec![ids, Arc::new(vectors)])?)
        });
        Ok(Arc::new(ComputeTable {
            name: "TwoTowerProfilesExec",
            detail: format!("model={path}"),
            inputs: vec![features],
            schema: output,
            compute,
        }))
    }
}
