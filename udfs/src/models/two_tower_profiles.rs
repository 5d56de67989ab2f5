//! `two_tower_profiles(model, user_features)`: profiles from users' features alone (cold start
//! included) by a saved two-tower model ([`super::two_tower`]), as (user, vector) rows for
//! `recommend()` with `model_vectors(model, 'items')`.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::{DataFusionError, Result, exec_datafusion_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};

use super::directory::model_argument;
use super::file::{ModelFile, named_error};
use super::two_tower::{self, FeatureSpec, TwoTowerConfig, encode, spec_from_json};
use crate::table_function::{Arguments, Planned, Run, TableFunction};
use crate::vector::{vector_array, vector_type};

const NAME: &str = "two_tower_profiles";

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Profiles from users' features alone (users without history included) by a saved two-tower model (train_two_tower): (user, vector) rows, for recommend() with model_vectors(model, 'items').",
    syntax_example = "two_tower_profiles(model, user_features)",
    sql_example = r#"```sql
> SELECT * FROM two_tower_profiles('tower', 'users');
```"#,
    argument(
        name = "model",
        description = "A model saved by train_two_tower: its name or its file's path."
    ),
    argument(
        name = "user_features",
        description = "A table or view of (user, feature, …) rows with the columns the model was trained on."
    )
)]
#[derive(Debug, Default)]
pub struct TwoTowerProfiles;

/// Options of one call.
#[derive(Debug, Serialize, Deserialize)]
struct Options {
    path: String,
}

/// The saved model at `path`, its settings and its feature encoding.
fn load(path: &str) -> Result<(ModelFile, TwoTowerConfig, FeatureSpec)> {
    let file = ModelFile::load(Path::new(path), Some("two_tower")).map_err(named_error(NAME))?;
    let value = |key: &str| file.setting(key).map_err(named_error(NAME));
    let config = TwoTowerConfig {
        inputs: value("inputs")?,
        items: value("items")?,
        dim: value("dim")?,
        hidden: value("hidden")?,
        epochs: 0,
        learning_rate: 0.0,
        seed: 0,
    };
    let spec = spec_from_json(&file.config["features"])
        .ok_or_else(|| DataFusionError::Plan(format!("{NAME}: model '{path}' has a damaged configuration")))?;
    Ok((file, config, spec))
}

impl TableFunction for TwoTowerProfiles {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(2..=2)?;
        let path = model_argument(args, 0)?;
        let input = args.required_input(1, "user_features", None)?;
        let (_, config, _) = load(&path)?;
        let schema = input.table.provider.schema();
        let output = Arc::new(Schema::new(vec![
            Field::new(schema.field(0).name(), schema.field(0).data_type().clone(), true),
            Field::new("vector", vector_type(config.dim), false),
        ]));
        Planned::new(vec![input], &Options { path }, output)
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { path } = run.call.options()?;
        let (file, config, spec) = load(&path)?;
        let model = two_tower::load(&config, file.network()).map_err(|e| {
            DataFusionError::Execution(format!("{NAME}: model '{path}' does not match its configuration: {e}"))
        })?;
        let batch = &inputs[0];
        let encoded = encode(batch, &spec).map_err(named_error(NAME))?;
        let rows = batch.num_rows();
        let profiles = candle_core::Tensor::from_vec(encoded, (rows, config.inputs), &candle_core::Device::Cpu)
            .and_then(|x| model.users(&x))
            .and_then(|u| u.flatten_all())
            .and_then(|u| u.to_vec1::<f32>())
            .map_err(|e| exec_datafusion_err!("{NAME}: {e}"))?;
        let vectors = vector_array(&vector_type(config.dim), profiles, config.dim, rows, None)?;
        let ids: ArrayRef = Arc::clone(batch.column(0));
        Ok(RecordBatch::try_new(Arc::clone(run.schema), vec![ids, vectors])?)
    }
}
