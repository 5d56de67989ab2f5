//! A tiny random-weight BERT sentence-transformer directory (config.json, vocab.txt,
//! tokenizer.json, model.safetensors) for tests that need a model directory but not a
//! pretrained model's quality.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::Tokenizer;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;

/// The model's vocabulary; any other word is [UNK].
pub const WORDS: [&str; 14] = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "warm", "reading", "lamp", "for", "the", "desk", "sharp", "kitchen",
    "knife",
];

/// Writes the model into `dir`: 8 dimensions, one layer, the words of [`WORDS`].
pub fn write_tiny_bert(dir: &Path) {
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
