//! Names the file behind a Parquet error. DataFusion reports a damaged or foreign file as
//! "Parquet error: Corrupt footer" without saying which file; this finds the Parquet files a
//! statement reads (quoted paths, `LOCATION`s and registered file tables it names), reads each
//! one's footer, and puts the damaged file's path in front of the error.

use std::path::{Path, PathBuf};

use datafusion::common::DataFusionError;
use datafusion::datasource::listing::ListingTable;
use datafusion::parquet::file::reader::SerializedFileReader;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::DuckDbDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// How many files of a directory are checked at most: enough for any table an analyst
/// points at, bounded for a directory of millions of files.
const MAX_FILES_CHECKED: usize = 10_000;

/// `error` with the path of the damaged Parquet file in front, when `error` is a Parquet
/// error and one of the files `sql` reads cannot be opened as Parquet. Other errors pass
/// through unchanged.
pub async fn name_damaged_parquet(ctx: &SessionContext, sql: &str, error: DataFusionError) -> DataFusionError {
    if !error.to_string().contains("Parquet error") {
        return error;
    }
    let mut files = Vec::new();
    for location in locations(ctx, sql).await {
        collect_parquet_files(&location, &mut files);
    }
    let damaged = files
        .iter()
        .find_map(|file| footer_error(file).map(|reason| (file, reason)));
    match damaged {
        Some((file, reason)) => DataFusionError::Execution(format!(
            "cannot read Parquet file '{}': {reason} (the file is damaged, truncated or not Parquet)",
            file.display()
        )),
        None if files.len() == 1 => error.context(format!("reading Parquet file '{}'", files[0].display())),
        None => error,
    }
}

/// The local paths `sql` may read: quoted strings and identifiers that exist on disk, and
/// the paths of file tables it names.
async fn locations(ctx: &SessionContext, sql: &str) -> Vec<PathBuf> {
    let Ok(tokens) = Tokenizer::new(&DuckDbDialect {}, sql).tokenize() else {
        return Vec::new();
    };
    let mut locations = Vec::new();
    for token in tokens {
        let text = match token {
            Token::SingleQuotedString(text) => text,
            Token::Word(word) => {
                if let Ok(table) = ctx.table_provider(word.value.as_str()).await
                    && let Some(listing) = table.downcast_ref::<ListingTable>()
                {
                    let paths = listing.table_paths().iter();
                    locations.extend(paths.filter_map(|url| url.as_str().strip_prefix("file://").map(PathBuf::from)));
                    continue;
                }
                word.value
            }
            _ => continue,
        };
        let path = PathBuf::from(text.strip_prefix("file://").unwrap_or(&text));
        if path.exists() {
            locations.push(path);
        }
    }
    locations
}

fn collect_parquet_files(location: &Path, files: &mut Vec<PathBuf>) {
    if files.len() >= MAX_FILES_CHECKED {
        return;
    }
    if location.is_file() {
        files.push(location.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(location) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    entries.sort();
    for entry in entries {
        let hidden = entry
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if entry.is_dir() || entry.extension().is_some_and(|extension| extension == "parquet") {
            collect_parquet_files(&entry, files);
        }
    }
}

/// Why `file` cannot be read as Parquet, or `None` when its footer and metadata are sound.
fn footer_error(file: &Path) -> Option<String> {
    let opened = std::fs::File::open(file).map_err(|e| e.to_string());
    let reader = opened.and_then(|file| SerializedFileReader::new(file).map_err(|e| e.to_string()));
    reader
        .err()
        .map(|reason| reason.trim_start_matches("Parquet error: ").to_string())
}
