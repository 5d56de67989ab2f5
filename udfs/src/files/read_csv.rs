//! `read_csv(path [, delimiter [, encoding [, header]]])`: a delimited text file as a table,
//! for files DataFusion's CSV reader refuses — chiefly Latin-1 text (MovieLens' `u.item`),
//! which it rejects as invalid UTF-8. The file is read whole, within the session's memory pool,
//! decoded to UTF-8, and its column types inferred from its first records; columns are named by the header or `column_1`, `column_2`, … as DataFusion
//! names the columns of a headerless CSV.

use std::io::{Cursor, Read};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::csv::reader::Format;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::{Result, plan_datafusion_err, plan_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};

use crate::table_function::{Arguments, Planned, Run, TableFunction};

const NAME: &str = "read_csv";

#[user_doc(
    doc_section(label = "File Functions"),
    description = "A delimited text file as a table, for files DataFusion's CSV reader refuses, such as Latin-1 text. The file is read whole (in the session's memory limit), decoded to UTF-8, its column types inferred from the first 1,000 records; columns are named by the header or column_1, column_2, ….",
    syntax_example = "read_csv(path [, delimiter => ','] [, encoding => 'utf-8'] [, header => true])",
    sql_example = r#"```sql
> SELECT * FROM read_csv('u.item', delim => '|', encoding => 'latin-1', header => false);
```"#,
    argument(name = "path", description = "The file."),
    argument(
        name = "delimiter | delim | sep",
        description = "One character, or '\\t' for tab (default ','); delim and sep are other names for it, as in DuckDB."
    ),
    argument(name = "encoding", description = "'utf-8' (default) or 'latin-1'."),
    argument(
        name = "header",
        description = "Whether the first line names the columns (default true)."
    )
)]
#[derive(Debug, Default)]
pub struct ReadCsv;

/// Options of one call.
#[derive(Debug, Serialize, Deserialize)]
struct Options {
    path: String,
    delimiter: char,
    encoding: String,
    header: bool,
}

/// Decodes `bytes` from `encoding` into UTF-8 text.
pub fn decode(bytes: Vec<u8>, encoding: &str) -> Result<String> {
    match encoding.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
        "utf8" => String::from_utf8(bytes).map_err(|e| {
            plan_datafusion_err!("{NAME}: the file is not valid UTF-8 ({e}); pass its encoding, e.g. 'latin-1'")
        }),
        // Latin-1 maps every byte to the code point of the same value.
        "latin1" | "iso88591" => Ok(bytes.into_iter().map(char::from).collect()),
        other => plan_err!("{NAME}: argument 3 (encoding) must be 'utf-8' or 'latin-1', got '{other}'"),
    }
}

/// The records column types are inferred from, as DataFusion's CSV reader infers them.
const INFERENCE_RECORDS: usize = 1000;

/// The most of the file read to infer its columns; the first line (the header) must fit.
const INFERENCE_BYTES: u64 = 16 << 20;

/// The cells of one batch while parsing: a very wide file gets short batches, so one batch's
/// buffers stay small whatever the number of columns.
const BATCH_CELLS: usize = 1 << 20;

fn format(options: &Options) -> Format {
    Format::default()
        .with_header(options.header)
        .with_delimiter(options.delimiter as u8)
}

fn open(path: &str) -> Result<std::fs::File> {
    let unreadable = |e: std::io::Error| plan_datafusion_err!("{NAME}: cannot read '{path}': {e}");
    // Checked before opening: opening a FIFO blocks until someone writes to it, and a device
    // may read forever.
    if !std::fs::metadata(path).map_err(unreadable)?.is_file() {
        return plan_err!("{NAME}: '{path}' is not a regular file");
    }
    std::fs::File::open(path).map_err(unreadable)
}

/// The file's columns, inferred from its first records, read with a bounded prefix.
fn infer_schema(options: &Options) -> Result<SchemaRef> {
    let path = &options.path;
    let file = open(path)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut prefix = Vec::new();
    file.take(INFERENCE_BYTES)
        .read_to_end(&mut prefix)
        .map_err(|e| plan_datafusion_err!("{NAME}: cannot read '{path}': {e}"))?;
    if size > INFERENCE_BYTES {
        // Cut at a line's end, so no record (or UTF-8 character) is cut in half.
        match prefix.iter().rposition(|&b| b == b'\n') {
            Some(end) => prefix.truncate(end + 1),
            None => {
                return plan_err!(
                    "{NAME}: '{path}': the first line is longer than {} MB",
                    INFERENCE_BYTES >> 20
                );
            }
        }
    }
    let text = decode(prefix, &options.encoding)?;
    let (inferred, _) = format(options)
        .infer_schema(Cursor::new(text.as_bytes()), Some(INFERENCE_RECORDS))
        .map_err(|e| plan_datafusion_err!("{NAME}: '{path}': {e}"))?;
    Ok(Arc::new(Schema::new(
        inferred
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let name = if options.header {
                    field.name().clone()
                } else {
                    format!("column_{}", i + 1)
                };
                Field::new(name, field.data_type().clone(), true)
            })
            .collect::<Vec<_>>(),
    )))
}

/// The file's rows as `schema` says, its bytes and text accounted in the session's memory pool
/// before they are read.
fn read_rows(options: &Options, schema: &SchemaRef, run: &Run) -> Result<Vec<RecordBatch>> {
    let path = &options.path;
    let mut file = open(path)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0) as usize;
    // The bytes, and the decoded text beside them (Latin-1 may double the size).
    run.reserve(size.saturating_mul(if options.encoding.eq_ignore_ascii_case("utf-8") {
        1
    } else {
        3
    }))?;
    let mut bytes = Vec::with_capacity(size);
    file.read_to_end(&mut bytes)
        .map_err(|e| plan_datafusion_err!("{NAME}: cannot read '{path}': {e}"))?;
    let text = decode(bytes, &options.encoding)?;
    let batch_rows = (BATCH_CELLS / schema.fields().len().max(1)).max(1);
    let reader = ReaderBuilder::new(Arc::clone(schema))
        .with_format(format(options))
        .with_batch_size(batch_rows)
        .build(Cursor::new(text.as_bytes()))
        .map_err(|e| plan_datafusion_err!("{NAME}: '{path}': {e}"))?;
    let mut batches = Vec::new();
    for batch in reader {
        run.cancelled()?;
        let batch = batch.map_err(|e| {
            plan_datafusion_err!(
                "{NAME}: '{path}': {e} (the column types were inferred from the first {INFERENCE_RECORDS} records)"
            )
        })?;
        run.reserve(batch.get_array_memory_size())?;
        batches.push(batch);
    }
    Ok(batches)
}

impl TableFunction for ReadCsv {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(1..=4)?;
        let path = args.required_text(0, "path", "the file's path")?;
        let expected = "one character other than a line break or '\"', or '\\t'";
        let delimiter = match args.text(1, "delimiter")?.as_deref() {
            None => ',',
            Some("\\t" | "\t" | "tab") => '\t',
            Some(d) if d.len() == 1 && !matches!(d, "\n" | "\r" | "\"") => d.as_bytes()[0] as char,
            Some(d) => return Err(args.invalid(1, "delimiter", expected, format!("{d:?}"))),
        };
        let encoding = args.text(2, "encoding")?.unwrap_or_else(|| "utf-8".to_string());
        let header = args.boolean(3, "header", true)?;
        let options = Options {
            path,
            delimiter,
            encoding,
            header,
        };
        // Read the file's start now to know the columns; the query reads it whole when it runs.
        let schema = infer_schema(&options)?;
        Planned::new(Vec::new(), &options, schema)
    }

    fn compute(&self, _inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let options: Options = run.call.options()?;
        // The concatenated output is accounted by the operator that calls this.
        let batches = read_rows(&options, run.schema, run)?;
        Ok(concat_batches(run.schema, &batches)?)
    }
}
