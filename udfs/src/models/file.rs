//! Model files: the weights as safetensors at the path the user names, and beside them
//! (`<path>.json`) the model's kind, its configuration and the id maps that turn rows of the
//! weight matrices back into user and item ids. Both are written to temporary names and renamed
//! into place, so a failed training leaves the previous model whole.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{DataFusionError, Result, exec_datafusion_err, exec_err};
use serde_json::{Value, json};

/// A model as stored: named f32 matrices, a configuration, and id maps.
#[derive(Debug)]
pub struct ModelFile {
    pub kind: String,
    pub config: Value,
    pub matrices: HashMap<String, (Vec<f32>, usize, usize)>,
    /// Every tensor of the file (networks keep vectors and matrices here).
    pub tensors: HashMap<String, Tensor>,
    pub ids: HashMap<String, ArrayRef>,
}

fn json_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

fn ids_to_json(ids: &ArrayRef) -> Result<Value> {
    let data_type = ids.data_type().clone();
    let values: Vec<Value> = if data_type.is_integer() {
        let ints = cast(ids, &DataType::Int64)?;
        ints.as_primitive::<Int64Type>().iter().map(|v| json!(v)).collect()
    } else if matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        let texts = cast(ids, &DataType::Utf8)?;
        texts.as_string::<i32>().iter().map(|v| json!(v)).collect()
    } else {
        return exec_err!("model ids must be integers or strings, got {data_type}");
    };
    Ok(json!({ "type": data_type.to_string(), "values": values }))
}

/// An id map read back from the model's JSON: every id present, of the declared type, once.
fn ids_from_json(value: &Value) -> std::result::Result<ArrayRef, String> {
    let data_type: DataType = value["type"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .ok_or("its type is missing or unknown")?;
    let values = value["values"].as_array().ok_or("its values are missing")?;
    let array: ArrayRef = if data_type.is_integer() {
        let ints: Option<Vec<i64>> = values.iter().map(Value::as_i64).collect();
        Arc::new(Int64Array::from(
            ints.ok_or(format!("an id is not an integer, as type {data_type} says"))?,
        ))
    } else if matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        let texts: Option<Vec<&str>> = values.iter().map(Value::as_str).collect();
        Arc::new(StringArray::from(
            texts.ok_or(format!("an id is not text, as type {data_type} says"))?,
        ))
    } else {
        return Err(format!("ids of type {data_type} are not supported"));
    };
    let mut seen = std::collections::HashSet::with_capacity(values.len());
    if let Some(twice) = values.iter().find(|v| !seen.insert(v.to_string())) {
        return Err(format!("id {twice} appears twice"));
    }
    let typed = cast(&array, &data_type).map_err(|e| e.to_string())?;
    if typed.null_count() > 0 {
        return Err(format!("an id does not fit type {data_type}"));
    }
    Ok(typed)
}

