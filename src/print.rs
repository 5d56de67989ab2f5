//! Printing query results: `table`, `csv`, `tsv`, `json` and `nd-json`, with a row limit
//! for tables.

use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches_with_schema;
use datafusion::common::{DataFusionError, Result};

/// Output format of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrintFormat {
    Table,
    Csv,
    Tsv,
    Json,
    #[value(name = "nd-json")]
    NdJson,
}

impl FromStr for PrintFormat {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        <Self as clap::ValueEnum>::from_str(s, true)
            .map_err(|_| format!("unknown format '{s}': use table, csv, tsv, json or nd-json"))
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
                writer.write(&RecordBatch::new_empty(Arc::clone(schema)))?;
            }
            for batch in batches {
                writer.write(&nested_as_text(batch)?)?;
            }
        }
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

/// CSV cannot hold lists or structs: they are written as their display text, `[1.0, 2.0]`.
fn nested_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    if !batch.schema().fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if field.data_type().is_nested() {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            let text: StringArray = (0..column.len())
                .map(|i| column.is_valid(i).then(|| formatter.value(i).to_string()))
                .collect();
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(text));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(DataFusionError::from)
}
