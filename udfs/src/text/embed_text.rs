//! `embed_text(text [, dim | model_dir])`: one text's embedding — hashed n-grams, or a local
//! sentence-transformer when given its directory.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion_macros::user_doc;

use super::{DEFAULT_DIM, bert, dimension, hashed, vectors};
use crate::vector::{to_columnar, vector_type};

#[user_doc(
    doc_section(label = "Text Functions"),
    description = "A model-free embedding of a text: its words, word pairs and character 3–5-grams hashed into dim buckets (default 256), weighted 1 + ln(count), L2-normalised. Similar wording gives similar vectors; deterministic. With a directory instead of dim, the sentence-transformer there (config.json, tokenizer.json, model.safetensors; BERT family, e.g. all-MiniLM-L6-v2) embeds the text, truncated, pooled and normalised as the folder's sentence_bert_config.json, 1_Pooling/config.json and modules.json say (without them: mean pooling, L2-normalised). NULL for a text without words. For TF-IDF weights over a whole table, use the table function embed_texts(table [, dim]).",
    syntax_example = "embed_text(text [, dim => 256 | model_dir => 'dir'])",
    sql_example = r#"```sql
> SELECT item_id, embed_text(title || ' ' || description) AS text_vector FROM items;
```"#,
    argument(name = "text", description = "The text."),
    argument(
        name = "dim | model_dir",
        description = "Number of dimensions, an integer literal (default 256); or the directory of a sentence-transformer model, a text literal."
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
                bert::config("embed_text", std::path::Path::new(dir))
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
                let model = bert::load("embed_text", std::path::Path::new(&dir))?;
                let wanted: Vec<usize> = (0..texts.len()).filter(|&row| has_words(row)).collect();
                let inputs: Vec<&str> = wanted.iter().map(|&row| texts.value(row)).collect();
                let mut embedded = model.embed("embed_text", &inputs)?.into_iter();
                let mut rows: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
                for row in wanted {
                    rows[row] = embedded.next();
                }
                rows
            }
        };
        let result: ArrayRef = vectors(rows, dim)?;
        to_columnar(result, all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