impl ModelFile {
    /// Writes the model to `path` (+ `path.json`, which also keeps `training`: how the model
    /// was made), replacing an older one only when both files are complete; a failed write
    /// leaves no temporary file behind.
    pub fn save(&self, function: &str, path: &Path, training: Option<&Value>) -> Result<()> {
        let context =
            |e: &dyn std::fmt::Display| exec_datafusion_err!("{function}: saving model '{}': {e}", path.display());
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(context(&format!("directory '{}' does not exist", parent.display())));
        }
        let mut tensors = self
            .matrices
            .iter()
            .map(|(name, (values, rows, cols))| {
                let tensor = Tensor::from_vec(values.clone(), (*rows, *cols), &Device::Cpu).map_err(|e| context(&e))?;
                Ok((name.clone(), tensor))
            })
            .collect::<Result<HashMap<_, _>>>()?;
        tensors.extend(self.tensors.iter().map(|(name, t)| (name.clone(), t.clone())));
        let mut ids = serde_json::Map::new();
        for (name, array) in &self.ids {
            ids.insert(name.clone(), ids_to_json(array)?);
        }
        let meta = json!({
            "format": "recfusion-model",
            "version": 1,
            "kind": self.kind,
            "created_at": now_utc(),
            "config": self.config,
            "training": training,
            "ids": ids,
        });
        let weights_tmp = partial_path(path);
        let json_tmp = json_path(&weights_tmp);
        let written = write_both(&tensors, &meta, &weights_tmp, &json_tmp, path).map_err(|e| context(&e));
        if written.is_err() {
            let _ = std::fs::remove_file(&weights_tmp);
            let _ = std::fs::remove_file(&json_tmp);
        }
        written
    }

    /// Reads a model from `path` (of `kind`, when given); a missing, damaged or other kind of
    /// file is an error that says which.
    pub fn load(path: &Path, kind: Option<&str>) -> Result<Self> {
        let shown = path.display();
        if !path.is_file() {
            return exec_err!("model '{shown}' does not exist");
        }
        let meta_path = json_path(path);
        let meta = read_description(path)?;
        let found = meta["kind"].as_str().unwrap_or_default().to_string();
        if let Some(kind) = kind.filter(|k| *k != found) {
            return exec_err!("model '{shown}' is of kind '{found}', not '{kind}'");
        }
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| exec_datafusion_err!("model '{shown}': cannot read the weights: {e}"))?;
        let mut matrices = HashMap::new();
        for (name, tensor) in &tensors {
            let Ok((rows, cols)) = tensor.dims2() else { continue };
            let values = tensor
                .flatten_all()
                .and_then(|t| t.to_dtype(candle_core::DType::F32))
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| exec_datafusion_err!("model '{shown}': tensor {name}: {e}"))?;
            matrices.insert(name.clone(), (values, rows, cols));
        }
        let mut ids = HashMap::new();
        if let Some(maps) = meta["ids"].as_object() {
            for (name, value) in maps {
                let map = ids_from_json(value).map_err(|why| {
                    exec_datafusion_err!(
                        "model '{shown}': the id map '{name}' in '{}' is damaged: {why}",
                        meta_path.display()
                    )
                })?;
                ids.insert(name.clone(), map);
            }
        }
        Ok(Self {
            kind: found,
            config: meta["config"].clone(),
            matrices,
            tensors,
            ids,
        })
    }

    /// The network's tensors, saved under the `network.` prefix, by their own names.
    pub fn network(&self) -> HashMap<String, Tensor> {
        self.tensors
            .iter()
            .filter_map(|(name, t)| name.strip_prefix("network.").map(|n| (n.to_string(), t.clone())))
            .collect()
    }

    /// A whole-number setting of the model's configuration.
    pub fn setting(&self, key: &str) -> Result<usize> {
        match self.config[key].as_u64() {
            Some(value) => Ok(value as usize),
            None => exec_err!("the model's configuration has no whole number '{key}'; the file is damaged"),
        }
    }

    /// The matrix `name` with one row per id of `ids_name`.
    pub fn matrix(&self, name: &str, ids_name: &str) -> Result<(&[f32], usize, &ArrayRef)> {
        let missing = |what: &str| DataFusionError::Execution(format!("the model has no {what} '{name}'"));
        let (values, rows, cols) = self.matrices.get(name).ok_or_else(|| missing("matrix"))?;
        let ids = self.ids.get(ids_name).ok_or_else(|| missing("id map for"))?;
        if ids.len() != *rows {
            return exec_err!(
                "the model's matrix '{name}' has {rows} rows but its id map {} ids; the files do not belong together",
                ids.len()
            );
        }
        Ok((values, *cols, ids))
    }
}

/// A temporary name beside `path` that no other writer uses: two trainings of one model, in
/// two processes or two threads, each write their own files and the last rename wins.
fn partial_path(path: &Path) -> PathBuf {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let write = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial-{}-{write}", std::process::id()))
}

/// Writes the weights and the description to their temporary names, then renames both into
/// place.
fn write_both(
    tensors: &HashMap<String, Tensor>,
    meta: &Value,
    weights_tmp: &Path,
    json_tmp: &Path,
    path: &Path,
) -> std::result::Result<(), String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    candle_core::safetensors::save(tensors, weights_tmp).map_err(|e| text(&e))?;
    std::fs::write(json_tmp, serde_json::to_vec_pretty(meta).map_err(|e| text(&e))?).map_err(|e| text(&e))?;
    // The weights are written through a private temporary file; give them the mode every
    // other file gets, the one the description was just created with.
    let mode = std::fs::metadata(json_tmp).map_err(|e| text(&e))?.permissions();
    std::fs::set_permissions(weights_tmp, mode).map_err(|e| text(&e))?;
    std::fs::rename(weights_tmp, path).map_err(|e| text(&e))?;
    std::fs::rename(json_tmp, json_path(path)).map_err(|e| text(&e))?;
    Ok(())
}

