//! Models kept by name: the models directory (the session's [`ModelsDirectory`], else
//! `$RECFUSION_MODELS`, else `recfusion/models` under the user's data directory, e.g.
//! `~/.local/share/recfusion/models`), what a model name is, and where the model of a name or a
//! path lives. The model `als_v1` is the file `als_v1.safetensors` (and its description
//! `als_v1.safetensors.json`) in that directory; an argument with a path separator or ending in
//! `.safetensors` is a path, used as given, as before names existed.

use std::path::{Path, PathBuf};

use datafusion::common::{Result, plan_err};
use datafusion::prelude::SessionConfig;

use crate::table_function::Arguments;

/// The environment variable that names the models directory when the session does not.
pub const MODELS_ENV: &str = "RECFUSION_MODELS";

/// The extension of a model's weights.
pub const EXTENSION: &str = "safetensors";

/// The session's models directory, in its configuration (`--models DIR`).
#[derive(Debug, Clone)]
pub struct ModelsDirectory(pub PathBuf);

/// The models directory of a session with `config`.
pub fn models_directory(config: &SessionConfig) -> PathBuf {
    match config.get_extension::<ModelsDirectory>() {
        Some(directory) => directory.0.clone(),
        None => default_models_directory(),
    }
}

/// The models directory when the session names none: `$RECFUSION_MODELS`, else
/// `recfusion/models` in the user's data directory, else `recfusion-models` here.
pub fn default_models_directory() -> PathBuf {
    if let Some(dir) = std::env::var_os(MODELS_ENV).filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    match dirs::data_dir() {
        Some(data) => data.join("recfusion").join("models"),
        None => PathBuf::from("recfusion-models"),
    }
}

/// Whether `text` names a model rather than giving its path.
pub fn is_model_name(text: &str) -> bool {
    !text.contains(['/', '\\']) && !text.ends_with(&format!(".{EXTENSION}"))
}

/// Fails unless `name` can be a model's name: letters, digits, `_`, `-` and `.`, not starting
/// with `.`, at most 128 characters. `what` says where it was written, for the error.
pub fn check_model_name(what: &str, name: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > 128 || name.starts_with('.') || name.contains("..") || !name.chars().all(allowed)
    {
        return plan_err!(
            "{what}: '{name}' is not a model name: a name has 1 to 128 letters, digits, '_', '-' or '.', and does not start with '.' (a path needs a '/' or the .{EXTENSION} extension)"
        );
    }
    Ok(())
}

/// The weights file of the model `name` in `directory`.
pub fn named_model_path(directory: &Path, name: &str) -> PathBuf {
    directory.join(format!("{name}.{EXTENSION}"))
}

/// Where the model `text` lives: the named model's file in the session's models directory, or
/// `text` itself when it is a path. `what` names the function and argument, for errors.
pub fn model_path(config: &SessionConfig, what: &str, text: &str) -> Result<PathBuf> {
    if !is_model_name(text) {
        return Ok(PathBuf::from(text));
    }
    check_model_name(what, text)?;
    Ok(named_model_path(&models_directory(config), text))
}

/// The name of the model whose weights are `path`, when it lies in `directory`.
pub fn model_name(directory: &Path, path: &Path) -> Option<String> {
    if path.parent()? != directory {
        return None;
    }
    let name = path.file_name()?.to_str()?.strip_suffix(&format!(".{EXTENSION}"))?;
    is_model_name(name).then(|| name.to_string())
}

/// Removes the model `name` from the models directory of a session with `config`: its weights
/// and its description. A name without a model is an error unless `if_exists`.
pub fn drop_model(config: &SessionConfig, name: &str, if_exists: bool) -> Result<()> {
    check_model_name("DROP MODEL", name)?;
    let directory = models_directory(config);
    let weights = named_model_path(&directory, name);
    let mut description = weights.clone().into_os_string();
    description.push(".json");
    let description = PathBuf::from(description);
    if !weights.exists() && !description.exists() {
        if if_exists {
            return Ok(());
        }
        return plan_err!(
            "DROP MODEL: there is no model named '{name}' in the models directory '{}'",
            directory.display()
        );
    }
    // The description goes first: a model without one is no longer listed or opened.
    for file in [description, weights] {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return plan_err!("DROP MODEL {name}: cannot remove '{}': {e}", file.display()),
        }
    }
    Ok(())
}

/// The weights' path of the model that argument `index` gives — a name in the models directory
/// or a path — for a function that reads a model; a name without a model is an error.
pub fn model_argument(args: &Arguments, index: usize) -> Result<String> {
    let model = args.required_text(index, "model", "a model name or path")?;
    let what = format!("{}: argument {} (model)", args.function(), index + 1);
    let config = args.session().config();
    let path = model_path(config, &what, &model)?;
    if is_model_name(&model) && !path.is_file() {
        return plan_err!(
            "{}: there is no model named '{model}' in the models directory '{}'; SELECT name FROM models() lists them",
            args.function(),
            models_directory(config).display()
        );
    }
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert!(is_model_name("als_v1"));
        assert!(is_model_name("als.v1"));
        assert!(!is_model_name("models/als"));
        assert!(!is_model_name("als.safetensors"));
        for bad in ["", ".hidden", "a..b", "a b", "über", &"x".repeat(129)] {
            assert!(check_model_name("test", bad).is_err(), "{bad:?} was accepted");
        }
        check_model_name("test", "sasrec-200_v2.1").unwrap();
        let dir = Path::new("/models");
        assert_eq!(named_model_path(dir, "a"), Path::new("/models/a.safetensors"));
        assert_eq!(
            model_name(dir, Path::new("/models/a.safetensors")).as_deref(),
            Some("a")
        );
        assert_eq!(model_name(dir, Path::new("/elsewhere/a.safetensors")), None);
    }
}
