//! Text embeddings for item content. `embed_text(text [, dim])` embeds each text on its own
//! (hashed n-grams, sublinear term frequency, L2-normalised); `embed_texts(table [, dim])`
//! embeds a whole `(id, text)` table with TF-IDF weights learned from that table. Both need no
//! model and are deterministic. `embed_text(text, 'model_dir')` instead runs a local
//! sentence-transformer ([`bert`]). A text without words (empty, NULL, only punctuation) has
//! no embedding: NULL.

pub mod bert;
pub mod embed_text;
pub mod embed_texts;
mod encoder;
pub mod hashed;

pub use embed_text::EmbedText;
pub use embed_texts::{EmbedTexts, EmbedTextsExec};

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::ScalarUDF;

use crate::vector::{vector_array, vector_type};

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
fn vectors(rows: Vec<Option<Vec<f32>>>, dim: usize) -> Result<ArrayRef> {
    let len = rows.len();
    let nulls = NullBuffer::from_iter(rows.iter().map(Option::is_some));
    let values: Vec<f32> = rows
        .into_iter()
        .flat_map(|r| r.unwrap_or_else(|| vec![0.0; dim]))
        .collect();
    vector_array(
        &vector_type(dim),
        values,
        dim,
        len,
        (nulls.null_count() > 0).then_some(nulls),
    )
}

/// The text scalar functions, built once.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    static UDFS: LazyLock<Vec<Arc<ScalarUDF>>> =
        LazyLock::new(|| vec![Arc::new(ScalarUDF::new_from_impl(EmbedText::new()))]);
    UDFS.clone()
}