/// The current time as ISO 8601 text in UTC, `2026-11-28T21:40:00.123Z`.
fn now_utc() -> Option<String> {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    let millis = i64::try_from(since_epoch.as_millis()).ok()?;
    let time = datafusion::arrow::temporal_conversions::timestamp_ms_to_datetime(millis)?;
    Some(time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// The description beside the weights at `path`, checked to be recfusion's.
fn read_description(path: &Path) -> Result<Value> {
    let shown = path.display();
    let meta_path = json_path(path);
    let text = std::fs::read(&meta_path)
        .map_err(|e| exec_datafusion_err!("model '{shown}': cannot read '{}': {e}", meta_path.display()))?;
    let meta: Value =
        serde_json::from_slice(&text).map_err(|e| exec_datafusion_err!("model '{shown}': damaged JSON: {e}"))?;
    if meta["format"] != "recfusion-model" {
        return exec_err!(
            "model '{shown}': '{}' is not a recfusion model description",
            meta_path.display()
        );
    }
    Ok(meta)
}

/// What a model's description says about it, read without its weights.
#[derive(Debug)]
pub struct ModelSummary {
    pub kind: String,
    pub config: Value,
    /// How many ids each id map holds (`users`, `items`).
    pub id_counts: HashMap<String, usize>,
    pub created_at: Option<String>,
    /// How the model was made (`call`, `rows`, `loss`), when its trainer wrote that down.
    pub training: Value,
}

/// Reads the description of the model at `path` (its `.json`); a missing or foreign one is an
/// error that says which file.
pub fn summary(path: &Path) -> Result<ModelSummary> {
    let meta = read_description(path)?;
    let id_counts = meta["ids"]
        .as_object()
        .map(|maps| {
            maps.iter()
                .map(|(name, map)| (name.clone(), map["values"].as_array().map_or(0, Vec::len)))
                .collect()
        })
        .unwrap_or_default();
    Ok(ModelSummary {
        kind: meta["kind"].as_str().unwrap_or_default().to_string(),
        config: meta["config"].clone(),
        id_counts,
        created_at: meta["created_at"].as_str().map(str::to_string),
        training: meta["training"].clone(),
    })
}

/// An error about a model file met by `function`, naming it.
pub fn named_error(function: &str) -> impl Fn(DataFusionError) -> DataFusionError + '_ {
    move |error| match error {
        DataFusionError::Execution(message) => DataFusionError::Plan(format!("{function}: {message}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model whose id map was edited by hand — a type that no longer matches, an id listed
    /// twice — is refused with the file's name, never read with NULL or repeated ids.
    #[test]
    fn an_edited_id_map_is_refused() {
        let dir = std::env::temp_dir().join(format!("recfusion-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.safetensors");
        let model = ModelFile {
            kind: "als".to_string(),
            config: json!({}),
            matrices: HashMap::from([("items".to_string(), (vec![1.0, 2.0, 3.0, 4.0], 2, 2))]),
            tensors: HashMap::new(),
            ids: HashMap::from([("items".to_string(), Arc::new(Int64Array::from(vec![7, 8])) as ArrayRef)]),
        };
        model.save("test", &path, None).unwrap();
        assert_eq!(
            ModelFile::load(&path, None)
                .unwrap()
                .matrix("items", "items")
                .unwrap()
                .2
                .len(),
            2
        );
        let original = std::fs::read(json_path(&path)).unwrap();
        let edited = |change: &dyn Fn(&mut Value)| {
            let mut meta: Value = serde_json::from_slice(&original).unwrap();
            change(&mut meta);
            std::fs::write(json_path(&path), serde_json::to_vec(&meta).unwrap()).unwrap();
            ModelFile::load(&path, None)
        };
        let retyped = edited(&|meta| meta["ids"]["items"]["type"] = json!("Utf8"))
            .unwrap_err()
            .to_string();
        assert!(retyped.contains("the id map 'items' in '"), "{retyped}");
        assert!(
            retyped.contains("m.safetensors.json' is damaged: an id is not text"),
            "{retyped}"
        );
        let twice = edited(&|meta| meta["ids"]["items"]["values"] = json!([7, 7]))
            .unwrap_err()
            .to_string();
        assert!(twice.contains("is damaged: id 7 appears twice"), "{twice}");
        let short = edited(&|meta| meta["ids"]["items"]["values"] = json!([7])).unwrap();
        let mismatch = short.matrix("items", "items").unwrap_err().to_string();
        assert!(mismatch.contains("has 2 rows but its id map 1 ids"), "{mismatch}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
