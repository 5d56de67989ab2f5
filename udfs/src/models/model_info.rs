//! `model_info(path)`: what a saved model is — kind, dimensions, users, items, training
//! settings, final loss, validation figure, when it was created — one row per model file,
//! read from the descriptions recfusion writes beside the weights.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::file::{ModelSummary, named_error, summary};
use crate::table_function::{Arguments, Planned, Run, TableFunction};

const NAME: &str = "model_info";

/// Settings shown in their own columns, not among the training settings.
const OWN_COLUMNS: [&str; 5] = ["loss", "validation_ndcg10", "items", "inputs", "slope"];

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "What saved models are: one row per model file with its kind (als, item2vec, sasrec, two_tower, attention_query), dimensions, numbers of users and items (NULL when the model has none), training settings as JSON, final training loss, validation NDCG@10 (SASRec), when it was written and the size of its weights. Given a directory, every model in it.",
    syntax_example = "model_info(path)",
    sql_example = r#"```sql
> SELECT kind, dim, users, items, loss, created_at FROM model_info('models/');
```"#,
    argument(name = "path", description = "A model file, or a directory of model files.")
)]
#[derive(Debug, Default)]
pub struct ModelInfo;

#[derive(Debug, Serialize, Deserialize)]
struct Options {
    path: String,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("dim", DataType::Int64, true),
        Field::new("users", DataType::Int64, true),
        Field::new("items", DataType::Int64, true),
        Field::new("settings", DataType::Utf8, false),
        Field::new("loss", DataType::Float64, true),
        Field::new("validation_ndcg10", DataType::Float64, true),
        Field::new("created_at", created_at_type(), true),
        Field::new("bytes", DataType::Int64, false),
    ]))
}

fn created_at_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The models at `path` with their descriptions: the file itself (an error when it is not a
/// model), or every model in the directory, by name.
fn models(path: &Path) -> Result<Vec<(PathBuf, ModelSummary)>> {
    if !path.is_dir() {
        return Ok(vec![(path.to_path_buf(), summary(path).map_err(named_error(NAME))?)]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| named_error(NAME)(e.into()))?;
    let mut models: Vec<(PathBuf, ModelSummary)> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|file| file.is_file())
        .filter_map(|file| summary(&file).ok().map(|model| (file, model)))
        .collect();
    models.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(models)
}

impl TableFunction for ModelInfo {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(1..=1)?;
        let path = args.required_text(0, "path", "a model file or a directory")?;
        if !Path::new(&path).exists() {
            return Err(args.invalid(
                0,
                "path",
                "a model file or a directory",
                format!("'{path}', which does not exist"),
            ));
        }
        Planned::new(Vec::new(), &Options { path }, schema())
    }

    fn compute(&self, _inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { path } = run.call.options()?;
        let rows: Vec<(PathBuf, ModelSummary, u64)> = models(Path::new(&path))?
            .into_iter()
            .map(|(file, summary)| {
                let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                (file, summary, bytes)
            })
            .collect();
        let number = |config: &Value, key: &str| config[key].as_f64();
        let whole = |config: &Value, key: &str| config[key].as_u64().and_then(|n| i64::try_from(n).ok());
        let count =
            |summary: &ModelSummary, name: &str| summary.id_counts.get(name).and_then(|&n| i64::try_from(n).ok());
        let settings = |config: &Value| {
            let mut settings = config.as_object().cloned().unwrap_or_default();
            settings.retain(|key, _| !OWN_COLUMNS.contains(&key.as_str()));
            Value::Object(settings).to_string()
        };
        let created_at: StringArray = rows.iter().map(|(_, s, _)| s.created_at.clone()).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                rows.iter()
                    .map(|(f, _, _)| Some(f.display().to_string()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|(_, s, _)| Some(s.kind.clone()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|(_, s, _)| whole(&s.config, "dim").or_else(|| whole(&s.config, "factors")))
                    .collect::<Int64Array>(),
            ),
            Arc::new(rows.iter().map(|(_, s, _)| count(s, "users")).collect::<Int64Array>()),
            Arc::new(
                rows.iter()
                    .map(|(_, s, _)| count(s, "items").or_else(|| whole(&s.config, "items")))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|(_, s, _)| Some(settings(&s.config)))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|(_, s, _)| number(&s.config, "loss"))
                    .collect::<Float64Array>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|(_, s, _)| number(&s.config, "validation_ndcg10"))
                    .collect::<Float64Array>(),
            ),
            cast(&created_at, &created_at_type())?,
            Arc::new(
                rows.iter()
                    .map(|(_, _, b)| i64::try_from(*b).ok())
                    .collect::<Int64Array>(),
            ),
        ];
        Ok(RecordBatch::try_new(Arc::clone(run.schema), columns)?)
    }
}
