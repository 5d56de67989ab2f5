//! Sentence embeddings from a local BERT-family model directory (`config.json`,
//! `tokenizer.json`, `model.safetensors`, as sentence-transformers models such as
//! all-MiniLM-L6-v2 ship them), computed as sentence-transformers does: token embeddings
//! mean-pooled over the attention mask, then L2-normalised. Run with candle on the CPU (its
//! matrix multiplies use every core), in batches; each model loads once per process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use datafusion::common::{DataFusionError, Result};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

/// Texts per forward pass.
const BATCH: usize = 32;

/// A loaded sentence-transformer.
pub struct SentenceModel {
    model: BertModel,
    tokenizer: Tokenizer,
}

fn model_error(dir: &Path, what: &str, error: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!(
        "embed_text: '{}' is not a usable sentence-transformer directory: {what}: {error}",
        dir.display()
    ))
}

/// The model's configuration, read from `config.json`.
pub fn config(dir: &Path) -> Result<Config> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| model_error(dir, "config.json", e))?;
    serde_json::from_str(&text).map_err(|e| model_error(dir, "config.json", e))
}

/// The model in `dir`, loaded on first use and shared afterwards.
pub fn load(dir: &Path) -> Result<Arc<SentenceModel>> {
    static MODELS: LazyLock<Mutex<HashMap<PathBuf, Arc<SentenceModel>>>> = LazyLock::new(Default::default);
    let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    if let Some(model) = MODELS.lock().expect("model cache").get(&key) {
        return Ok(Arc::clone(model));
    }
    let config = config(dir)?;
    let mut tokenizer =
        Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| model_error(dir, "tokenizer.json", e))?;
    tokenizer.with_padding(Some(PaddingParams::default()));
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: config.max_position_embeddings.min(512),
            ..Default::default()
        }))
        .map_err(|e| model_error(dir, "tokenizer.json", e))?;
    let weights = dir.join("model.safetensors");
    // SAFETY: the weights file is memory-mapped read-only; recfusion never writes it.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu) }
        .map_err(|e| model_error(dir, "model.safetensors", e))?;
    let model = BertModel::load(vb, &config).map_err(|e| model_error(dir, "model.safetensors", e))?;
    let loaded = Arc::new(SentenceModel { model, tokenizer });
    MODELS.lock().expect("model cache").insert(key, Arc::clone(&loaded));
    Ok(loaded)
}

impl SentenceModel {
    /// One unit vector per text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let failed = |e: &dyn std::fmt::Display| DataFusionError::Execution(format!("embed_text: {e}"));
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            let encodings = self
                .tokenizer
                .encode_batch(chunk.to_vec(), true)
                .map_err(|e| failed(&e))?;
            let length = encodings.first().map_or(0, |e| e.get_ids().len());
            let ids: Vec<u32> = encodings.iter().flat_map(|e| e.get_ids().to_vec()).collect();
            let mask: Vec<u32> = encodings.iter().flat_map(|e| e.get_attention_mask().to_vec()).collect();
            let shape = (chunk.len(), length);
            let run = || -> candle_core::Result<Vec<Vec<f32>>> {
                let ids = Tensor::from_vec(ids, shape, &Device::Cpu)?;
                let mask = Tensor::from_vec(mask, shape, &Device::Cpu)?;
                let types = ids.zeros_like()?;
                let tokens = self.model.forward(&ids, &types, Some(&mask))?;
                let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let summed = tokens.broadcast_mul(&mask)?.sum(1)?;
                let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
                let mean = summed.broadcast_div(&counts)?;
                let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
                mean.broadcast_div(&norms)?.to_vec2::<f32>()
            };
            vectors.extend(run().map_err(|e| failed(&e))?);
        }
        Ok(vectors)
    }
}
