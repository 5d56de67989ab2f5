//! A learned attention query for `attention_pool`: `train_attention_query(interactions, path,
//! item_vectors [, epochs [, seed]])` learns the query vector `q` and a recency slope `s` so
//! that the profile `Σ softmax(q·z_i/√d − s·age_i)·z_i` of a user's earlier items ranks their
//! next item first (softmax over the catalogue, the item vectors fixed). It returns one row
//! (query, slope, loss, seconds), saves it at `path`, and is used as
//! `attention_pool(v, l.query, -l.slope * age)` with the row joined in.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::Optimizer;
use datafusion::arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, exec_datafusion_err, exec_err, plan_err};
use serde_json::json;

use super::file::ModelFile;
use super::{TrainingCall, count, number};
use crate::compute::{Computation, ComputeTable, Interrupt};
use crate::recommend::interactions::IdIndex;
use crate::recommend::{resolve, text_argument};
use crate::vector::Vectors;

const NAME: &str = "train_attention_query";

/// (name, syntax, description) for `\df`.
pub const DOC: (&str, &str, &str) = (
    NAME,
    "train_attention_query(interactions, path, item_vectors [, epochs [, seed]])",
    "Learns attention_pool's query vector and recency slope from (user, item, order) rows and fixed item vectors so \
     that pooled profiles rank each user's next item first. Returns (query, slope, loss, seconds).",
);

/// How many of a user's latest items the profile pools.
const WINDOW: usize = 50;

fn schema(dim: usize) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("query", crate::vector::vector_type(dim), false),
        Field::new("slope", DataType::Float64, false),
        Field::new("loss", DataType::Float64, false),
        Field::new("seconds", DataType::Float64, false),
    ]))
}

/// The `train_attention_query` table function.
#[derive(Debug, Default)]
pub struct TrainAttentionQuery;

impl TableFunctionImpl for TrainAttentionQuery {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let call = TrainingCall::parse(NAME, &args, DOC.1, 3..=5, "user, item, order")?;
        let exprs = args.exprs();
        let vectors_name = text_argument(NAME, exprs, 2, "item_vectors")?.unwrap_or_default();
        let vectors = resolve(NAME, args.session(), &vectors_name, "item_vectors")?;
        let dim = match vectors.schema().fields().get(1).map(|f| f.data_type().clone()) {
            Some(DataType::FixedSizeList(_, d)) => d as usize,
            other => {
                return plan_err!(
                    "{NAME}: the item_vectors table needs (item, fixed-size vector) columns, got {other:?}"
                );
            }
        };
        let epochs = count(NAME, exprs, 3, "epochs", 100)?;
        let seed = number(NAME, exprs, 4, "seed", 42.0)? as u64;
        let path = std::path::PathBuf::from(&call.path);
        let output = schema(dim);
        let out = Arc::clone(&output);
        let compute: Computation = Arc::new(move |tables: &[RecordBatch], interrupt: &Interrupt| {
            train(&tables[0], &tables[1], &path, dim, epochs, seed, &out, interrupt)
        });
        Ok(Arc::new(ComputeTable {
            name: "TrainExec",
            detail: format!("attention query, epochs={epochs}"),
            inputs: vec![call.interactions, vectors],
            schema: output,
            compute,
        }))
    }
}

