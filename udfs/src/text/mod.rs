//! Text embeddings for item content. `embed_text(text [, dim])` embeds each text on its own
//! (hashed n-grams, sublinear term frequency, L2-normalised); `embed_texts(table [, dim])`
//! embeds a whole `(id, text)` table with TF-IDF weights learned from that table. Both need no
//! model and are deterministic. `embed_text(text, 'model_dir')` instead runs a local
//! sentence-transformer ([`bert`]). A text without words (empty, NULL, only punctuation) has
//! no embedding: NULL.

pub mod bert;
pub mod hashed;

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, RecordBatch};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};
use datafusion_macros::user_doc;

use crate::compute::{Computation, ComputeTable, Interrupt};
use crate::recommend::{literal, resolve, text_argument};
use crate::vector::{to_columnar, vector_type};

/// Buckets when no dimension is given.
pub const DEFAULT_DIM: usize = 256;

fn dimension(function: &str, value: Option<&ScalarValue>) -> Result<usize> {
    match value {
        None => Ok(DEFAULT_DIM),
        Some(v) => match v.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(d))) if (1..=65536).contains(&d) => Ok(d as usize),
            _ => plan_err!("{function}: dim must be an integer literal from 1 to 65536, got {v}"),
        },
    }
}

/// Vectors of `dim` from optional embeddings (None → NULL row).
fn vectors(rows: Vec<Option<Vec<f32>>>, dim: usize) -> Result<FixedSizeListArray> {
    let nulls = NullBuffer::from_iter(rows.iter().map(Option::is_some));
    let values: Vec<f32> = rows
        .into_iter()
        .flat_map(|r| r.unwrap_or_else(|| vec![0.0; dim]))
        .collect();
    Ok(FixedSizeListArray::try_new(
        Arc::new(Field::new_list_field(DataType::Float32, true)),
        dim as i32,
        Arc::new(Float32Array::from(values)),
        (nulls.null_count() > 0).then_some(nulls),
    )?)
}

#[user_doc(
    doc_section(label = "Text Functions"),
    description = "A model-free embedding of a text: its words, word pairs and character 3–5-grams hashed into dim buckets (default 256), weighted 1 + ln(count), L2-normalised. Similar wording gives similar vectors; deterministic. With a directory instead of dim, the sentence-transformer there (config.json, tokenizer.json, model.safetensors; BERT family, e.g. all-MiniLM-L6-v2) embeds the text: mean pooling, L2-normalised. NULL for a text without words. For TF-IDF weights over a whole table, use the table function embed_texts(table [, dim]).",
    syntax_example = "embed_text(text [, dim | model_dir])",
    sql_example = r#"```sql
