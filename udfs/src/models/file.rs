//! Model files: the weights as safetensors at the path the user names, and beside them
//! (`<path>.json`) the model's kind, its configuration and the id maps that turn rows of the
//! weight matrices back into user and item ids. Both are written to temporary names and renamed
//! into place, so a failed training leaves the previous model whole.

use std::collections::HashMap;
use std::io::Read;
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
        check_weights(path, &meta)?;
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

/// The largest safetensors header read back; recfusion's are a few kilobytes.
const MAX_HEADER_BYTES: u64 = 64 << 20;

/// Checks the weights at `path` against their description `meta`, reading only the
/// safetensors header: it must describe exactly the file's bytes, as f32 tensors whose bytes
/// fit their shapes, with one matrix per id map holding a row per id and the description's
/// dimensions, and the network that transformer and two-tower models need. A truncated file,
/// or a description beside another model's weights, fails here, naming the file.
fn check_weights(path: &Path, meta: &Value) -> Result<()> {
    let shown = path.display();
    let damaged =
        |why: String| exec_datafusion_err!("model '{shown}': the weights do not match their description: {why}");
    let unreadable = |e: std::io::Error| exec_datafusion_err!("model '{shown}': cannot read the weights: {e}");
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    let mut length = [0u8; 8];
    if size < 8 {
        return Err(damaged(format!(
            "the file is {size} bytes, too short for safetensors (truncated?)"
        )));
    }
    file.read_exact(&mut length).map_err(unreadable)?;
    let header_bytes = u64::from_le_bytes(length);
    if header_bytes > size - 8 || header_bytes > MAX_HEADER_BYTES {
        return Err(damaged(format!(
            "the file is {size} bytes, shorter than its header says (truncated?)"
        )));
    }
    let mut header = vec![0; header_bytes as usize];
    file.read_exact(&mut header).map_err(unreadable)?;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&header).map_err(|e| damaged(format!("its header is not safetensors JSON: {e}")))?;
    let mut data_end = 0;
    let mut shapes = HashMap::new();
    for (name, tensor) in header.iter().filter(|(name, _)| *name != "__metadata__") {
        let numbers = |key: &str| -> Vec<u64> {
            tensor[key]
                .as_array()
                .map_or(Vec::new(), |v| v.iter().filter_map(Value::as_u64).collect())
        };
        let (shape, offsets) = (numbers("shape"), numbers("data_offsets"));
        let elements = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        let fits = match (tensor["dtype"].as_str(), offsets.as_slice(), elements) {
            (Some("F32"), &[start, end], Some(n)) => end >= start && end - start == n.saturating_mul(4),
            _ => false,
        };
        if !fits {
            return Err(damaged(format!(
                "tensor '{name}' is not an f32 tensor whose bytes fit its shape"
            )));
        }
        data_end = data_end.max(offsets[1]);
        shapes.insert(name.as_str(), shape);
    }
    let described = 8 + header_bytes + data_end;
    if described != size {
        return Err(damaged(format!(
            "the file is {size} bytes, its header describes {described} (truncated?)"
        )));
    }
    let dim = meta["config"]["factors"].as_u64().or(meta["config"]["dim"].as_u64());
    for (name, map) in meta["ids"].as_object().into_iter().flatten() {
        let ids = map["values"].as_array().map_or(0, Vec::len) as u64;
        match shapes.get(name.as_str()).map(Vec::as_slice) {
            None => {
                return Err(damaged(format!(
                    "the description lists {ids} {name} ids but the weights hold no '{name}' matrix (are they another model's?)"
                )));
            }
            Some(&[rows, cols]) if rows == ids && dim.is_none_or(|d| d == cols) => {}
            Some(shape) => {
                return Err(damaged(format!(
                    "the '{name}' matrix is {shape:?}, the description says {ids} {name} ids of {} dimensions (are they another model's?)",
                    dim.map_or("any".to_string(), |d| d.to_string())
                )));
            }
        }
    }
    let kind = meta["kind"].as_str().unwrap_or_default();
    let has_network = shapes.keys().any(|name| name.starts_with("network."));
    if matches!(kind, "sasrec" | "two_tower") != has_network {
        let held = if has_network {
            "hold a network"
        } else {
            "hold no network"
        };
        return Err(damaged(format!(
            "the description is of a {kind} model, and the weights {held} (are they another model's?)"
        )));
    }
    Ok(())
}

