//! Printing query results: `table`, `csv`, `tsv`, `markdown`, `json` and `nd-json`, with a
//! row limit for tables.

use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches_with_schema;
use datafusion::common::Result;

use crate::nested_text::batch_as_text;

/// Output format of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrintFormat {
    Table,
    Csv,
    Tsv,
    Markdown,
    Json,
    #[value(name = "nd-json")]
    NdJson,
}

impl FromStr for PrintFormat {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        <Self as clap::ValueEnum>::from_str(s, true)
            .map_err(|_| format!("unknown format '{s}': use table, csv, tsv, markdown, json or nd-json"))
    }
}

impl std::fmt::Display for PrintFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = clap::ValueEnum::to_possible_value(self).expect("every format has a name");
        f.write_str(value.get_name())
    }
}

/// Writes `batches` in `format`. A table shows at most `max_rows` rows (all when `None`);
/// returns how many rows were left out.
pub fn write_batches(
    out: &mut dyn Write,
    format: PrintFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    max_rows: Option<usize>,
) -> Result<usize> {
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    match format {
        PrintFormat::Table => {
            let shown = limit_rows(batches, max_rows.unwrap_or(usize::MAX));
            if schema.fields().is_empty() {
                return Ok(0);
            }
            writeln!(
                out,
                "{}",
                pretty_format_batches_with_schema(Arc::clone(schema), &shown)?
            )?;
            return Ok(total - shown.iter().map(RecordBatch::num_rows).sum::<usize>());
        }
        PrintFormat::Csv | PrintFormat::Tsv => {
            let delimiter = if format == PrintFormat::Csv { b',' } else { b'\t' };
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .with_delimiter(delimiter)
                .build(&mut *out);
            if batches.is_empty() && !schema.fields().is_empty() {
                writer.write(&batch_as_text(&RecordBatch::new_empty(Arc::clone(schema)))?)?;
            }
            for batch in batches {
                writer.write(&batch_as_text(batch)?)?;
            }
        }
        PrintFormat::Markdown => write_markdown(out, schema, batches)?,
        PrintFormat::Json => {
            let mut writer = datafusion::arrow::json::ArrayWriter::new(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            writeln!(out)?;
        }
        PrintFormat::NdJson => {
            let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
    }
    Ok(0)
}

/// A GitHub-flavoured Markdown table, as DuckDB's `.mode markdown`: numbers right-aligned,
/// `|` escaped, every row.
fn write_markdown(out: &mut dyn Write, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    if schema.fields().is_empty() {
        return Ok(());
    }
    let cell = markdown_cell;
    let names: Vec<String> = schema.fields().iter().map(|f| cell(f.name())).collect();
    writeln!(out, "| {} |", names.join(" | "))?;
    let rules: Vec<&str> = schema
        .fields()
        .iter()
        .map(|f| if f.data_type().is_numeric() { "---:" } else { "---" })
        .collect();
    writeln!(out, "|{}|", rules.join("|"))?;
    let options = FormatOptions::default().with_null("NULL");
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters.iter().map(|f| cell(&f.value(row).to_string())).collect();
            writeln!(out, "| {} |", cells.join(" | "))?;
        }
    }
    Ok(())
}

/// `text` as one Markdown table cell that renders as `text`: line breaks become spaces (a raw
/// carriage return or newline would end the row), and each `|` is escaped — with the
/// backslashes before it doubled, so a `\|` in the data renders as `\|`, not as `|`.
fn markdown_cell(text: &str) -> String {
    let text = text.replace("\r\n", " ").replace(['\r', '\n'], " ");
    let mut cell = String::with_capacity(text.len());
    let mut backslashes = 0;
    for c in text.chars() {
        if c == '\\' {
            backslashes += 1;
            continue;
        }
        let written = if c == '|' { 2 * backslashes + 1 } else { backslashes };
        cell.extend(std::iter::repeat_n('\\', written));
        backslashes = 0;
        cell.push(c);
    }
    cell.extend(std::iter::repeat_n('\\', backslashes));
    cell
}

fn limit_rows(batches: &[RecordBatch], max_rows: usize) -> Vec<RecordBatch> {
    let mut left = max_rows;
    let mut shown = Vec::new();
    for batch in batches {
        if left == 0 {
            break;
        }
        let take = batch.num_rows().min(left);
        shown.push(batch.slice(0, take));
        left -= take;
    }
    shown
}
