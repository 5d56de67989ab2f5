//! `embed_texts(table [, dim | model_dir])`: text embeddings of a whole (id, text) table —
//! `embed_text`'s hashed n-grams weighted by inverse document frequency over the table, or a
//! local sentence-transformer's embeddings, computed in batches of similar length with a
//! progress bar and prompt cancellation.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};

use super::{DEFAULT_DIM, bert, hashed, vectors};
use crate::models::progress::Progress;
use crate::models::training::progress_mode;
use crate::table_function::{Arguments, Planned, Run, TableFunction};
use crate::vector::vector_type;

const NAME: &str = "embed_texts";

#[user_doc(
    doc_section(label = "Text Functions"),
    description = "Text embeddings of a whole (id, text) table: TF-IDF — embed_text's hashed words, word pairs and character n-grams weighted by inverse document frequency over the table, L2-normalised — or, with a directory instead of dim, the sentence-transformer there (as embed_text runs it), in batches of texts of similar length on every core. NULL for a text without words. Rows: (id, vector).",
    syntax_example = "embed_texts(table [, dim => 256 | model_dir => 'dir'] [, id => 'column', text => 'column'])",
    sql_example = r#"```sql
> CREATE TABLE item_text AS SELECT * FROM embed_texts('items', dim => 256, id => 'item_id', text => 'title');
```"#,
    argument(name = "table", description = "A table or view of (id, text) rows."),
    argument(
        name = "dim | model_dir",
        description = "Number of dimensions, an integer from 1 to 65536 (default 256); or the directory of a sentence-transformer model, a text."
    ),
    argument(name = "id", description = "The column that holds the id (default: the first)."),
    argument(name = "text", description = "The column that holds the text (default: the second).")
)]
#[derive(Debug, Default)]
pub struct EmbedTexts;

/// Options of one call.
#[derive(Debug, Serialize, Deserialize)]
struct Options {
    dim: usize,
    /// The sentence-transformer's directory; TF-IDF when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model_dir: Option<String>,
}

/// Texts per progress step and cancellation check with a model.
const MODEL_STEP: usize = 512;

impl TableFunction for EmbedTexts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(1..=2)?;
        let texts = args.required_input(0, "texts", Some("id, text"))?;
        let (dim, model_dir) = match args.is_text(1) {
            true => {
                let dir = args.required_text(1, "model_dir", "a model directory")?;
                (bert::config(NAME, std::path::Path::new(&dir))?.hidden_size, Some(dir))
            }
            false => match args.positive_integer(1, "dim", Some(DEFAULT_DIM))? {
                dim if dim <= 65536 => (dim, None),
                dim => {
                    return Err(args.invalid(1, "dim", "an integer from 1 to 65536", ScalarValue::from(dim as u64)));
                }
            },
        };
        let input = texts.table.provider.schema();
        if input.fields().len() < 2 {
            return plan_err!("{NAME}: the table needs (id, text) columns");
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new(input.field(0).name(), input.field(0).data_type().clone(), true),
            Field::new("vector", vector_type(dim), true),
        ]));
        Planned::new(vec![texts], &Options { dim, model_dir }, schema)
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { dim, model_dir } = run.call.options()?;
        let texts = cast(inputs[0].column(1), &DataType::Utf8)?;
        let texts = texts.as_string::<i32>();
        if let Some(dir) = model_dir {
            let model = bert::load(NAME, std::path::Path::new(&dir))?;
            let has_words = |row: usize| texts.is_valid(row) && texts.value(row).chars().any(char::is_alphanumeric);
            // Longest first across the whole table, so every batch pads to texts of about its
            // own length (and the progress bar's estimate errs on the long side).
            let mut wanted: Vec<usize> = (0..texts.len()).filter(|&row| has_words(row)).collect();
            wanted.sort_by_key(|&row| std::cmp::Reverse(texts.value(row).len()));
            let steps = wanted.len().div_ceil(MODEL_STEP);
            let mut progress = Progress::counting(NAME, "batch", progress_mode(run), steps);
            let mut rows: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
            for (step, chunk) in wanted.chunks(MODEL_STEP).enumerate() {
                if run.interrupt.cancelled() {
                    progress.cancelled();
                    run.cancelled()?;
                }
                let inputs: Vec<&str> = chunk.iter().map(|&row| texts.value(row)).collect();
                for (&row, vector) in chunk.iter().zip(model.embed(NAME, &inputs)?) {
                    rows[row] = Some(vector);
                }
                progress.update(step + 1, None);
            }
            progress.finish(&format!("{} texts embedded", wanted.len()));
            return Ok(RecordBatch::try_new(
                Arc::clone(run.schema),
                vec![Arc::clone(inputs[0].column(0)), vectors(rows, dim)?],
            )?);
        }
        let documents: Vec<_> = (0..texts.len())
            .map(|row| match texts.is_valid(row) {
                true => hashed::features(texts.value(row)),
                false => Default::default(),
            })
            .collect();
        let weights = hashed::idf(&documents);
        let rows = documents
            .iter()
            .map(|d| hashed::embed(d, dim, Some(&weights)))
            .collect();
        Ok(RecordBatch::try_new(
            Arc::clone(run.schema),
            vec![Arc::clone(inputs[0].column(0)), vectors(rows, dim)?],
        )?)
    }
}
