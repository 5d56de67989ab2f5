//! `sasrec_profiles(model, interactions)`: each user's ordered history encoded by a saved
//! SASRec model ([`super::sasrec`]) into a profile in the item space, as (user, vector) rows
//! for `recommend()` with `model_vectors(model, 'items')`. Items the model does not know are
//! skipped; users with none known get no row.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::{DataFusionError, Result, exec_datafusion_err, plan_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};

use super::directory::model_argument;
use super::file::{ModelFile, named_error};
use super::sasrec::{self, SasRecConfig};
use super::training::histories;
use crate::table_function::interactions::IdIndex;
use crate::table_function::{Arguments, Planned, Run, TableFunction};
use crate::vector::{vector_array, vector_type};

const NAME: &str = "sasrec_profiles";

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Each user's ordered history encoded by a saved SASRec model (train_sasrec) into a profile in the item space: (user, vector) rows, for recommend() with model_vectors(model, 'items'). Items the model does not know are skipped; users with none known get no row.",
    syntax_example = "sasrec_profiles(model, interactions [, user => 'column', item => 'column', order => 'column'])",
    sql_example = r#"```sql
> CREATE TABLE profiles AS SELECT * FROM sasrec_profiles('sasrec_v1', 'events',
                                                         user => 'user_id', item => 'item_id', order => 'ts');
```"#,
    argument(
        name = "model",
        description = "A model saved by train_sasrec: its name or its file's path."
    ),
    argument(name = "interactions", description = "A table or view of (user, item, order) rows."),
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
pub struct SasRecProfiles;

/// Options of one call.
#[derive(Debug, Serialize, Deserialize)]
struct Options {
    path: String,
}

/// The saved model at `path` with the settings it was trained with.
fn load(path: &str) -> Result<(ModelFile, SasRecConfig)> {
    let file = ModelFile::load(Path::new(path), Some("sasrec")).map_err(named_error(NAME))?;
    let value = |key: &str| file.setting(key).map_err(named_error(NAME));
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
    Ok((file, config))
}

impl TableFunction for SasRecProfiles {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(2..=2)?;
        let path = model_argument(args, 0)?;
        let input = args.required_input(1, "interactions", Some("user, item, order"))?;
        let (_, config) = load(&path)?;
        let schema = input.table.provider.schema();
        if schema.fields().len() < 3 {
            return plan_err!("{NAME}: the interactions table needs (user, item, order) columns");
        }
        let output = Arc::new(Schema::new(vec![
            Field::new(schema.field(0).name(), schema.field(0).data_type().clone(), true),
            Field::new("vector", vector_type(config.dim), false),
        ]));
        Planned::new(vec![input], &Options { path }, output)
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { path } = run.call.options()?;
        let (file, config) = load(&path)?;
        let model = sasrec::load(config, file.network()).map_err(|e| {
            DataFusionError::Execution(format!("{NAME}: model '{path}' does not match its configuration: {e}"))
        })?;
        let known = file.matrix("items", "items").map_err(named_error(NAME))?.2;
        let batch = &inputs[0];
        let (user_ids, histories) = histories(batch)?;
        let (index, _, _) = IdIndex::build(known)?;
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
            .map_err(|e| exec_datafusion_err!("{NAME}: {e}"))?;
        let vectors = vector_array(&vector_type(config.dim), profiles, config.dim, users.len(), None)?;
        let ids = take(user_ids.as_ref(), &UInt32Array::from(users), None)?;
        Ok(RecordBatch::try_new(Arc::clone(run.schema), vec![ids, vectors])?)
    }
}
