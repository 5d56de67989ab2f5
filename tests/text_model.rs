//! `embed_text(text, 'model_dir')` with a sentence-transformer directory: the test writes a tiny
//! random-weight BERT (config.json, tokenizer.json, model.safetensors) and checks what a user
//! relies on — the dimension comes from the model, vectors are unit length, a text embeds the
//! same alone or padded in a batch, texts without words give NULL, and a bad directory is a
//! clear error.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert::{BertModel, Config};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Float32Type;
use recfusion::{SessionOptions, execute_sql, new_session};
use tokenizers::Tokenizer;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;

const WORDS: [&str; 14] = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "warm", "reading", "lamp", "for", "the", "desk", "sharp", "kitchen",
    "knife",
];

fn write_tiny_bert(dir: &Path) {
    let config = serde_json::json!({
        "vocab_size": WORDS.len(), "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 16, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
        "max_position_embeddings": 32, "type_vocab_size": 2, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "pad_token_id": 0, "model_type": "bert"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let config: Config = serde_json::from_value(config).unwrap();
    let weights = VarMap::new();
    BertModel::load(VarBuilder::from_varmap(&weights, DType::F32, &Device::Cpu), &config).unwrap();
    weights.save(dir.join("model.safetensors")).unwrap();

    let vocab = dir.join("vocab.txt");
    std::fs::write(&vocab, WORDS.join("\n")).unwrap();
    let model = WordPiece::from_file(vocab.to_str().unwrap())
        .unk_token("[UNK]".to_string())
        .build()
        .unwrap();
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_normalizer(Some(BertNormalizer::default())).unwrap();
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_post_processor(Some(
        TemplateProcessing::builder()
            .try_single("[CLS] $A [SEP]")
            .unwrap()
            .special_tokens(vec![("[CLS]", 2), ("[SEP]", 3)])
            .build()
            .unwrap(),
    ));
    tokenizer.save(dir.join("tokenizer.json"), false).unwrap();
}

fn floats(batch: &RecordBatch, column: usize, row: usize) -> Vec<f32> {
    let list = batch.column(column).as_fixed_size_list();
    list.value(row).as_primitive::<Float32Type>().values().to_vec()
}

#[tokio::test]
async fn sentence_transformer_directory() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path());
    let model = dir.path().display().to_string();
    let ctx = new_session(&SessionOptions::default()).unwrap();
    let sql = format!(
        "SELECT embed_text(t, '{model}') AS v, arrow_typeof(embed_text(t, '{model}')) AS kind FROM (VALUES \
         ('a warm reading lamp'), ('sharp kitchen knife for the desk, a reading lamp and the warm lamp'), \
         (''), ('...'), (NULL)) AS s(t)"
    );
    let batches = execute_sql(&ctx, &sql).await.unwrap().collect().await.unwrap();
    let batch = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(
        batch.column(1).as_string::<i32>().value(0),
        "FixedSizeList(8 x Float32)"
    );
    let lamp = floats(&batch, 0, 0);
    let norm: f32 = lamp.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    assert!(batch.column(0).is_null(2) && batch.column(0).is_null(3) && batch.column(0).is_null(4));

    // Alone, the short text has no padding; in the batch above it was padded to the long one.
    let alone = execute_sql(&ctx, &format!("SELECT embed_text('a warm reading lamp', '{model}')"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let alone = floats(&alone[0], 0, 0);
    for (a, b) in lamp.iter().zip(&alone) {
        assert!((a - b).abs() < 1e-5, "{lamp:?} vs {alone:?}");
    }
    assert_ne!(lamp, floats(&batch, 0, 1));

    let error = execute_sql(&ctx, "SELECT embed_text('lamp', '/nonexistent/model')")
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("'/nonexistent/model' is not a usable sentence-transformer directory"),
        "{error}"
    );
}
