//! How Arrow columns are stored in SQLite and restored from it.
//!
//! Every Arrow type maps to one [`Storage`]: a SQLite declared type a BI tool understands
//! (INTEGER, REAL, TEXT, BLOB) plus, for vectors and nested values, the encoding inside it.
//! Vectors are BLOBs of little-endian float32 (the sqlite-vec format); other lists, structs and
//! maps are JSON text. The original Arrow type is recorded beside the table, so reading it back
//! restores the type SQLite cannot express.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, FixedSizeListArray, Float32Array, Float64Array,
    Float64Builder, Int64Array, Int64Builder, ListArray, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Schema};
use datafusion::common::{Result, exec_datafusion_err, exec_err, plan_err};
use rusqlite::types::ValueRef;

/// How one column is kept in a SQLite table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Integer,
    Real,
    Text,
    Blob,
    /// A list of floats as a BLOB of little-endian float32.
    Vector,
    /// A list, struct or map as JSON text.
    Json,
}

impl Storage {
    /// The type declared in `CREATE TABLE`, as `.schema` shows it.
    pub fn declared_type(self) -> &'static str {
        match self {
            Storage::Integer => "INTEGER",
            Storage::Real => "REAL",
            Storage::Text | Storage::Json => "TEXT",
            Storage::Blob | Storage::Vector => "BLOB",
        }
    }

    /// How to read a column of a table recfusion did not write, from its declared type
    /// (SQLite's type-affinity rules), with the Arrow type it reads as.
    pub fn from_declared(declared: &str) -> (Storage, DataType) {
        let upper = declared.to_ascii_uppercase();
        if upper.contains("BOOL") {
            (Storage::Integer, DataType::Boolean)
        } else if upper.contains("INT") {
            (Storage::Integer, DataType::Int64)
        } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") || upper.is_empty() {
            (Storage::Text, DataType::Utf8)
        } else if upper.contains("BLOB") {
            (Storage::Blob, DataType::Binary)
        } else if upper.contains("DATE") || upper.contains("TIME") {
            (Storage::Text, DataType::Utf8)
        } else {
            (Storage::Real, DataType::Float64)
        }
    }
}

/// The storage for an Arrow type, or an error naming the column when SQLite cannot hold it.
pub fn storage_for(column: &str, data_type: &DataType) -> Result<Storage> {
    use DataType::*;
    Ok(match data_type {
        Boolean | Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Storage::Integer,
        Float16 | Float32 | Float64 | Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => Storage::Real,
        Null | Utf8 | LargeUtf8 | Utf8View | Date32 | Date64 | Timestamp(..) | Time32(_) | Time64(_) => Storage::Text,
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => Storage::Blob,
        List(field) | LargeList(field) | FixedSizeList(field, _) | ListView(field) | LargeListView(field)
            if field.data_type().is_floating() =>
        {
            Storage::Vector
        }
        List(_) | LargeList(_) | FixedSizeList(..) | ListView(_) | LargeListView(_) | Struct(_) | Map(..) => {
            Storage::Json
        }
        Dictionary(_, value) => storage_for(column, value)?,
        other => {
            return plan_err!(
                "SQLite cannot hold column '{column}' of type {other}: cast it to a number, text or a list first"
            );
        }
    })
}

/// Options that make a lossy or overflowing cast an error instead of a NULL.
fn strict() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        ..Default::default()
    }
}

/// One batch column, converted to what SQLite binds.
pub enum EncodedColumn {
    Integer(Int64Array),
    Real(Float64Array),
    Text(StringArray),
    Blob(BinaryArray),
    /// Flat float32 values, each row `offsets[row]..offsets[row + 1]`.
    Vector(VectorRows),
    Json(Vec<Option<String>>),
}

/// Rows of float vectors as one flat buffer.
pub struct VectorRows {
    values: Vec<f32>,
    offsets: Vec<usize>,
    valid: Vec<bool>,
}

impl EncodedColumn {
    /// Converts `array` (a column named `column`) for storage as `storage`.
    pub fn encode(column: &str, array: &ArrayRef, storage: Storage) -> Result<Self> {
        let converted = |to: &DataType| {
            cast_with_options(array, to, &strict())
                .map_err(|e| exec_datafusion_err!("column '{column}': cannot store {} as {to}: {e}", array.data_type()))
        };
        Ok(match storage {
            Storage::Integer => EncodedColumn::Integer(converted(&DataType::Int64)?.as_primitive().clone()),
            Storage::Real => EncodedColumn::Real(converted(&DataType::Float64)?.as_primitive().clone()),
            Storage::Text => EncodedColumn::Text(converted(&DataType::Utf8)?.as_string::<i32>().clone()),
            Storage::Blob => EncodedColumn::Blob(converted(&DataType::Binary)?.as_binary::<i32>().clone()),
            Storage::Vector => EncodedColumn::Vector(vector_rows(column, array)?),
            Storage::Json => EncodedColumn::Json(json_rows(column, array)?),
        })
    }

