//! Runs every `tests/sql/**/*.slt` file against a fresh recfusion session (the engine the
//! CLI uses), then again through a session on an in-process Ballista cluster (a scheduler and
//! two executors over loopback, one task slot each, 4 partitions per query), printing one line
//! per file and run and a `N passed, N failed` summary. `-- FILTER` runs the files whose path
//! contains FILTER; `--local` skips the cluster runs.
//!
//! `sqlite.slt` runs a third time on encrypted files: a copy in which every `ATTACH` that should
//! succeed gains `KEY_ENV`, so every guarantee of plain SQLite output is checked on SQLCipher
//! files too. The keys the files use are set here, before any thread starts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::DataFusionError;
use datafusion::prelude::SessionContext;
use recfusion::cluster::ClusterOptions;
use recfusion::{SessionOptions, new_cluster_session, new_session};
use sqllogictest::{ColumnType, DBOutput};

/// Files that do not run on a cluster, and why.
const NOT_ON_CLUSTER: &[(&str, &str)] = &[(
    "plan.slt",
    "its EXPLAIN output is the single-process plan; a cluster adds the distributed plan's stages",
)];

/// Whether the last query gives its rows in no particular order (it has no ORDER BY): on a
/// cluster partitions finish in any order, so its rows are compared as a multiset there.
static UNORDERED: AtomicBool = AtomicBool::new(false);

struct Recfusion {
    ctx: SessionContext,
}

/// A result column's type as a `query` line spells it: `I` integers, `R` floats and decimals,
/// `B` booleans, `T` everything else (text, lists and vectors, dates and times).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Text,
    Integer,
    Float,
    Boolean,
}

impl ColumnType for Column {
    fn from_char(value: char) -> Option<Self> {
        match value {
            'T' => Some(Self::Text),
            'I' => Some(Self::Integer),
            'R' => Some(Self::Float),
            'B' => Some(Self::Boolean),
            _ => None,
        }
    }

    fn to_char(&self) -> char {
        match self {
            Self::Text => 'T',
            Self::Integer => 'I',
            Self::Float => 'R',
            Self::Boolean => 'B',
        }
    }
}

