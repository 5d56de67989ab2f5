//! `read_csv(path [, delimiter [, encoding [, header]]])`: a delimited text file as a table,
//! for files DataFusion's CSV reader refuses — chiefly Latin-1 text (MovieLens' `u.item`),
//! which it rejects as invalid UTF-8. The file is read whole, decoded to UTF-8, and its column
//! types inferred; columns are named by the header or `column_1`, `column_2`, … as DataFusion
//! names the columns of a headerless CSV.

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::csv::reader::Format;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, ScalarValue, plan_datafusion_err, plan_err};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::Expr;

const NAME: &str = "read_csv";

/// The `read_csv` table function.
#[derive(Debug, Default)]
pub struct ReadCsv;

fn argument(exprs: &[Expr], index: usize) -> Option<ScalarValue> {
    match exprs.get(index)? {
        Expr::Literal(value, _) if !value.is_null() => Some(value.clone()),
        Expr::Literal(..) => None,
        other => Some(ScalarValue::Utf8(Some(other.to_string()))),
    }
}

fn text(exprs: &[Expr], index: usize, role: &str) -> Result<Option<String>> {
    match argument(exprs, index) {
        None => Ok(None),
        Some(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => {
            Ok(Some(s))
        }
        Some(other) => plan_err!("{NAME}: argument {} ({role}) must be a string, got {other}", index + 1),
    }
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

impl TableFunctionImpl for ReadCsv {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.is_empty() || exprs.len() > 4 {
            return plan_err!("{NAME}: expected read_csv(path [, delimiter [, encoding [, header]]])");
        }
        let path = text(exprs, 0, "path")?.ok_or_else(|| plan_datafusion_err!("{NAME}: argument 1 (path) is NULL"))?;
        let delimiter = match text(exprs, 1, "delimiter")?.as_deref() {
            None => b',',
            Some("\\t" | "\t" | "tab") => b'\t',
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some(d) => return plan_err!("{NAME}: argument 2 (delimiter) must be one character or '\\t', got '{d}'"),
        };
        let encoding = text(exprs, 2, "encoding")?.unwrap_or_else(|| "utf-8".to_string());
        let header = match argument(exprs, 3) {
            None => true,
            Some(ScalarValue::Boolean(Some(h))) => h,
            Some(other) => return plan_err!("{NAME}: argument 4 (header) must be true or false, got {other}"),
        };
        let bytes = std::fs::read(&path).map_err(|e| plan_datafusion_err!("{NAME}: cannot read '{path}': {e}"))?;
        let text = decode(bytes, &encoding)?;
        let format = Format::default().with_header(header).with_delimiter(delimiter);
        let (inferred, _) = format
            .infer_schema(Cursor::new(text.as_bytes()), None)
            .map_err(|e| plan_datafusion_err!("{NAME}: '{path}': {e}"))?;
        let schema = Arc::new(Schema::new(
            inferred
                .fields()
                .iter()
                .enumerate()
                .map(|(i, field)| {
                    let name = if header {
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
        Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
    }
}
