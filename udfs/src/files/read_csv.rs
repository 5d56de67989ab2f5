//! `read_csv(path [, delimiter [, encoding [, header]]])`: a delimited text file as a table,
//! for files DataFusion's CSV reader refuses — chiefly Latin-1 text (MovieLens' `u.item`),
//! which it rejects as invalid UTF-8. The file is read whole, decoded to UTF-8, and its column
//! types inferred; columns are named by the header or `column_1`, `column_2`, … as DataFusion
//! names the columns of a headerless CSV.

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::csv::reader::Format;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::{Result, exec_err, plan_datafusion_err, plan_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};

use crate::table_function::{Arguments, Planned, Run, TableFunction};

const NAME: &str = "read_csv";

#[user_doc(
    doc_section(label = "File Functions"),
    description = "A delimited text file as a table, for files DataFusion's CSV reader refuses, such as Latin-1 text. The file is read whole, decoded to UTF-8 and its column types inferred; columns are named by the header or column_1, column_2, ….",
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

/// The file's text, its inferred schema, and its rows.
fn read(options: &Options) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let path = &options.path;
    let bytes = std::fs::read(path).map_err(|e| plan_datafusion_err!("{NAME}: cannot read '{path}': {e}"))?;
    let text = decode(bytes, &options.encoding)?;
    let format = Format::default()
        .with_header(options.header)
        .with_delimiter(options.delimiter as u8);
    let (inferred, _) = format
        .infer_schema(Cursor::new(text.as_bytes()), None)
        .map_err(|e| plan_datafusion_err!("{NAME}: '{path}': {e}"))?;
    let schema = Arc::new(Schema::new(
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
    ));
    let reader = ReaderBuilder::new(Arc::clone(&schema))
        .with_format(format)
        .build(Cursor::new(text.as_bytes()))
        .map_err(|e| plan_datafusion_err!("{NAME}: '{path}': {e}"))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| plan_datafusion_err!("{NAME}: '{path}': {e}"))?;
    Ok((schema, batches))
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
        let delimiter = match args.text(1, "delimiter")?.as_deref() {
            None => ',',
            Some("\\t" | "\t" | "tab") => '\t',
            Some(d) if d.len() == 1 => d.as_bytes()[0] as char,
            Some(d) => return Err(args.invalid(1, "delimiter", "one character or '\\t'", format!("'{d}'"))),
        };
        let encoding = args.text(2, "encoding")?.unwrap_or_else(|| "utf-8".to_string());
        let header = args.boolean(3, "header", true)?;
        let options = Options {
            path,
            delimiter,
            encoding,
            header,
        };
        // Read now to know the columns; the query reads the file again when it runs.
        let (schema, _) = read(&options)?;
        Planned::new(Vec::new(), &options, schema)
    }

    fn compute(&self, _inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let options: Options = run.call.options()?;
        let (schema, batches) = read(&options)?;
        if schema != *run.schema {
            return exec_err!(
                "{NAME}: '{}' changed since the query was planned; run it again",
                options.path
            );
        }
        Ok(concat_batches(&schema, &batches)?)
    }
}
