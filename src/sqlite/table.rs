//! Reading attached SQLite tables: the schema provider that lists a file's tables, and the
//! table provider whose scans run in SQLite with the query's projection, filters and limit
//! pushed into the SELECT, streaming rows back as Arrow batches.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use rusqlite::types::Value;

use super::types::{ColumnReader, Storage};
use super::write::{WriteMode, WriteRequest, write};
use super::{SqliteDatabase, TableInfo, quote};

/// The tables of one attached file, as a DataFusion schema.
#[derive(Debug)]
pub struct SqliteSchema {
    database: Arc<SqliteDatabase>,
}

impl SqliteSchema {
    pub fn new(database: Arc<SqliteDatabase>) -> Self {
        Self { database }
    }

    pub fn database(&self) -> &Arc<SqliteDatabase> {
        &self.database
    }
}

#[async_trait]
impl SchemaProvider for SqliteSchema {
    fn table_names(&self) -> Vec<String> {
        self.database.table_names().unwrap_or_default()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let context = format!("{}.{name}", self.database.name());
        let info = self
            .database
            .connect(true)
            .and_then(|conn| self.database.table_info(&conn, name))
            .map_err(|e| self.database.error(&context, e))?;
        Ok(info.map(|info| Arc::new(SqliteTable::new(Arc::clone(&self.database), info)) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.table_names().iter().any(|t| t.eq_ignore_ascii_case(name))
    }

    fn register_table(&self, name: String, _table: Arc<dyn TableProvider>) -> Result<Option<Arc<dyn TableProvider>>> {
        plan_err!(
            "{}.{name}: tables of an attached SQLite file are written with CREATE TABLE … AS through \
             recfusion (recfusion::execute_sql), not registered",
            self.database.name()
        )
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        plan_err!(
            "{}.{name}: drop tables of an attached SQLite file with DROP TABLE through recfusion",
            self.database.name()
        )
    }
}

/// One table (or view) of an attached file.
#[derive(Debug)]
pub struct SqliteTable {
    database: Arc<SqliteDatabase>,
    info: TableInfo,
    schema: SchemaRef,
}

impl SqliteTable {
    pub fn new(database: Arc<SqliteDatabase>, info: TableInfo) -> Self {
        let schema = info.schema();
        Self { database, info, schema }
    }

    pub fn database(&self) -> &Arc<SqliteDatabase> {
        &self.database
    }

    pub fn info(&self) -> &TableInfo {
        &self.info
    }

    /// `filter` as a SQLite condition, when SQLite evaluates it exactly as DataFusion would.
    fn filter_sql(&self, filter: &Expr, params: &mut Vec<Value>) -> Option<String> {
        Some(match filter {
            Expr::Column(column) => {
                let info = self.info.columns.iter().find(|c| c.name == column.name)?;
                let native = matches!(info.storage, Storage::Integer | Storage::Real)
                    || (info.storage == Storage::Text && is_string(&info.data_type));
                if !native {
                    return None;
                }
                quote(&info.name)
            }
            Expr::Literal(value, _) => {
                params.push(literal_value(value)?);
                "?".to_string()
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let op = match op {
                    Operator::Eq => "=",
                    Operator::NotEq => "<>",
                    Operator::Lt => "<",
                    Operator::LtEq => "<=",
                    Operator::Gt => ">",
                    Operator::GtEq => ">=",
                    Operator::And => "AND",
                    Operator::Or => "OR",
                    _ => return None,
                };
                format!(
                    "({} {op} {})",
                    self.filter_sql(left, params)?,
                    self.filter_sql(right, params)?
                )
            }
            Expr::Not(inner) => format!("(NOT {})", self.filter_sql(inner, params)?),
            Expr::IsNull(inner) => format!("({} IS NULL)", self.filter_sql(inner, params)?),
            Expr::IsNotNull(inner) => format!("({} IS NOT NULL)", self.filter_sql(inner, params)?),
            Expr::Between(between) => format!(
                "({} {}BETWEEN {} AND {})",
                self.filter_sql(&between.expr, params)?,
                if between.negated { "NOT " } else { "" },
                self.filter_sql(&between.low, params)?,
                self.filter_sql(&between.high, params)?
            ),
            Expr::InList(in_list) => {
                let expr = self.filter_sql(&in_list.expr, params)?;
                let items = in_list
                    .list
                    .iter()
                    .map(|item| self.filter_sql(item, params))
                    .collect::<Option<Vec<_>>>()?;
                let not = if in_list.negated { "NOT " } else { "" };
                format!("({expr} {not}IN ({}))", items.join(", "))
            }
            // Widening numeric casts compare the same in SQLite, which compares numbers by value.
            Expr::Cast(cast) if cast.field.data_type().is_numeric() => {
                let Expr::Column(column) = cast.expr.as_ref() else {
                    return None;
                };
                let info = self.info.columns.iter().find(|c| c.name == column.name)?;
                let widening = match info.storage {
                    Storage::Integer => {
                        info.data_type.is_integer() && cast.field.data_type().is_integer()
                            || cast.field.data_type().is_floating()
                    }
                    Storage::Real => cast.field.data_type().is_floating(),
                    _ => false,
                };
                if !widening {
                    return None;
                }
                self.filter_sql(&cast.expr, params)?
            }
            _ => return None,
        })
    }

    /// The SELECT a scan runs, with its parameters.
    fn select_sql(&self, columns: &[usize], filters: &[Expr], limit: Option<usize>) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let list = if columns.is_empty() {
            "NULL".to_string()
        } else {
            columns
                .iter()
                .map(|&i| quote(&self.info.columns[i].name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sql = format!("SELECT {list} FROM {}", quote(&self.info.name));
        let conditions: Vec<String> = filters.iter().filter_map(|f| self.filter_sql(f, &mut params)).collect();
        if !conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        if let Some(limit) = limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        (sql, params)
    }
}

fn is_string(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn literal_value(value: &ScalarValue) -> Option<Value> {
    Some(match value {
        ScalarValue::Boolean(Some(v)) => Value::Integer(*v as i64),
        ScalarValue::Int8(Some(v)) => Value::Integer(*v as i64),
        ScalarValue::Int16(Some(v)) => Value::Integer(*v as i64),
        ScalarValue::Int32(Some(v)) => Value::Integer(*v as i64),
        ScalarValue::Int64(Some(v)) => Value::Integer(*v),
        ScalarValue::UInt8(Some(v)) => Value::Integer(*v as i64),
        ScalarValue::UInt16(Some(v)) => Value::Integer(*v as i64),
        ScalarValue::UInt32(Some(v)) => Value::Integer(*v as i64),
        ScalarValue::UInt64(Some(v)) => Value::Integer(i64::try_from(*v).ok()?),
        ScalarValue::Float32(Some(v)) => Value::Real(*v as f64),
        ScalarValue::Float64(Some(v)) => Value::Real(*v),
        ScalarValue::Utf8(Some(v)) | ScalarValue::LargeUtf8(Some(v)) | ScalarValue::Utf8View(Some(v)) => {
            Value::Text(v.clone())
        }
        _ => return None,
    })
}

#[async_trait]
impl TableProvider for SqliteTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|filter| match self.filter_sql(filter, &mut Vec::new()) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let columns: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.info.columns.len()).collect(),
        };
        let (sql, params) = self.select_sql(&columns, filters, limit);
        let scan = SqliteScan {
            database: Arc::clone(&self.database),
            schema: Arc::new(self.schema.project(&columns)?),
            columns: columns.iter().map(|&i| self.info.columns[i].clone()).collect(),
            sql,
            params,
        };
        Ok(Arc::new(StreamingTableExec::try_new(
            Arc::clone(&scan.schema),
            vec![Arc::new(scan)],
            None,
            vec![],
            false,
            limit,
        )?))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mode = match insert_op {
            InsertOp::Append => WriteMode::Append,
            InsertOp::Overwrite => WriteMode::Overwrite,
            InsertOp::Replace => WriteMode::InsertOrReplace,
        };
        let sink = SqliteSink {
            database: Arc::clone(&self.database),
            request: WriteRequest {
                table: self.info.name.clone(),
                schema: Arc::clone(&self.schema),
                mode,
                constraints: Default::default(),
                statement: format!(
                    "{insert_op} into {}.{} (DataFrame API)",
                    self.database.name(),
                    self.info.name
                ),
            },
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

/// The rows of one SELECT against the file, streamed from a blocking thread.
struct SqliteScan {
    database: Arc<SqliteDatabase>,
    schema: SchemaRef,
    columns: Vec<super::ColumnInfo>,
    sql: String,
    params: Vec<Value>,
}

impl fmt::Debug for SqliteScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SqliteScan: {}", self.sql)
    }
}

impl PartitionStream for SqliteScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batch_size = ctx.session_config().batch_size();
        let mut builder = RecordBatchReceiverStream::builder(Arc::clone(&self.schema), 2);
        let sender = builder.tx();
        let database = Arc::clone(&self.database);
        let schema = Arc::clone(&self.schema);
        let columns = self.columns.clone();
        let sql = self.sql.clone();
        let params = self.params.clone();
        builder.spawn_blocking(move || {
            let context = format!("reading {}", database.name());
            let conn = database.connect(true).map_err(|e| database.error(&context, e))?;
            let mut statement = conn.prepare(&sql).map_err(|e| database.error(&context, e))?;
            let mut rows = statement
                .query(rusqlite::params_from_iter(params.iter()))
                .map_err(|e| database.error(&context, e))?;
            let mut readers: Vec<ColumnReader> = columns.iter().map(|c| ColumnReader::new(c.storage)).collect();
            let mut pending = 0;
            loop {
                let row = rows.next().map_err(|e| database.error(&context, e))?;
                if let Some(row) = row {
                    for (i, (reader, column)) in readers.iter_mut().zip(&columns).enumerate() {
                        let value = row.get_ref(i).map_err(|e| database.error(&context, e))?;
                        reader.push(&column.name, value)?;
                    }
                    pending += 1;
                }
                if pending > 0 && (pending == batch_size || row.is_none()) {
                    let arrays = readers
                        .iter_mut()
                        .zip(&columns)
                        .map(|(reader, c)| reader.finish(&c.name, c.storage, &c.data_type))
                        .collect::<Result<Vec<_>>>()?;
                    let options = RecordBatchOptions::new().with_row_count(Some(pending));
                    let batch = RecordBatch::try_new_with_options(Arc::clone(&schema), arrays, &options)?;
                    pending = 0;
                    if sender.blocking_send(Ok(batch)).is_err() {
                        return Ok(()); // the query stopped reading
                    }
                }
                if row.is_none() {
                    return Ok(());
                }
            }
        });
        builder.build()
    }
}

/// Writes for `INSERT` planned through DataFusion's `insert_into` (the DataFrame API).
#[derive(Debug)]
struct SqliteSink {
    database: Arc<SqliteDatabase>,
    request: WriteRequest,
}

impl DisplayAs for SqliteSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SqliteSink: {}.{}", self.database.name(), self.request.table)
    }
}

#[async_trait]
impl DataSink for SqliteSink {
    fn schema(&self) -> &SchemaRef {
        &self.request.schema
    }

    async fn write_all(&self, data: SendableRecordBatchStream, _context: &Arc<TaskContext>) -> Result<u64> {
        write(&self.database, self.request.clone(), data).await
    }
}
