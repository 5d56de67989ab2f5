//! A learned attention query for `attention_pool`: `train_attention_query(interactions, model,
//! item_vectors [, epochs [, seed]])` learns the query vector `q` and a recency slope `s` so
//! that the profile `Σ softmax(q·z_i/√d − s·age_i)·z_i` of a user's earlier items ranks their
//! next item first (softmax over the catalogue, the item vectors fixed). It returns one row
//! (query, slope, loss, seconds), saves it as the named model (or at a path), and is used as
//! `attention_pool(v, l.query, -l.slope * age)` with the row joined in.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::Optimizer;
use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Result, exec_datafusion_err, exec_err, plan_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::file::ModelFile;
use super::progress::Progress;
use super::training::{Target, finish, histories, interactions_and_model, progress_mode};
use crate::table_function::interactions::IdIndex;
use crate::table_function::{Arguments, Planned, Run, TableFunction};
use crate::vector::{Vectors, vector_array, vector_type};

const NAME: &str = "train_attention_query";

/// How many of a user's latest items the profile pools.
const WINDOW: usize = 50;

/// Users scored at once in a training step: their scores over the whole catalogue (a
/// MovieLens-1M-sized one: 512 × 3,706 floats, 7.6 MB) are held together, never every user's.
const USERS_PER_SLICE: usize = 512;

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Learns attention_pool's query vector and recency slope from (user, item, order) rows and fixed item vectors, so that the pooled profile of a user's earlier items (the latest 50) ranks their next item first (softmax over the catalogue). Saves them as a named model and returns one row (query, slope, loss, seconds), used as attention_pool(v, l.query, -l.slope * age) with the row joined in.",
    syntax_example = "train_attention_query(interactions, model => 'attention_query', item_vectors => 'table' [, epochs => 100] [, seed => 42] [, user => 'column', item => 'column', order => 'column', vector_item => 'column', vector => 'column'])",
    sql_example = r#"```sql
> CREATE TABLE learned AS
  SELECT * FROM train_attention_query('events', model => 'query', item_vectors => 'item_vectors');
