//! Runs every `tests/sql/**/*.slt` file against a fresh recfusion session (the engine the
//! CLI uses), printing one line per file and a `N passed, N failed` summary.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::DataFusionError;
use datafusion::prelude::SessionContext;
use recfusion::{SessionOptions, new_session};
use sqllogictest::{DBOutput, DefaultColumnType};

struct Recfusion {
    ctx: SessionContext,
}

#[async_trait]
impl sqllogictest::AsyncDB for Recfusion {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DataFusionError> {
        let df = recfusion::execute_sql(&self.ctx, sql).await?;
        let columns = df.schema().fields().len();
        let batches = df.collect().await?;
        if columns == 0 || (batches.is_empty() && is_statement(sql)) {
            return Ok(DBOutput::StatementComplete(0));
        }
        let mut rows = Vec::new();
        for batch in &batches {
            rows.extend(format_batch(batch)?);
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; columns],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "recfusion"
    }
}

fn is_statement(sql: &str) -> bool {
    let first = sql.split_whitespace().next().unwrap_or_default().to_uppercase();
    !matches!(
        first.as_str(),
        "SELECT" | "WITH" | "VALUES" | "SHOW" | "DESCRIBE" | "EXPLAIN"
    )
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

#[tokio::main]
async fn main() {
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let mut files = Vec::new();
    slt_files(Path::new("tests/sql"), &mut files);
    files.sort();
    let (mut passed, mut failed) = (0, 0);
    for file in files {
        if filter
            .as_ref()
            .is_some_and(|f| !file.to_string_lossy().contains(f.as_str()))
        {
            continue;
        }
        let mut runner = sqllogictest::Runner::new(|| async {
            Ok(Recfusion {
                ctx: new_session(&SessionOptions::default())?,
            })
        });
        runner.with_column_validator(|_, _| true);
        match runner.run_file_async(&file).await {
            Ok(()) => {
                println!("ok      {}", file.display());
                passed += 1;
            }
            Err(error) => {
                println!("FAILED  {}\n{error}", file.display());
                failed += 1;
            }
        }
    }
    println!("sqllogictest: {passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
}