impl Column {
    fn of(data_type: &DataType) -> Self {
        match data_type {
            t if t.is_integer() => Self::Integer,
            t if t.is_floating() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) => Self::Float,
            DataType::Boolean => Self::Boolean,
            _ => Self::Text,
        }
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for Recfusion {
    type Error = DataFusionError;
    type ColumnType = Column;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Column>, DataFusionError> {
        UNORDERED.store(!sql.to_uppercase().contains("ORDER BY"), Ordering::Relaxed);
        let df = recfusion::execute_sql(&self.ctx, sql).await?;
        let types: Vec<Column> = df.schema().fields().iter().map(|f| Column::of(f.data_type())).collect();
        let columns = types.len();
        let batches = df.collect().await?;
        if columns == 0 || (batches.is_empty() && is_statement(sql)) {
            return Ok(DBOutput::StatementComplete(0));
        }
        let mut rows = Vec::new();
        for batch in &batches {
            rows.extend(format_batch(batch)?.into_iter().flat_map(split_lines));
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "recfusion"
    }
}

/// Rows as the single-process run gives them, or — for a query without ORDER BY — the same
/// rows in another order.
fn cluster_validator(normalizer: sqllogictest::Normalizer, actual: &[Vec<String>], expected: &[String]) -> bool {
    if sqllogictest::default_validator(normalizer, actual, expected) {
        return true;
    }
    if !UNORDERED.load(Ordering::Relaxed) {
        return false;
    }
    let mut actual: Vec<String> = actual
        .iter()
        .map(|row| row.iter().map(normalizer).collect::<Vec<_>>().join(" "))
        .collect();
    let mut expected: Vec<String> = expected.iter().map(normalizer).collect();
    actual.sort();
    expected.sort();
    actual == expected
}

fn is_statement(sql: &str) -> bool {
    let first = sql.split_whitespace().next().unwrap_or_default().to_uppercase();
    !matches!(
        first.as_str(),
        "SELECT" | "WITH" | "VALUES" | "SHOW" | "DESCRIBE" | "EXPLAIN"
    )
}

/// A row whose cells hold several lines (EXPLAIN's plans) as one row of first lines, then one
/// row per further line, so a .slt file shows a plan as it prints.
fn split_lines(row: Vec<String>) -> Vec<Vec<String>> {
    let mut first = Vec::with_capacity(row.len());
    let mut more = Vec::new();
    for cell in row {
        let mut lines = cell.trim_end_matches('\n').lines().map(str::to_string);
        first.push(lines.next().unwrap_or_default());
        more.extend(lines.map(|line| vec![line]));
    }
    std::iter::once(first).chain(more).collect()
}

fn format_batch(batch: &RecordBatch) -> Result<Vec<Vec<String>>, DataFusionError> {
    (0..batch.num_rows())
        .map(|row| batch.columns().iter().map(|column| format_cell(column, row)).collect())
        .collect()
}

/// Floats are rounded to 6 decimals so results do not hinge on the last bit; lists are
/// printed element by element with the same rule.
fn format_cell(column: &ArrayRef, row: usize) -> Result<String, DataFusionError> {
    if column.is_null(row) {
        return Ok("NULL".to_string());
    }
    let text = match column.data_type() {
        DataType::Float32 => round(f64::from(column.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => round(column.as_primitive::<Float64Type>().value(row)),
        DataType::List(_) => format_list(&column.as_list::<i32>().value(row))?,
        DataType::LargeList(_) => format_list(&column.as_list::<i64>().value(row))?,
        DataType::FixedSizeList(_, _) => format_list(&column.as_fixed_size_list().value(row))?,
        _ => ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())?
            .value(row)
            .to_string(),
    };
    Ok(if text.is_empty() { "(empty)".to_string() } else { text })
}

fn format_list(values: &ArrayRef) -> Result<String, DataFusionError> {
    let cells: Result<Vec<_>, _> = (0..values.len()).map(|i| format_cell(values, i)).collect();
    Ok(format!("[{}]", cells?.join(", ")))
}

fn round(value: f64) -> String {
    let rounded = (value * 1e6).round() / 1e6;
    if rounded == 0.0 {
        "0".to_string()
    } else {
        rounded.to_string()
    }
}

fn slt_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            slt_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "slt") {
            found.push(path);
        }
    }
}

/// Where a file runs.
#[derive(Clone)]
enum Engine {
    Local,
    Cluster(ClusterOptions),
}

async fn run_file(file: &Path, engine: &Engine) -> Result<(), String> {
    let on_cluster = matches!(engine, Engine::Cluster(_));
    let engine = engine.clone();
    // Each file keeps its named models to itself.
    let models = tempfile::tempdir().map_err(|e| e.to_string())?;
    let options = SessionOptions {
        models_dir: Some(models.path().to_path_buf()),
        ..SessionOptions::default()
    };
    let mut runner = sqllogictest::Runner::new(move || {
        let engine = engine.clone();
        let options = options.clone();
        async move {
            let ctx = match &engine {
                Engine::Local => new_session(&options)?,
                Engine::Cluster(cluster) => new_cluster_session(&options, cluster).await?,
            };
            Ok(Recfusion { ctx })
        }
    });
    runner.with_column_validator(sqllogictest::strict_column_validator);
    if on_cluster {
        runner.with_validator(cluster_validator);
    }
    runner.run_file_async(file).await.map_err(|error| error.to_string())
}

/// The key of the encrypted copy of `sqlite.slt`.
const SQLITE_KEY_VARIABLE: &str = "RECFUSION_TEST_SQLITE_KEY";