```"#,
    argument(name = "interactions", description = "A table or view of (user, item, order) rows."),
    argument(
        name = "model",
        description = "A model name, kept in the models directory (default 'attention_query'), or a path to a .safetensors file: where the model is saved."
    ),
    argument(
        name = "item_vectors",
        description = "A table or view of (item, fixed-size vector) rows, kept fixed."
    ),
    argument(name = "epochs", description = "Optimisation steps (default 100)."),
    argument(
        name = "seed",
        description = "A non-negative integer that fixes the result (default 42)."
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
    ),
    argument(
        name = "vector_item",
        description = "The column of item_vectors that holds the item id (default: the first)."
    ),
    argument(
        name = "vector",
        description = "The column of item_vectors that holds the vector (default: the second)."
    )
)]
#[derive(Debug, Default)]
pub struct TrainAttentionQuery;

/// Options of one call.
#[derive(Debug, Serialize, Deserialize)]
struct Options {
    #[serde(flatten)]
    target: Target,
    dim: usize,
    epochs: usize,
    seed: u64,
}

fn schema(dim: usize) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("query", vector_type(dim), false),
        Field::new("slope", DataType::Float64, false),
        Field::new("loss", DataType::Float64, false),
        Field::new("seconds", DataType::Float64, false),
    ]))
}

impl TableFunction for TrainAttentionQuery {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(3..=5)?;
        let (interactions, target) = interactions_and_model(args, "user, item, order", "attention_query")?;
        let vectors = args.required_input(2, "item_vectors", Some("vector_item, vector"))?;
        let dim = match vectors
            .table
            .provider
            .schema()
            .fields()
            .get(1)
            .map(|f| f.data_type().clone())
        {
            Some(DataType::FixedSizeList(_, d)) => d as usize,
            other => {
                return plan_err!(
                    "{NAME}: the item_vectors table needs (item, fixed-size vector) columns, got {other:?}"
                );
            }
        };
        let options = Options {
            target,
            dim,
            epochs: args.positive_integer(3, "epochs", Some(100))?,
            seed: args.seed(4)?,
        };
        Planned::new(vec![interactions, vectors], &options, schema(dim))
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let options: Options = run.call.options()?;
        train(&inputs[0], &inputs[1], &options, run)
    }
}

fn train(interactions: &RecordBatch, vectors: &RecordBatch, options: &Options, run: &Run) -> Result<RecordBatch> {
    let &Options { dim, epochs, seed, .. } = options;
    let path = Path::new(&options.target.path);
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
    let (_, histories) = histories(interactions)?;
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
    let mut progress = Progress::new(NAME, progress_mode(run), epochs);
    let mut fit = || -> candle_core::Result<(Vec<f32>, f32, f32)> {
        let items = Tensor::from_vec(matrix.clone(), (first_rows.len(), dim), &device)?;
        let items_t = items.t()?;
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
        for epoch in 0..epochs {
            if run.interrupt.cancelled() {
                break;
            }
            // One full-batch step, its gradient summed over slices of users: a slice's
            // (users × catalogue) scores are all that is held at once. Only the two
            // parameters' gradients are summed into the first slice's store: every store also
            // holds gradients of its slice's inputs (candle differentiates every operand), which
            // would pile up if the stores were merged.
            let mut gradient: Option<GradStore> = None;
            let mut loss_sum = 0f32;
            for first in (0..users).step_by(USERS_PER_SLICE) {
                let n = USERS_PER_SLICE.min(users - first);
                let window = first * WINDOW..(first + n) * WINDOW;
                let z = items
                    .index_select(&Tensor::from_slice(&ids[window.clone()], n * WINDOW, &device)?, 0)?
                    .reshape((n, WINDOW, dim))?;
                let slice_ages = Tensor::from_slice(&ages[window.clone()], (n, WINDOW), &device)?;
                let slice_padding = Tensor::from_slice(&present[window], (n, WINDOW), &device)?;
                let slice_targets = Tensor::from_slice(&targets[first..first + n], n, &device)?;
                let scores = (z.broadcast_matmul(&query.as_tensor().reshape((dim, 1))?)?.squeeze(2)? * scale)?;
                let logits = (scores - slice_ages.broadcast_mul(slope.as_tensor())?)?.add(&slice_padding)?;
                let weights = candle_nn::ops::softmax(&logits, D::Minus1)?;
                let profile = weights.unsqueeze(1)?.matmul(&z)?.squeeze(1)?;
                let ranking = profile.matmul(&items_t)?;
                let log_probs = candle_nn::ops::log_softmax(&ranking, D::Minus1)?;
                let loss = (log_probs.gather(&slice_targets.unsqueeze(1)?, 1)?.sum_all()? * (-1.0 / users as f64))?;
                loss_sum += loss.to_scalar::<f32>()?;
                let slice_gradient = loss.backward()?;
                let Some(sum) = gradient.as_mut() else {
                    gradient = Some(slice_gradient);
                    continue;
                };
                for parameter in [query.as_tensor(), slope.as_tensor()] {
                    let (Some(total), Some(more)) = (sum.get(parameter), slice_gradient.get(parameter)) else {
                        return Err(candle_core::Error::Msg("a parameter without gradient".into()));
                    };
                    let total = (total + more)?;
                    sum.insert(parameter, total);
                }
            }
            if let Some(gradient) = gradient {
                optimizer.step(&gradient)?;
            }
            loss_value = loss_sum;
            progress.update(epoch + 1, Some(loss_value));
        }
        let slope_value = slope.as_tensor().to_dtype(DType::F32)?.to_vec1::<f32>()?[0];
        Ok((query.as_tensor().to_vec1::<f32>()?, slope_value, loss_value))
    };
    let (query, slope, loss) = fit().map_err(failed)?;
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
    let summary =
        format!("{users} users, dim {dim}, {epochs} epochs, slope {slope:.4}, loss {loss:.4}, {seconds:.1} s");
    finish(
        &progress,
        run,
        loss,
        "lower epochs",
        &file,
        path,
        interactions.num_rows(),
        &summary,
    )?;
    let vector = vector_array(&vector_type(dim), query, dim, 1, None)?;
    Ok(RecordBatch::try_new(
        Arc::clone(run.schema),
        vec![
            vector,
            Arc::new(Float64Array::from(vec![f64::from(slope)])),
            Arc::new(Float64Array::from(vec![f64::from(loss)])),
            Arc::new(Float64Array::from(vec![seconds])),
        ],
    )?)
}
