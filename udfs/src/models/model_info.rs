//! `model_info(model)`: what a saved model is — kind, dimensions, users, items, training
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

use super::directory::{is_model_name, model_argument};
use super::file::{ModelSummary, listed_summary, named_error, summary};
use crate::table_function::{Arguments, Planned, Run, TableFunction};

const NAME: &str = "model_info";

/// Settings shown in their own columns, not among the training settings.
const OWN_COLUMNS: [&str; 5] = ["loss", "validation_ndcg10", "items", "inputs", "slope"];

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "What saved models are: one row per model file with its kind (als, item2vec, sasrec, two_tower, attention_query), dimensions, numbers of users and items (NULL when the model has none), training settings as JSON, final training loss, validation NDCG@10 (SASRec), when it was written and the size of its weights. Given a directory, every model in it.",
    syntax_example = "model_info(model)",
    sql_example = r#"```sql
> SELECT kind, dim, users, items, loss, created_at FROM model_info('als_v1');
```"#,
    argument(
        name = "model",
        description = "A model name (in the models directory) or file, or a directory of model files."
    )
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

pub(super) fn created_at_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The models at `path` with their descriptions: the file itself (an error when it is not a
/// model), or every model in the directory, by name.
fn models(path: &Path) -> Result<Vec<(PathBuf, ModelSummary)>> {
    if !path.is_dir() {
        return Ok(vec![(path.to_path_buf(), summary(path).map_err(named_error(NAME))?)]);
    }
    listed(NAME, path)
}

/// Every model in the directory `path`, by file name (a directory that does not exist holds
/// none); errors name `function`.
pub(super) fn listed(function: &str, path: &Path) -> Result<Vec<(PathBuf, ModelSummary)>> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return datafusion::common::plan_err!("{function}: cannot list the models in '{}': {e}", path.display());
        }
    };
    let mut models: Vec<(PathBuf, ModelSummary)> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|file| file.is_file())
        .filter_map(|file| listed_summary(&file).map(|model| Ok((file, model.map_err(named_error(function))?))))
        .collect::<Result<_>>()?;
    models.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(models)
}

/// What listings show of one model, read from its description.
pub(super) struct Listed {
    pub path: PathBuf,
    pub summary: ModelSummary,
    pub bytes: Option<i64>,
}

impl Listed {
    pub fn new((path, summary): (PathBuf, ModelSummary)) -> Self {
        let bytes = std::fs::metadata(&path).ok().and_then(|m| i64::try_from(m.len()).ok());
        Self { path, summary, bytes }
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.summary.config[key].as_f64()
    }

    fn whole(&self, key: &str) -> Option<i64> {
        self.summary.config[key].as_u64().and_then(|n| i64::try_from(n).ok())
    }

    fn count(&self, name: &str) -> Option<i64> {
        self.summary.id_counts.get(name).and_then(|&n| i64::try_from(n).ok())
    }

    pub fn dim(&self) -> Option<i64> {
        self.whole("dim").or_else(|| self.whole("factors"))
    }

    pub fn users(&self) -> Option<i64> {
        self.count("users")
    }

    pub fn items(&self) -> Option<i64> {
        self.count("items").or_else(|| self.whole("items"))
    }

    pub fn loss(&self) -> Option<f64> {
        self.number("loss")
    }

    pub fn validation_ndcg10(&self) -> Option<f64> {
        self.number("validation_ndcg10")
    }

    /// The training settings as JSON, without those shown in their own columns.
    pub fn settings(&self) -> String {
        let mut settings = self.summary.config.as_object().cloned().unwrap_or_default();
        settings.retain(|key, _| !OWN_COLUMNS.contains(&key.as_str()));
        Value::Object(settings).to_string()
    }
}

/// `created_at` texts as timestamps.
pub(super) fn created_at_column(rows: &[Listed]) -> Result<ArrayRef> {
    let created_at: StringArray = rows.iter().map(|r| r.summary.created_at.clone()).collect();
    Ok(cast(&created_at, &created_at_type())?)
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
        let given = args.required_text(0, "model", "a model name or file, or a directory")?;
        let path = match is_model_name(&given) && !Path::new(&given).is_dir() {
            true => model_argument(args, 0)?,
            false => given,
        };
        if !Path::new(&path).exists() {
            return Err(args.invalid(
                0,
                "model",
                "a model name or file, or a directory",
                format!("'{path}', which does not exist"),
            ));
        }
        Planned::new(Vec::new(), &Options { path }, schema())
    }

    fn compute(&self, _inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { path } = run.call.options()?;
        let rows: Vec<Listed> = models(Path::new(&path))?.into_iter().map(Listed::new).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.path.display().to_string()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.summary.kind.clone()),
            )),
            Arc::new(rows.iter().map(Listed::dim).collect::<Int64Array>()),
            Arc::new(rows.iter().map(Listed::users).collect::<Int64Array>()),
            Arc::new(rows.iter().map(Listed::items).collect::<Int64Array>()),
            Arc::new(StringArray::from_iter_values(rows.iter().map(Listed::settings))),
            Arc::new(rows.iter().map(Listed::loss).collect::<Float64Array>()),
            Arc::new(rows.iter().map(Listed::validation_ndcg10).collect::<Float64Array>()),
            created_at_column(&rows)?,
            Arc::new(rows.iter().map(|r| r.bytes.or(Some(0))).collect::<Int64Array>()),
        ];
        Ok(RecordBatch::try_new(Arc::clone(run.schema), columns)?)
    }
}