/// Whether training may write a model to `path`: nothing is there yet, or a recfusion model
/// is (its description says so), which the new one replaces. Anything else there — the
/// interactions file being read, a directory, someone's JSON beside it — is named in the
/// error, before any training starts.
pub fn check_replaceable(path: &Path) -> std::result::Result<(), String> {
    let description = json_path(path);
    let shown = path.display();
    if path.is_dir() {
        return Err(format!("'{shown}', which is a directory"));
    }
    if (path.exists() || description.exists())
        && let Err(why) = read_description(path)
    {
        return Err(format!(
            "'{shown}', an existing file that is not a recfusion model ({}); training would overwrite it, so choose another path or remove the file",
            why.message()
        ));
    }
    Ok(())
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

/// Reads the description of the model at `path` (its `.json`) and checks the weights against
/// it; a missing, foreign or damaged one is an error that says which file.
pub fn summary(path: &Path) -> Result<ModelSummary> {
    checked_summary(path, read_description(path)?)
}

/// What a directory listing shows of `path`: nothing when it has no recfusion model
/// description beside it (other files may sit among the models), else its summary — or the
/// error naming it when its weights are damaged, so a broken model is not left out of the
/// listing as if it were not there.
pub fn listed_summary(path: &Path) -> Option<Result<ModelSummary>> {
    let meta = read_description(path).ok()?;
    Some(checked_summary(path, meta))
}

fn checked_summary(path: &Path, meta: Value) -> Result<ModelSummary> {
    check_weights(path, &meta)?;
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
        let short = edited(&|meta| meta["ids"]["items"]["values"] = json!([7]))
            .unwrap_err()
            .to_string();
        assert!(
            short.contains("the 'items' matrix is [2, 2], the description says 1 items ids"),
            "{short}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Weights cut short, or descriptions swapped between two models of different kinds, are
    /// named as damaged when the model is opened or listed, never read as healthy.
    #[test]
    fn weights_that_do_not_match_their_description_are_refused() {
        let dir = std::env::temp_dir().join(format!("recfusion-weights-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ids = |n: i64| Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())) as ArrayRef;
        let als = ModelFile {
            kind: "als".to_string(),
            config: json!({"factors": 2}),
            matrices: HashMap::from([
                ("users".to_string(), (vec![0.5; 6], 3, 2)),
                ("items".to_string(), (vec![0.5; 4], 2, 2)),
            ]),
            tensors: HashMap::new(),
            ids: HashMap::from([("users".to_string(), ids(3)), ("items".to_string(), ids(2))]),
        };
        let network = Tensor::zeros((2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let sasrec = ModelFile {
            kind: "sasrec".to_string(),
            config: json!({"dim": 2}),
            matrices: HashMap::from([("items".to_string(), (vec![0.5; 4], 2, 2))]),
            tensors: HashMap::from([("network.layer".to_string(), network)]),
            ids: HashMap::from([("items".to_string(), ids(2))]),
        };
        let (als_path, sasrec_path) = (dir.join("a.safetensors"), dir.join("s.safetensors"));
        als.save("test", &als_path, None).unwrap();
        sasrec.save("test", &sasrec_path, None).unwrap();
        assert!(summary(&als_path).is_ok() && summary(&sasrec_path).is_ok());

        let weights = std::fs::read(&als_path).unwrap();
        std::fs::write(&als_path, &weights[..weights.len() - 3]).unwrap();
        let cut = summary(&als_path).unwrap_err().to_string();
        assert!(
            cut.contains("a.safetensors': the weights do not match their description: the file is"),
            "{cut}"
        );
        assert!(ModelFile::load(&als_path, None).is_err());
        std::fs::write(&als_path, &weights[..5]).unwrap();
        let tiny = summary(&als_path).unwrap_err().to_string();
        assert!(
            tiny.contains("the file is 5 bytes, too short for safetensors"),
            "{tiny}"
        );
        std::fs::write(&als_path, &weights).unwrap();

        let (als_json, sasrec_json) = (json_path(&als_path), json_path(&sasrec_path));
        let (als_description, sasrec_description) =
            (std::fs::read(&als_json).unwrap(), std::fs::read(&sasrec_json).unwrap());
        std::fs::write(&als_json, &sasrec_description).unwrap();
        std::fs::write(&sasrec_json, &als_description).unwrap();
        let as_sasrec = summary(&als_path).unwrap_err().to_string();
        assert!(
            as_sasrec.contains("the description is of a sasrec model, and the weights hold no network"),
            "{as_sasrec}"
        );
        let as_als = ModelFile::load(&sasrec_path, None).unwrap_err().to_string();
        assert!(
            as_als.contains("the weights hold no 'users' matrix (are they another model's?)"),
            "{as_als}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