> SELECT item_id, embed_text(title || ' ' || description) AS text_vector FROM items;
```"#,
    argument(name = "text", description = "The text."),
    argument(
        name = "dim",
        description = "Number of dimensions, an integer literal (default 256)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct EmbedText {
    signature: Signature,
}

impl Default for EmbedText {
    fn default() -> Self {
        Self::new()
    }
}

impl EmbedText {
    pub fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![TypeSignature::Any(1), TypeSignature::Any(2)],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for EmbedText {
    fn name(&self) -> &str {
        "embed_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(vector_type(DEFAULT_DIM))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let text = args.arg_fields[0].data_type();
        if !matches!(
            text,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
        ) {
            return plan_err!("embed_text: argument 1 must be text, got {text}");
        }
        if args.arg_fields.len() == 2 && args.scalar_arguments[1].is_none() {
            return plan_err!("embed_text: argument 2 must be a literal: a dimension or a model directory");
        }
        let dim = match args.scalar_arguments.get(1).copied().flatten() {
            Some(
                ScalarValue::Utf8(Some(dir)) | ScalarValue::Utf8View(Some(dir)) | ScalarValue::LargeUtf8(Some(dir)),
            ) => {
                bert::config(std::path::Path::new(dir))
                    .map_err(|e| datafusion::common::DataFusionError::Plan(e.message().to_string()))?
                    .hidden_size
            }
            other => dimension("embed_text", other)?,
        };
        Ok(Arc::new(Field::new(self.name(), vector_type(dim), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let dim = match args.return_field.data_type() {
            DataType::FixedSizeList(_, d) => *d as usize,
            other => return plan_err!("embed_text: unexpected return type {other}"),
        };
        let all_scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let texts = ColumnarValue::values_to_arrays(&args.args[..1])?;
        let texts = cast(&texts[0], &DataType::Utf8)?;
        let texts = texts.as_string::<i32>();
        let model_dir = match args.args.get(1) {
            Some(ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(dir)) | ScalarValue::Utf8View(Some(dir)) | ScalarValue::LargeUtf8(Some(dir)),
            )) => Some(dir.clone()),
            _ => None,
        };
        let has_words = |row: usize| texts.is_valid(row) && texts.value(row).chars().any(char::is_alphanumeric);
        let rows = match model_dir {
            None => (0..texts.len())
                .map(|row| match has_words(row) {
                    true => hashed::embed(&hashed::features(texts.value(row)), dim, None),
                    false => None,
                })
                .collect(),
            Some(dir) => {
                let model = bert::load(std::path::Path::new(&dir))?;
                let wanted: Vec<usize> = (0..texts.len()).filter(|&row| has_words(row)).collect();
                let inputs: Vec<&str> = wanted.iter().map(|&row| texts.value(row)).collect();
                let mut embedded = model.embed(&inputs)?.into_iter();
                let mut rows: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
                for row in wanted {
                    rows[row] = embedded.next();
                }
                rows
            }
        };
        let result: ArrayRef = Arc::new(vectors(rows, dim)?);
        to_columnar(result, all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// The text scalar functions, built once.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    static UDFS: LazyLock<Vec<Arc<ScalarUDF>>> =
        LazyLock::new(|| vec![Arc::new(ScalarUDF::new_from_impl(EmbedText::new()))]);
    UDFS.clone()
}

const EMBED_TEXTS: &str = "embed_texts";

/// (name, syntax, description) of `embed_texts`, for `\df`.
pub const DOC: (&str, &str, &str) = (
    EMBED_TEXTS,
    "embed_texts(table [, dim])",
    "TF-IDF text embeddings of a whole (id, text) table: embed_text's hashed n-grams weighted by inverse document \
     frequency over the table. Rows: (id, vector).",
);

/// The `embed_texts` table function.
#[derive(Debug, Default)]
pub struct EmbedTexts;

impl TableFunctionImpl for EmbedTexts {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.is_empty() || exprs.len() > 2 {
            return plan_err!("{EMBED_TEXTS}: expected {}", DOC.1);
        }
        let name = text_argument(EMBED_TEXTS, exprs, 0, "table")?.unwrap_or_default();
        let table = resolve(EMBED_TEXTS, args.session(), &name, "texts")?;
        let dim = dimension(EMBED_TEXTS, literal(exprs, 1).as_ref())?;
        let input = table.schema();
        if input.fields().len() < 2 {
            return plan_err!("{EMBED_TEXTS}: the table needs (id, text) columns");
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new(input.field(0).name(), input.field(0).data_type().clone(), true),
            Field::new("vector", vector_type(dim), true),
        ]));
        let output = Arc::clone(&schema);
        let compute: Computation = Arc::new(move |tables: &[RecordBatch], _: &Interrupt| {
            let texts = cast(tables[0].column(1), &DataType::Utf8)?;
            let texts = texts.as_string::<i32>();
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
                Arc::clone(&output),
                vec![Arc::clone(tables[0].column(0)), Arc::new(vectors(rows, dim)?)],
            )?)
        });
        Ok(Arc::new(ComputeTable {
            name: "EmbedTextsExec",
            detail: format!("dim={dim}"),
            inputs: vec![table],
            schema,
            compute,
        }))
    }
}
