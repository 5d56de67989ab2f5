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
use sqllogictest::{ColumnType, DBOutput};

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
        runner.with_column_validator(sqllogictest::strict_column_validator);
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
