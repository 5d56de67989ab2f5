//! Running SQL: one statement at a time, or a whole script with the line of each statement,
//! printing results to stdout and the row/timing footer to stderr (so piped CSV stays clean).

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use datafusion::common::{DataFusionError, Result};
use datafusion::prelude::SessionContext;

use crate::command::MetaCommand;
use crate::print::{PrintFormat, write_batches};
use crate::script::{is_complete, split_statements, substitute_variables};

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
    /// A meta command's error: its message alone, without DataFusion's "Error during
    /// planning:" prefix, which would read as if SQL had failed.
    pub meta_command: bool,
}

impl fmt::Display for StatementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = if self.meta_command {
            self.error.message()
        } else {
            self.error.to_string().into()
        };
        write!(f, "{} line {}: {message}", self.source, self.line)
    }
}

impl std::error::Error for StatementError {}

/// Why a script file did not run to its end: it could not be run at all, or a statement failed.
#[derive(Debug)]
pub enum ScriptFileError {
    Refused(String),
    Failed(StatementError),
}

impl fmt::Display for ScriptFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(message) => f.write_str(message),
            Self::Failed(error) => error.fmt(f),
        }
    }
}

impl StatementError {
    fn new(source: &str, line: usize, error: DataFusionError) -> Self {
        Self {
            source: source.to_string(),
            line,
            error,
            meta_command: false,
        }
    }
}

/// Runs statements against one session.
pub struct Runner {
    pub ctx: SessionContext,
    pub print: PrintOptions,
    pub variables: HashMap<String, String>,
    pub continue_on_error: bool,
    /// The script files being run, outermost first, so a file that includes itself (through
    /// `\i`, directly or not) is refused instead of recursing until the stack overflows.
    running_files: Vec<PathBuf>,
}

impl Runner {
    pub fn new(ctx: SessionContext) -> Self {
        Self {
            ctx,
            print: PrintOptions::default(),
            variables: HashMap::new(),
            continue_on_error: false,
            running_files: Vec::new(),
        }
    }

    /// Runs one statement and prints its result. Ctrl-C cancels the statement.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        let sql = substitute_variables(sql, &self.variables)?;
        let started = Instant::now();
        // The statement runs as its own task, so Ctrl-C is seen at once even while the query
        // keeps a worker busy, and aborting the task drops the plan, which stops its tasks.
        let ctx = self.ctx.clone();
        let statement = sql.clone();
        let mut task = tokio::spawn(async move {
            let outcome = async {
                let df = crate::execute_sql(&ctx, &statement).await?;
                let schema = std::sync::Arc::clone(df.schema().inner());
                let batches = df.collect().await?;
                Ok::<_, DataFusionError>((schema, batches))
            };
            match outcome.await {
                Err(error) => Err(crate::file_errors::name_damaged_parquet(&ctx, &statement, error).await),
                done => done,
            }
        });
        let (schema, batches) = tokio::select! {
            result = &mut task => result.map_err(|e| DataFusionError::Execution(format!("the statement failed: {e}")))??,
            _ = tokio::signal::ctrl_c() => {
                task.abort();
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
                footer.push_str(&format!(
                    " ({} shown; raise --maxrows or \\maxrows to see more)",
                    rows - hidden
                ));
            }
            if self.print.timing {
                footer.push_str(&format!(" Elapsed {:.3} seconds.", started.elapsed().as_secs_f64()));
            }
            eprintln!("{footer}\n");
        }
        Ok(())
    }

    /// Runs a script: SQL statements ending in `;` (the last may omit it) and, at the start of
    /// a line between statements, meta commands such as `\d`. The first failure stops the
    /// script unless `continue_on_error`; errors name `source` and the line.
    /// Runs the statements of a script file; `how` names the caller in errors (`-f`, `\\i`).
    pub async fn run_file(&mut self, path: &Path, how: &str) -> std::result::Result<(), ScriptFileError> {
        let shown = path.display().to_string();
        let unreadable =
            |error: std::io::Error| ScriptFileError::Refused(format!("{how}: cannot read {shown}: {error}"));
        let canonical = std::fs::canonicalize(path).map_err(unreadable)?;
        if self.running_files.contains(&canonical) {
            let chain: Vec<String> = self
                .running_files
                .iter()
                .chain(std::iter::once(&canonical))
                .map(|file| file.display().to_string())
                .collect();
            return Err(ScriptFileError::Refused(format!(
                "{how} {shown}: the script would include itself ({}); remove the \\i that closes the cycle",
                chain.join(" -> ")
            )));
        }
        let text = std::fs::read_to_string(&canonical).map_err(unreadable)?;
        self.running_files.push(canonical);
        let result = self.run_script(&text, &shown).await;
        self.running_files.pop();
        result.map_err(ScriptFileError::Failed)
    }

    pub async fn run_script(&mut self, text: &str, source: &str) -> std::result::Result<(), StatementError> {
        let mut failures = Failures::new(self.continue_on_error);
        let mut pending = String::new();
        let mut pending_line = 1;
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            if pending.trim().is_empty() && line.trim_start().starts_with('\\') {
                pending.clear();
                let outcome = match MetaCommand::parse(line) {
                    Ok(command) => Box::pin(command.execute(self)).await,
                    Err(error) => Err(error),
                };
                match outcome {
                    Ok(true) => {}
                    Ok(false) => return failures.finish(),
                    Err(error) => failures.add(StatementError {
                        meta_command: true,
                        ..StatementError::new(source, number, error)
                    })?,
                }
                continue;
            }
            if pending.trim().is_empty() {
                pending.clear();
                pending_line = number;
            }
            pending.push_str(line);
            pending.push('\n');
            if is_complete(&pending) {
                let statements = std::mem::take(&mut pending);
                self.run_statements(&statements, pending_line, source, &mut failures)
                    .await?;
            }
        }
        if !pending.trim().is_empty() {
            self.run_statements(&pending, pending_line, source, &mut failures)
                .await?;
        }
        failures.finish()
    }

    /// Runs the statements of `text`, which starts on line `first_line` of `source`.
    async fn run_statements(
        &self,
        text: &str,
        first_line: usize,
        source: &str,
        failures: &mut Failures,
    ) -> std::result::Result<(), StatementError> {
        let statements = match split_statements(text) {
            Ok(statements) => statements,
            Err(unterminated) => {
                let line = first_line + unterminated.line - 1;
                let error = DataFusionError::Plan("the /* comment starting here is never closed with */".to_string());
                return failures.add(StatementError::new(source, line, error));
            }
        };
        for statement in statements {
            if let Err(error) = self.execute(&statement.sql).await {
                failures.add(StatementError::new(source, first_line + statement.line - 1, error))?;
            }
        }
        Ok(())
    }
}

/// The failures of a script: the first stops it, or with `continue_on_error` each is printed
/// and the first is reported at the end.
struct Failures {
    continue_on_error: bool,
    first: Option<StatementError>,
}

impl Failures {
    fn new(continue_on_error: bool) -> Self {
        Self {
            continue_on_error,
            first: None,
        }
    }

    fn add(&mut self, failure: StatementError) -> std::result::Result<(), StatementError> {
        if !self.continue_on_error {
            return Err(failure);
        }
        eprintln!("Error: {failure}");
        self.first.get_or_insert(failure);
        Ok(())
    }

    fn finish(self) -> std::result::Result<(), StatementError> {
        self.first.map_or(Ok(()), Err)
    }
}
