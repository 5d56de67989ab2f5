//! `models()`: the models kept by name in the session's models directory ([`super::directory`]),
//! one row each — name, kind, when it was made, the training call with every option, the rows it
//! was trained on, users, items, dimensions, final loss and the size of its weights — read from
//! the descriptions beside the weights, as BigQuery ML lists the models of a dataset.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};

use super::directory::{model_name, models_directory};
use super::model_info::{Listed, created_at_column, created_at_type, listed};
use crate::table_function::{Arguments, Planned, Run, TableFunction};

const NAME: &str = "models";

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "The models kept by name in the models directory (--models DIR, else $RECFUSION_MODELS, else recfusion/models in the user's data directory): one row per model with its name, kind, when it was made, the training call with every option (defaults included), the rows it was trained on, users, items, dimensions, final loss, size of its weights in bytes and the file's path. The shell's \\models shows the same. DROP MODEL name removes one.",
    syntax_example = "models()",
    sql_example = r#"```sql
> SELECT name, kind, created_at, call FROM models() ORDER BY created_at DESC;
```"#
)]
#[derive(Debug, Default)]
pub struct Models;

#[derive(Debug, Serialize, Deserialize)]
struct Options {
    directory: String,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("created_at", created_at_type(), true),
        Field::new("call", DataType::Utf8, true),
        Field::new("rows", DataType::Int64, true),
        Field::new("users", DataType::Int64, true),
        Field::new("items", DataType::Int64, true),
        Field::new("dim", DataType::Int64, true),
        Field::new("loss", DataType::Float64, true),
        Field::new("bytes", DataType::Int64, true),
        Field::new("path", DataType::Utf8, false),
    ]))
}

impl TableFunction for Models {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(0..=0)?;
        let directory = models_directory(args.session().config()).display().to_string();
        Planned::new(Vec::new(), &Options { directory }, schema())
    }

    fn compute(&self, _inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { directory } = run.call.options()?;
        let directory = std::path::PathBuf::from(directory);
        let (names, listed): (Vec<String>, Vec<Listed>) = listed(NAME, &directory)?
            .into_iter()
            .filter_map(|model| Some((model_name(&directory, &model.0)?, Listed::new(model))))
            .unzip();
        let training = |key: &str, row: &Listed| row.summary.training[key].clone();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(names)),
            Arc::new(StringArray::from_iter_values(
                listed.iter().map(|r| r.summary.kind.clone()),
            )),
            created_at_column(&listed)?,
            Arc::new(
                listed
                    .iter()
                    .map(|r| training("call", r).as_str().map(str::to_string))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                listed
                    .iter()
                    .map(|r| training("rows", r).as_i64())
                    .collect::<Int64Array>(),
            ),
            Arc::new(listed.iter().map(Listed::users).collect::<Int64Array>()),
            Arc::new(listed.iter().map(Listed::items).collect::<Int64Array>()),
            Arc::new(listed.iter().map(Listed::dim).collect::<Int64Array>()),
            Arc::new(
                listed
                    .iter()
                    .map(|r| training("loss", r).as_f64().or_else(|| r.loss()))
                    .collect::<Float64Array>(),
            ),
            Arc::new(listed.iter().map(|r| r.bytes).collect::<Int64Array>()),
            Arc::new(StringArray::from_iter_values(
                listed.iter().map(|r| r.path.display().to_string()),
            )),
        ];
        Ok(RecordBatch::try_new(Arc::clone(run.schema), columns)?)
    }
}