    /// The value of `row`, borrowed for binding; `scratch` holds a vector's bytes.
    pub fn value<'a>(&'a self, row: usize, scratch: &'a mut Vec<u8>) -> ValueRef<'a> {
        match self {
            EncodedColumn::Integer(a) if a.is_valid(row) => ValueRef::Integer(a.value(row)),
            EncodedColumn::Real(a) if a.is_valid(row) => ValueRef::Real(a.value(row)),
            EncodedColumn::Text(a) if a.is_valid(row) => ValueRef::Text(a.value(row).as_bytes()),
            EncodedColumn::Blob(a) if a.is_valid(row) => ValueRef::Blob(a.value(row)),
            EncodedColumn::Vector(v) if v.valid[row] => {
                scratch.clear();
                for x in &v.values[v.offsets[row]..v.offsets[row + 1]] {
                    scratch.extend_from_slice(&x.to_le_bytes());
                }
                ValueRef::Blob(scratch)
            }
            EncodedColumn::Json(rows) => match &rows[row] {
                Some(text) => ValueRef::Text(text.as_bytes()),
                None => ValueRef::Null,
            },
            _ => ValueRef::Null,
        }
    }
}

fn vector_rows(column: &str, array: &ArrayRef) -> Result<VectorRows> {
    let float_list = DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)));
    let list = cast_with_options(array, &float_list, &strict())
        .map_err(|e| exec_datafusion_err!("column '{column}': cannot store {} as a vector: {e}", array.data_type()))?;
    let list = list.as_list::<i32>();
    let floats = list.values().as_primitive::<Float32Type>();
    let mut valid = Vec::with_capacity(list.len());
    for row in 0..list.len() {
        let is_valid = list.is_valid(row);
        let range = list.value_offsets()[row] as usize..list.value_offsets()[row + 1] as usize;
        if is_valid && floats.slice(range.start, range.len()).null_count() > 0 {
            return exec_err!(
                "column '{column}': row {} has a NULL element; a stored vector cannot",
                row + 1
            );
        }
        valid.push(is_valid);
    }
    Ok(VectorRows {
        values: floats.values().to_vec(),
        offsets: list.value_offsets().iter().map(|&o| o as usize).collect(),
        valid,
    })
}

fn json_rows(column: &str, array: &ArrayRef) -> Result<Vec<Option<String>>> {
    let schema = Arc::new(Schema::new(vec![Field::new("v", array.data_type().clone(), true)]));
    let batch = RecordBatch::try_new(schema, vec![Arc::clone(array)])?;
    let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
    writer
        .write(&batch)
        .map_err(|e| exec_datafusion_err!("column '{column}': cannot write as JSON: {e}"))?;
    writer
        .finish()
        .map_err(|e| exec_datafusion_err!("column '{column}': {e}"))?;
    let text = String::from_utf8(writer.into_inner()).map_err(|e| exec_datafusion_err!("column '{column}': {e}"))?;
    text.lines()
        .map(|line| {
            let mut object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(line).map_err(|e| exec_datafusion_err!("column '{column}': {e}"))?;
            Ok(object.remove("v").map(|value| value.to_string()))
        })
        .collect()
}

/// Collects one column of query rows and turns it into an Arrow array of the recorded type.
pub enum ColumnReader {
    Integer(Int64Builder),
    Real(Float64Builder),
    Text(StringBuilder),
    Blob(BinaryBuilder),
}

impl ColumnReader {
    pub fn new(storage: Storage) -> Self {
        match storage {
            Storage::Integer => ColumnReader::Integer(Int64Builder::new()),
            Storage::Real => ColumnReader::Real(Float64Builder::new()),
            Storage::Text | Storage::Json => ColumnReader::Text(StringBuilder::new()),
            Storage::Blob | Storage::Vector => ColumnReader::Blob(BinaryBuilder::new()),
        }
    }

