//! `train_two_tower(interactions, model => …, user_features => …, …)`: trains the
//! user tower and item vectors ([`super::two_tower`]) on (user, item) rows and a `(user,
//! feature, …)` table — number columns z-scored, other columns hashed as categories — and
//! saves it as the named model (or at a path); returns a report row.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::{Result, exec_datafusion_err, exec_err, plan_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::file::ModelFile;
use super::progress::Progress;
use super::training::{Target, finish, interactions_and_model, network_tensors, progress_mode, report, report_schema};
use super::two_tower::{self, TwoTowerConfig, encode, feature_spec, spec_json};
use crate::table_function::interactions::IdIndex;
use crate::table_function::{Arguments, Planned, Run, TableFunction};

const NAME: &str = "train_two_tower";

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Trains a two-tower model, the neural feature profile U = f(W1·X1 + b1, …): a user tower over the columns of the user_features table (numbers z-scored, other columns hashed into 32 buckets each) trained jointly with item vectors by BPR loss on (user, item) rows; saves it as a named model and returns one report row. two_tower_profiles(model, user_features) then gives a profile from features alone.",
    syntax_example = "train_two_tower(interactions, model => 'two_tower', user_features => 'table' [, dim => 32] [, epochs => 20] [, seed => 42] [, user => 'column', item => 'column'])",
    sql_example = r#"```sql
> SELECT * FROM train_two_tower('events', model => 'tower', user_features => 'users', dim => 32,
                                user => 'user_id', item => 'item_id');
```"#,
    argument(name = "interactions", description = "A table or view of (user, item) rows."),
    argument(
        name = "model",
        description = "A model name, kept in the models directory (default 'two_tower'), or a path to a .safetensors file: where the model is saved."
    ),
    argument(
        name = "user_features",
        description = "A table or view of (user, feature, …) rows, one per user."
    ),
    argument(name = "dim", description = "Dimensions of profiles and item vectors (default 32)."),
    argument(name = "epochs", description = "Passes over the interactions (default 20)."),
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
    )
)]
#[derive(Debug, Default)]
pub struct TrainTwoTower;

/// Options of one call.
#[derive(Debug, Serialize, Deserialize)]
struct Options {
    #[serde(flatten)]
    target: Target,
    dim: usize,
    epochs: usize,
    seed: u64,
}

impl TableFunction for TrainTwoTower {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(3..=6)?;
        let (interactions, target) = interactions_and_model(args, "user, item", "two_tower")?;
        let features = args.required_input(2, "user_features", None)?;
        if features.table.provider.schema().fields().len() < 2 {
            return plan_err!("{NAME}: the user_features table needs (user, feature, …) columns");
        }
        let options = Options {
            target,
            dim: args.positive_integer(3, "dim", Some(32))?,
            epochs: args.positive_integer(4, "epochs", Some(20))?,
            seed: args.seed(5)?,
        };
        Planned::new(vec![interactions, features], &options, report_schema())
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let options: Options = run.call.options()?;
        train(&inputs[0], &inputs[1], &options, run)
    }
}

fn train(interactions: &RecordBatch, features: &RecordBatch, options: &Options, run: &Run) -> Result<RecordBatch> {
    let &Options { dim, epochs, seed, .. } = options;
    let path = Path::new(&options.target.path);
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
            "{NAME}: no interaction belongs to a user of the features table, so there is nothing to train on"
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
    let mut progress = Progress::new(NAME, progress_mode(run), epochs);
    let failed = |e: candle_core::Error| exec_datafusion_err!("{NAME}: {e}");
    let (varmap, loss) = two_tower::train(&encoded, &positives, &config, |done, loss| {
        progress.update(done, Some(loss));
        !run.interrupt.cancelled()
    })
    .map_err(failed)?;
    let seconds = started.elapsed().as_secs_f64();
    let tensors = network_tensors(&varmap);
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
    let summary = format!(
        "{} users with features, {} items, dim {dim}, {epochs} epochs, loss {loss:.4}, {seconds:.1} s",
        features.num_rows(),
        config.items,
    );
    finish(
        &progress,
        run,
        loss,
        "lower dim or epochs",
        &file,
        path,
        interactions.num_rows(),
        &summary,
    )?;
    report(
        &options.target.model,
        features.num_rows(),
        config.items,
        dim,
        epochs,
        loss,
        seconds,
    )
}
