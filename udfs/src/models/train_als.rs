//! `train_als(interactions, path, factors [, iterations [, regularization [, alpha [, seed]]]])`:
//! trains iALS ([`super::als`]) on (user, item[, weight]) rows, saves it at `path`, and returns
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
use super::training::{finish, interactions_and_path, progress_mode, report, report_schema};
use crate::table_function::interactions::Interactions;
use crate::table_function::{Arguments, Planned, Run, TableFunction};

const NAME: &str = "train_als";

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Trains implicit-feedback matrix factorisation (iALS: confidence alpha·weight on observed pairs, conjugate-gradient updates) on (user, item[, weight]) rows and saves it at path (safetensors, with path.json holding its settings and id maps). Returns one report row (model, users, items, factors, iterations, loss, seconds); model_vectors(path, 'users' | 'items') reads the vectors back.",
    syntax_example = "train_als(interactions, path, factors [, iterations [, regularization [, alpha [, seed]]]])",
    sql_example = r#"```sql
> SELECT * FROM train_als('events', 'models/als.safetensors', 128, 20, 1.0, 2.0, 42);
```"#,
    argument(
        name = "interactions",
        description = "A table or view of (user, item[, weight]) rows."
    ),
    argument(name = "path", description = "Where to save the model."),
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
    )
)]
#[derive(Debug, Default)]
pub struct TrainAls;

/// Options of one call.
#[derive(Debug, Serialize, Deserialize)]
struct Options {
    path: String,
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
        args.expect_count(3..=7)?;
        let (input, path) = interactions_and_path(args, "user, item[, weight]")?;
        let config = AlsConfig {
            factors: args.positive_integer(2, "factors", Some(64))?,
            iterations: args.positive_integer(3, "iterations", Some(15))?,
            regularization: args.number(4, "regularization", 0.0..=f64::INFINITY, 0.01)? as f32,
            alpha: args.number(5, "alpha", 0.0..=f64::INFINITY, 1.0)? as f32,
            seed: args.seed(6)?,
        };
        Planned::new(vec![input], &Options { path, config }, report_schema())
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { path, config } = run.call.options()?;
        let path = Path::new(&path);
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
        finish(&progress, run, model.loss, advice, &file, path, &summary)?;
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
}
