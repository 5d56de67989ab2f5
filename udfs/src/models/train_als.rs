//! `train_als(interactions, model => …, factors => …, …)`: trains iALS ([`super::als`]) on
//! (user, item[, weight]) rows, saves it as the named model (or at a path), and returns
//! a report row (model, users, items, factors, iterations, loss, seconds).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::als::{self, AlsConfig};
use super::file::ModelFile;
use super::progress::{Progress, ProgressMode};
use super::training::{Target, finish, interactions_and_model, progress_mode, report, report_schema};
use crate::table_function::interactions::Interactions;
use crate::table_function::{Arguments, Planned, Run, TableFunction};

const NAME: &str = "train_als";

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Trains implicit-feedback matrix factorisation (iALS: confidence alpha·weight on observed pairs, conjugate-gradient updates) on (user, item[, weight]) rows and saves it as a named model (safetensors, with a .json description holding its settings, id maps and the training call). Returns one report row (model, users, items, factors, iterations, loss, seconds); model_vectors(model, 'users' | 'items') reads the vectors back.",
    syntax_example = "train_als(interactions [, model => 'als'] [, factors => 64] [, iterations => 15] [, regularization => 0.01] [, alpha => 1.0] [, seed => 42] [, user => 'column', item => 'column', weight => 'column'])",
    sql_example = r#"```sql
> SELECT * FROM train_als('events', model => 'als_v1', factors => 128, iterations => 20,
                          regularization => 1.0, alpha => 2.0,
                          user => 'user_id', item => 'item_id', weight => 'rating');
```"#,
    argument(
        name = "interactions",
        description = "A table or view of (user, item[, weight]) rows."
    ),
    argument(
        name = "model",
        description = "A model name, kept in the models directory (default 'als'), or a path to a .safetensors file: where the model is saved."
    ),
    argument(
        name = "factors",
        description = "Dimensions of the user and item vectors (default 64)."
    ),
    argument(name = "iterations", description = "Alternating passes (default 15)."),
    argument(
        name = "regularization",
        description = "L2 regularisation, a number ≥ 0 (default 0.01)."
    ),
    argument(
        name = "alpha",
        description = "Confidence per unit of weight, a number ≥ 0 (default 1)."
    ),
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
        name = "weight",
        description = "The column that holds the weight (default: the third, if any; 1 when absent)."
    )
)]
#[derive(Debug, Default)]
pub struct TrainAls;

/// Options of one call.
#[derive(Debug, Serialize, Deserialize)]
struct Options {
    #[serde(flatten)]
    target: Target,
    #[serde(flatten)]
    config: AlsConfig,
}

impl TableFunction for TrainAls {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(1..=7)?;
        let (input, target) = interactions_and_model(args, "user, item[, weight]", "als")?;
        let config = AlsConfig {
            factors: args.positive_integer(2, "factors", Some(64))?,
            iterations: args.positive_integer(3, "iterations", Some(15))?,
            regularization: args.number(4, "regularization", 0.0..=f64::INFINITY, 0.01)? as f32,
            alpha: args.number(5, "alpha", 0.0..=f64::INFINITY, 1.0)? as f32,
            seed: args.seed(6)?,
        };
        Planned::new(vec![input], &Options { target, config }, report_schema())
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { target, config } = run.call.options()?;
        let path = Path::new(&target.path);
        let interactions = Interactions::from_batch(NAME, &inputs[0])?;
        if interactions.users() == 0 || interactions.items() == 0 {
            return exec_err!("{NAME}: the interactions table has no rows to train on");
        }
        // The matrices, the factors of every user and item, and each thread's f × f system.
        let f = config.factors;
        let factors = (interactions.users() + interactions.items()).saturating_mul(f);
        // Without a memory limit the pool grants anything; ask the allocator before training.
        if Vec::<f32>::new().try_reserve_exact(factors.saturating_mul(2)).is_err() {
            return exec_err!(
                "{NAME}: {f} factors for {} users and {} items need {:.1} GB of memory, more than this machine can give; use fewer factors",
                interactions.users(),
                interactions.items(),
                (factors as f64) * 8.0 / 1e9
            );
        }
        run.reserve(
            interactions
                .memory_size()
                .saturating_add(factors.saturating_mul(2 * size_of::<f32>()))
                .saturating_add(rayon::current_num_threads() * f.saturating_mul(f) * size_of::<f32>() * 4),
        )?;
        let started = Instant::now();
        let mode = progress_mode(run);
        let mut progress = Progress::new(NAME, mode, config.iterations);
        let model = als::train(&interactions, &config, mode == ProgressMode::Bar, |done, loss| {
            // Checked before drawing: after Ctrl-C the shell owns the terminal line.
            if run.interrupt.cancelled() {
                return false;
            }
            progress.update(done, loss);
            true
        });
        let seconds = started.elapsed().as_secs_f64();
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
        let summary = format!(
            "{} users × {} items, {f} factors, {} iterations, loss {:.4}, {seconds:.2} s",
            interactions.users(),
            interactions.items(),
            config.iterations,
            model.loss,
        );
        let advice = "lower alpha or raise regularization";
        finish(
            &progress,
            run,
            model.loss,
            advice,
            &file,
            path,
            inputs[0].num_rows(),
            &summary,
        )?;
        report(
            &target.model,
            interactions.users(),
            interactions.items(),
            f,
            config.iterations,
            model.loss,
            seconds,
        )
    }
}
