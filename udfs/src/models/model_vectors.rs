//! `model_vectors(model, 'users' | 'items')`: a saved model's user or item vectors as
//! (id, vector) rows, ready for `recommend()`. The file is read when the query is planned (to
//! know the columns) and again when it runs, so a model retrained in between is read whole.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};

use super::directory::model_argument;
use super::file::{ModelFile, named_error};
use crate::table_function::{Arguments, Planned, Run, TableFunction};
use crate::vector::{vector_array, vector_type};

const NAME: &str = "model_vectors";

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "The user or item vectors of a model saved by a training function, as (user_id | item_id, vector) rows. A missing, damaged or foreign file, or a model without the requested vectors, is an error that says which.",
    syntax_example = "model_vectors(model, side => 'users' | 'items')",
    sql_example = r#"```sql
> CREATE TABLE item_vectors AS SELECT * FROM model_vectors('als_v1', 'items');
```"#,
    argument(
        name = "model",
        description = "A model name (in the models directory) or the path of a model file."
    ),
    argument(name = "side", description = "'users' or 'items'.")
)]
#[derive(Debug, Default)]
pub struct ModelVectors;

/// Options of one call.
#[derive(Debug, Serialize, Deserialize)]
struct Options {
    path: String,
    side: String,
}

fn schema(side: &str, id_type: &DataType, dim: usize) -> SchemaRef {
    let id_name = if side == "users" { "user_id" } else { "item_id" };
    Arc::new(Schema::new(vec![
        Field::new(id_name, id_type.clone(), true),
        Field::new("vector", vector_type(dim), false),
    ]))
}

impl TableFunction for ModelVectors {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(2..=2)?;
        let path = model_argument(args, 0)?;
        let side = args.text(1, "side")?.unwrap_or_default();
        if side != "users" && side != "items" {
            return Err(args.invalid(1, "side", "'users' or 'items'", format!("'{side}'")));
        }
        let file = ModelFile::load(Path::new(&path), None).map_err(named_error(NAME))?;
        let (_, dim, ids) = file.matrix(&side, &side).map_err(named_error(NAME))?;
        let schema = schema(&side, ids.data_type(), dim);
        Planned::new(Vec::new(), &Options { path, side }, schema)
    }

    fn compute(&self, _inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { path, side } = run.call.options()?;
        let file = ModelFile::load(Path::new(&path), None).map_err(named_error(NAME))?;
        let (values, dim, ids) = file.matrix(&side, &side).map_err(named_error(NAME))?;
        if schema(&side, ids.data_type(), dim) != *run.schema {
            return exec_err!("{NAME}: model '{path}' changed since the query was planned; run it again");
        }
        let vectors = vector_array(&vector_type(dim), values.to_vec(), dim, ids.len(), None)?;
        Ok(RecordBatch::try_new(
            Arc::clone(run.schema),
            vec![Arc::clone(ids), vectors],
        )?)
    }
}