    /// Appends one SQLite value. SQLite is dynamically typed, so a value of another class
    /// than the column's is converted where that loses nothing and is an error otherwise.
    pub fn push(&mut self, column: &str, value: ValueRef<'_>) -> Result<()> {
        match (self, value) {
            (ColumnReader::Integer(b), ValueRef::Null) => b.append_null(),
            (ColumnReader::Real(b), ValueRef::Null) => b.append_null(),
            (ColumnReader::Text(b), ValueRef::Null) => b.append_null(),
            (ColumnReader::Blob(b), ValueRef::Null) => b.append_null(),
            (ColumnReader::Integer(b), ValueRef::Integer(v)) => b.append_value(v),
            (ColumnReader::Integer(b), ValueRef::Real(v)) if v.fract() == 0.0 && v.abs() < 9.0e15 => {
                b.append_value(v as i64)
            }
            (ColumnReader::Real(b), ValueRef::Real(v)) => b.append_value(v),
            (ColumnReader::Real(b), ValueRef::Integer(v)) => b.append_value(v as f64),
            (ColumnReader::Text(b), ValueRef::Text(v)) => b.append_value(String::from_utf8_lossy(v)),
            (ColumnReader::Text(b), ValueRef::Integer(v)) => b.append_value(v.to_string()),
            (ColumnReader::Text(b), ValueRef::Real(v)) => b.append_value(v.to_string()),
            (ColumnReader::Blob(b), ValueRef::Blob(v)) => b.append_value(v),
            (ColumnReader::Blob(b), ValueRef::Text(v)) => b.append_value(v),
            (reader, value) => {
                let expected = match reader {
                    ColumnReader::Integer(_) => "INTEGER",
                    ColumnReader::Real(_) => "REAL",
                    ColumnReader::Text(_) => "TEXT",
                    ColumnReader::Blob(_) => "BLOB",
                };
                return exec_err!(
                    "column '{column}' holds a {:?} value where {expected} was expected",
                    value.data_type()
                );
            }
        }
        Ok(())
    }

    /// The collected values as an array of `data_type`, decoding vectors and JSON.
    pub fn finish(&mut self, column: &str, storage: Storage, data_type: &DataType) -> Result<ArrayRef> {
        let raw: ArrayRef = match self {
            ColumnReader::Integer(b) => Arc::new(b.finish()),
            ColumnReader::Real(b) => Arc::new(b.finish()),
            ColumnReader::Text(b) => Arc::new(b.finish()),
            ColumnReader::Blob(b) => Arc::new(b.finish()),
        };
        let restored = match storage {
            Storage::Vector => decode_vectors(column, raw.as_binary::<i32>(), data_type)?,
            Storage::Json => decode_json(column, raw.as_string::<i32>(), data_type)?,
            _ => raw,
        };
        if restored.data_type() == data_type {
            return Ok(restored);
        }
        cast_with_options(&restored, data_type, &strict())
            .map_err(|e| exec_datafusion_err!("column '{column}': cannot read it back as {data_type}: {e}"))
    }
}

/// Decodes float32 BLOBs into `data_type` (a fixed-size or variable list of floats).
fn decode_vectors(column: &str, blobs: &BinaryArray, data_type: &DataType) -> Result<ArrayRef> {
    let mut values = Vec::with_capacity(blobs.values().len() / 4);
    let mut offsets = Vec::with_capacity(blobs.len() + 1);
    offsets.push(0i32);
    for row in 0..blobs.len() {
        if blobs.is_valid(row) {
            let bytes = blobs.value(row);
            if !bytes.len().is_multiple_of(4) {
                return exec_err!(
                    "column '{column}': row {} is a BLOB of {} bytes, not a float32 vector",
                    row + 1,
                    bytes.len()
                );
            }
            values.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
        }
        offsets.push(values.len() as i32);
    }
    let field = Arc::new(Field::new_list_field(DataType::Float32, true));
    let values = Arc::new(Float32Array::from(values));
    let nulls = blobs.nulls().cloned();
    let array: ArrayRef = match data_type {
        DataType::FixedSizeList(_, dim) => {
            let dim = *dim as usize;
            let expected = (0..blobs.len()).all(|row| blobs.is_null(row) || blobs.value(row).len() == dim * 4);
            if !expected {
                return exec_err!("column '{column}': a stored vector does not have the recorded {dim} dimensions");
            }
            // Null rows occupy `dim` slots in a fixed-size list; rebuild with padding.
            let mut padded = Vec::with_capacity(blobs.len() * dim);
            let flat = values.values();
            for row in 0..blobs.len() {
                if blobs.is_valid(row) {
                    padded.extend_from_slice(&flat[offsets[row] as usize..offsets[row + 1] as usize]);
                } else {
                    padded.extend(std::iter::repeat_n(0.0, dim));
                }
            }
            Arc::new(FixedSizeListArray::try_new(
                field,
                dim as i32,
                Arc::new(Float32Array::from(padded)),
                nulls,
            )?)
        }
        _ => Arc::new(ListArray::try_new(
            field,
            OffsetBuffer::new(offsets.into()),
            values,
            nulls,
        )?),
    };
    Ok(array)
}