#[allow(clippy::too_many_arguments)]
fn train(
    interactions: &RecordBatch,
    vectors: &RecordBatch,
    path: &std::path::Path,
    dim: usize,
    epochs: usize,
    seed: u64,
    schema: &SchemaRef,
    interrupt: &Interrupt,
) -> Result<RecordBatch> {
    let failed = |e: candle_core::Error| exec_datafusion_err!("{NAME}: {e}");
    // Item vectors, and each interaction's item as a row of them.
    let (index, _, first_rows) = IdIndex::build(vectors.column(0))?;
    let table = Vectors::try_new(NAME, 2, vectors.column(1))?;
    let mut matrix = Vec::with_capacity(first_rows.len() * dim);
    for &row in &first_rows {
        match table.row(row as usize) {
            Some(v) => matrix.extend_from_slice(v),
            None => matrix.extend(std::iter::repeat_n(0.0, dim)),
        }
    }
    let positions = index.lookup(interactions.column(1))?;
    let (_, histories) = super::transformer::histories(interactions)?;
    // One example per user: the last known item is the target, up to WINDOW before it the input.
    let (mut ids, mut ages, mut present, mut targets) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rows in &histories {
        let known: Vec<u32> = rows.iter().filter_map(|&row| positions[row]).collect();
        if known.len() < 2 {
            continue;
        }
        let (history, target) = known.split_at(known.len() - 1);
        let tail = &history[history.len().saturating_sub(WINDOW)..];
        for slot in 0..WINDOW {
            let offset = WINDOW - slot; // age of the slot: 1 = latest
            match tail.len().checked_sub(offset) {
                Some(i) => {
                    ids.push(tail[i]);
                    ages.push(offset as f32);
                    present.push(0.0f32);
                }
                None => {
                    ids.push(0);
                    ages.push(0.0);
                    present.push(-1e9);
                }
            }
        }
        targets.push(target[0]);
    }
    if targets.is_empty() {
        return exec_err!("{NAME}: no user has two known items in sequence, so there is nothing to learn from");
    }
    let users = targets.len();
    let started = Instant::now();
    let device = Device::Cpu;
    let run = || -> candle_core::Result<(Vec<f32>, f32, f32)> {
        let items = Tensor::from_vec(matrix.clone(), (first_rows.len(), dim), &device)?;
        let z = items
            .index_select(&Tensor::from_vec(ids.clone(), users * WINDOW, &device)?, 0)?
            .reshape((users, WINDOW, dim))?;
        let ages = Tensor::from_vec(ages.clone(), (users, WINDOW), &device)?;
        let padding = Tensor::from_vec(present.clone(), (users, WINDOW), &device)?;
        let targets = Tensor::from_vec(targets.clone(), users, &device)?;
        let mut random = super::als::SplitMix::new(seed);
        let start: Vec<f32> = (0..dim).map(|_| (random.next_f32() - 0.5) * 0.1).collect();
        let query = Var::from_tensor(&Tensor::from_vec(start, dim, &device)?)?;
        let slope = Var::from_tensor(&Tensor::new(&[0.1f32], &device)?)?;
        let mut optimizer = candle_nn::AdamW::new(
            vec![query.clone(), slope.clone()],
            candle_nn::ParamsAdamW {
                lr: 0.01,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?;
        let scale = 1.0 / (dim as f64).sqrt();
        let mut loss_value = f32::NAN;
        for _ in 0..epochs {
            if interrupt.cancelled() {
                break;
            }
            let scores = (z.broadcast_matmul(&query.as_tensor().reshape((dim, 1))?)?.squeeze(2)? * scale)?;
            let logits = (scores - ages.broadcast_mul(slope.as_tensor())?)?.add(&padding)?;
            let weights = candle_nn::ops::softmax(&logits, D::Minus1)?;
            let profile = weights.unsqueeze(1)?.matmul(&z)?.squeeze(1)?;
            let ranking = profile.matmul(&items.t()?)?;
            let log_probs = candle_nn::ops::log_softmax(&ranking, D::Minus1)?;
            let loss = (log_probs.gather(&targets.unsqueeze(1)?, 1)?.mean_all()? * -1.0)?;
            optimizer.backward_step(&loss)?;
            loss_value = loss.to_scalar::<f32>()?;
        }
        let slope_value = slope.as_tensor().to_dtype(DType::F32)?.to_vec1::<f32>()?[0];
        Ok((query.as_tensor().to_vec1::<f32>()?, slope_value, loss_value))
    };
    let (query, slope, loss) = run().map_err(failed)?;
    if interrupt.cancelled() {
        return exec_err!("{NAME}: cancelled; no model written");
    }
    if !loss.is_finite() {
        return exec_err!("{NAME}: the loss became {loss} (NaN or infinite); no model written");
    }
    let seconds = started.elapsed().as_secs_f64();
    let file = ModelFile {
        kind: "attention_query".to_string(),
        config: json!({"dim": dim, "epochs": epochs, "seed": seed, "slope": slope, "loss": loss}),
        matrices: HashMap::from([("query".to_string(), (query.clone(), 1, dim))]),
        tensors: HashMap::new(),
        ids: HashMap::from([(
            "query".to_string(),
            Arc::new(datafusion::arrow::array::StringArray::from(vec!["query"])) as ArrayRef,
        )]),
    };
    file.save(path)?;
    let vector = FixedSizeListArray::try_new(
        Arc::new(Field::new_list_field(DataType::Float32, true)),
        dim as i32,
        Arc::new(Float32Array::from(query)),
        None,
    )?;
    Ok(RecordBatch::try_new(
        Arc::clone(schema),
        vec![
            Arc::new(vector),
            Arc::new(Float64Array::from(vec![f64::from(slope)])),
            Arc::new(Float64Array::from(vec![f64::from(loss)])),
            Arc::new(Float64Array::from(vec![seconds])),
        ],
    )?)
}