/// `sqlite.slt` with every `ATTACH` of a `statement ok` record encrypted.
fn encrypted_copy(plain: &str) -> String {
    let mut copy = String::with_capacity(plain.len() + 1024);
    let mut in_ok_statement = false;
    for line in plain.lines() {
        let trimmed = line.trim();
        let attach = in_ok_statement && trimmed.to_uppercase().starts_with("ATTACH ");
        if trimmed.is_empty() {
            in_ok_statement = false;
        } else if trimmed.starts_with("statement ok") {
            in_ok_statement = true;
        }
        match (attach, trimmed.strip_suffix(')')) {
            (true, Some(with_options)) if with_options.contains('(') => {
                copy.push_str(&format!("{with_options}, KEY_ENV '{SQLITE_KEY_VARIABLE}')"));
            }
            (true, _) => copy.push_str(&format!("{trimmed} (KEY_ENV '{SQLITE_KEY_VARIABLE}')")),
            (false, _) => copy.push_str(line),
        }
        copy.push('\n');
    }
    copy
}

fn main() {
    // SAFETY: no other thread exists yet; the runtime starts below.
    unsafe {
        std::env::set_var(SQLITE_KEY_VARIABLE, "correct horse battery staple");
        std::env::set_var("RECFUSION_KEY_SLT", "sqllogictest pseudonym key");
    }
    tokio::runtime::Runtime::new().expect("a tokio runtime").block_on(run());
}

async fn run() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let filter = arguments.iter().find(|a| !a.starts_with('-')).cloned();
    let on_cluster = !arguments.iter().any(|a| a == "--local");
    let mut files = Vec::new();
    slt_files(Path::new("tests/sql"), &mut files);
    files.sort();
    files.retain(|file| {
        filter
            .as_ref()
            .is_none_or(|f| file.to_string_lossy().contains(f.as_str()))
    });
    let mut engines = vec![("local", Engine::Local)];
    let dir = tempfile::tempdir().expect("a temporary directory");
    if on_cluster {
        let scheduler = match recfusion_cluster::local::start_local_cluster(2, 1, None).await {
            Ok(address) => address,
            Err(error) => {
                println!("cannot start the in-process cluster: {error}");
                std::process::exit(1);
            }
        };
        let cluster = ClusterOptions {
            url: format!("df://localhost:{}", scheduler.port()),
            dir: Some(dir.path().to_path_buf()),
            target_partitions: Some(4),
        };
        engines.push(("cluster", Engine::Cluster(cluster)));
    }
    let (mut passed, mut failed) = (0, 0);
    for (label, engine) in &engines {
        for file in &files {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            if matches!(engine, Engine::Cluster(_))
                && let Some((_, reason)) = NOT_ON_CLUSTER.iter().find(|(skipped, _)| *skipped == name)
            {
                println!("skipped {} on the cluster: {reason}", file.display());
                continue;
            }
            match run_file(file, engine).await {
                Ok(()) => {
                    println!("ok      {} ({label})", file.display());
                    passed += 1;
                }
                Err(error) => {
                    println!("FAILED  {} ({label})\n{error}", file.display());
                    failed += 1;
                }
            }
        }
    }
    if let Some(plain) = files.iter().find(|f| f.file_name().is_some_and(|n| n == "sqlite.slt")) {
        let copy = dir.path().join("sqlite_encrypted.slt");
        let text = std::fs::read_to_string(plain).expect("sqlite.slt");
        std::fs::write(&copy, encrypted_copy(&text)).expect("write the encrypted copy");
        match run_file(&copy, &Engine::Local).await {
            Ok(()) => {
                println!("ok      {} (local, encrypted files)", plain.display());
                passed += 1;
            }
            Err(error) => {
                println!("FAILED  {} (local, encrypted files)\n{error}", plain.display());
                failed += 1;
            }
        }
    }
    println!("sqllogictest: {passed} passed, {failed} failed");
    drop(dir);
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
}