/// Parses JSON text into `data_type`.
fn decode_json(column: &str, texts: &StringArray, data_type: &DataType) -> Result<ArrayRef> {
    let schema = Arc::new(Schema::new(vec![Field::new("v", data_type.clone(), true)]));
    let mut lines = String::new();
    for row in 0..texts.len() {
        match texts.is_valid(row) {
            true => lines.push_str(&format!("{{\"v\":{}}}\n", texts.value(row))),
            false => lines.push_str("{\"v\":null}\n"),
        }
    }
    let mut reader = arrow_json::ReaderBuilder::new(schema)
        .with_batch_size(texts.len().max(1))
        .build(std::io::Cursor::new(lines))
        .map_err(|e| exec_datafusion_err!("column '{column}': {e}"))?;
    match reader.next() {
        Some(batch) => {
            let batch = batch
                .map_err(|e| exec_datafusion_err!("column '{column}': stored JSON does not match {data_type}: {e}"))?;
            Ok(Arc::clone(batch.column(0)))
        }
        None => Ok(datafusion::arrow::array::new_empty_array(data_type)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BooleanArray, Date32Array, Int32Array, StructArray, TimestampMillisecondArray};

    fn round_trip(array: ArrayRef) -> ArrayRef {
        let storage = storage_for("c", array.data_type()).unwrap();
        let encoded = EncodedColumn::encode("c", &array, storage).unwrap();
        let mut reader = ColumnReader::new(storage);
        let mut scratch = Vec::new();
        for row in 0..array.len() {
            reader.push("c", encoded.value(row, &mut scratch)).unwrap();
        }
        reader.finish("c", storage, array.data_type()).unwrap()
    }

    #[test]
    fn every_storable_type_reads_back_as_written() {
        let vectors: ArrayRef = Arc::new(FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
            vec![
                Some(vec![Some(1.5), Some(-2.0)]),
                None,
                Some(vec![Some(0.0), Some(3.25)]),
            ],
            2,
        ));
        let lists: ArrayRef = Arc::new(ListArray::from_iter_primitive::<
            datafusion::arrow::datatypes::Int32Type,
            _,
            _,
        >(vec![Some(vec![Some(1), Some(2)]), None, Some(vec![])]));
        let structs: ArrayRef = Arc::new(StructArray::from(vec![
            (
                Arc::new(Field::new("a", DataType::Int32, true)),
                Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("b", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec![Some("x"), Some("y"), None])) as ArrayRef,
            ),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![Some(1), None, Some(-7)])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            Arc::new(Float32Array::from(vec![Some(0.5), None, Some(2.0)])),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("ü")])),
            Arc::new(Date32Array::from(vec![Some(19000), None, Some(0)])),
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1_700_000_000_123),
                None,
                Some(0),
            ])),
            vectors,
            lists,
            structs,
        ];
        for array in columns {
            assert_eq!(&round_trip(Arc::clone(&array)), &array, "{}", array.data_type());
        }
    }

    #[test]
    fn vectors_are_little_endian_float32_blobs() {
        let array: ArrayRef = Arc::new(FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
            vec![Some(vec![Some(1.0), Some(-0.5)])],
            2,
        ));
        let encoded = EncodedColumn::encode("v", &array, Storage::Vector).unwrap();
        let mut scratch = Vec::new();
        let ValueRef::Blob(bytes) = encoded.value(0, &mut scratch) else {
            panic!("not a blob")
        };
        assert_eq!(bytes, [1.0f32.to_le_bytes(), (-0.5f32).to_le_bytes()].concat());
    }

    #[test]
    fn unstorable_types_are_named() {
        let error = storage_for(
            "span",
            &DataType::Duration(datafusion::arrow::datatypes::TimeUnit::Second),
        )
        .unwrap_err();
        assert!(error.to_string().contains("'span'"), "{error}");
    }
}
