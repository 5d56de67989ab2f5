//! Running SQL: one statement at a time, or a whole script with the line of each statement,
//! printing results to stdout and the row/timing footer to stderr (so piped CSV stays clean).

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::time::Instant;

use datafusion::common::{DataFusionError, Result};
use datafusion::prelude::SessionContext;

use crate::print::{PrintFormat, write_batches};
use crate::script::{split_statements, substitute_variables};

/// How results are shown.
#[derive(Debug, Clone)]
pub struct PrintOptions {
    pub format: PrintFormat,
    /// Rows a table shows at most; `None` shows all.
    pub max_rows: Option<usize>,
    /// No footer.
    pub quiet: bool,
    /// Elapsed time in the footer.
    pub timing: bool,
}

impl Default for PrintOptions {
    fn default() -> Self {
        Self {
            format: PrintFormat::Table,
            max_rows: None,
            quiet: false,
            timing: true,
        }
    }
}

/// The verb of a statement that changes things rather than asks (`INSERT`, `CREATE`, …).
fn command_verb(sql: &str) -> Option<String> {
    let first = crate::statement::first_keyword(sql)?;
    matches!(
        first.as_str(),
        "INSERT" | "CREATE" | "DROP" | "ATTACH" | "DETACH" | "COPY" | "DELETE" | "UPDATE" | "SET" | "TRUNCATE"
    )
    .then_some(first)
}

/// The row count a write reports: a one-row result whose only column is `count`.
fn written_rows(
    schema: &datafusion::arrow::datatypes::Schema,
    batches: &[datafusion::arrow::array::RecordBatch],
) -> Option<u64> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::UInt64Type;
    if schema.fields().len() != 1 || schema.field(0).name() != "count" {
        return None;
    }
    let batch = batches.iter().find(|b| b.num_rows() > 0)?;
    let counts = batch.column(0).as_primitive_opt::<UInt64Type>()?;
    counts.is_valid(0).then(|| counts.value(0))
}

/// A statement of a script that failed, with where it stands.
#[derive(Debug)]
pub struct StatementError {
    pub source: String,
    pub line: usize,
    pub error: DataFusionError,
}

impl fmt::Display for StatementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}: {}", self.source, self.line, self.error)
    }
}

impl std::error::Error for StatementError {}

/// Runs statements against one session.
pub struct Runner {
    pub ctx: SessionContext,
    pub print: PrintOptions,
    pub variables: HashMap<String, String>,
    pub continue_on_error: bool,
}

impl Runner {
    pub fn new(ctx: SessionContext) -> Self {
        Self {
            ctx,
            print: PrintOptions::default(),
            variables: HashMap::new(),
            continue_on_error: false,
        }
    }

    /// Runs one statement and prints its result. Ctrl-C cancels the statement.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        let sql = substitute_variables(sql, &self.variables)?;
        let started = Instant::now();
        let run = async {
            let df = crate::execute_sql(&self.ctx, &sql).await?;
            let schema = std::sync::Arc::clone(df.schema().inner());
            let batches = df.collect().await?;
            Ok::<_, DataFusionError>((schema, batches))
        };
        let (schema, batches) = tokio::select! {
            result = run => result?,
            _ = tokio::signal::ctrl_c() => {
                return Err(DataFusionError::Execution("query cancelled (Ctrl-C)".to_string()));
            }
        };
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if let Some(verb) = command_verb(&sql) {
            // Statements that change things report on stderr, as psql does, so stdout carries
            // only query results.
            if !self.print.quiet {
                let mut status = match written_rows(&schema, &batches) {
                    Some(count) => format!("{verb}: {count} row(s)."),
                    None => format!("{verb}: OK."),
                };
                if self.print.timing {
                    status.push_str(&format!(" Elapsed {:.3} seconds.", started.elapsed().as_secs_f64()));
                }
                eprintln!("{status}\n");
            }
            return Ok(());
        }
        let mut stdout = std::io::stdout().lock();
        let hidden = write_batches(&mut stdout, self.print.format, &schema, &batches, self.print.max_rows)?;
        stdout.flush()?;
        if !self.print.quiet {
            let mut footer = format!("{rows} row(s) fetched.");
            if hidden > 0 {
                footer.push_str(&format!(" ({} shown; raise --maxrows to see more)", rows - hidden));
            }
            if self.print.timing {
                footer.push_str(&format!(" Elapsed {:.3} seconds.", started.elapsed().as_secs_f64()));
            }
            eprintln!("{footer}\n");
        }
        Ok(())
    }

    /// Runs every statement of `text`. Stops at the first failure unless `continue_on_error`,
    /// in which case failures are printed as they happen and the first is returned at the end.
    pub async fn run_script(&self, text: &str, source: &str) -> std::result::Result<(), StatementError> {
        let mut first_failure = None;
        for statement in split_statements(text) {
            if let Err(error) = self.execute(&statement.sql).await {
                let failure = StatementError {
                    source: source.to_string(),
                    line: statement.line,
                    error,
                };
                if !self.continue_on_error {
                    return Err(failure);
                }
                eprintln!("Error: {failure}");
                first_failure.get_or_insert(failure);
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
}
