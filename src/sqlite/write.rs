//! Writing query results into an attached SQLite file, one transaction per statement.
//!
//! The query's batches stream over a bounded channel to a blocking thread that holds the
//! write transaction and inserts them with one prepared statement. Only after the last batch
//! arrives does the thread replace the old table, record the column types and the provenance
//! row, and commit. Any error, a cancelled statement (the channel closes before the end) or a
//! killed process leaves the file as it was: SQLite rolls the transaction back.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Constraint, Constraints, DataFusionError, Result, exec_err};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::mpsc;

use super::types::{EncodedColumn, Storage, storage_for};
use super::{COLUMNS_TABLE, SqliteDatabase, TABLES_TABLE, TableInfo, quote};

/// What a write does to the target table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    /// `CREATE TABLE`: an error if the table exists, unless `if_not_exists` (then nothing happens).
    Create { if_not_exists: bool },
    /// `CREATE OR REPLACE TABLE`: the old table stays until the new one is complete.
    CreateOrReplace,
    /// `INSERT INTO`: append rows.
    Append,
    /// `INSERT OVERWRITE`: replace all rows.
    Overwrite,
    /// `INSERT OR REPLACE INTO`: a row whose key exists replaces the old row.
    InsertOrReplace,
    /// `INSERT … ON CONFLICT (…) DO …`, the clause passed to SQLite as written.
    OnConflict(String),
}

/// One write: the target, the rows' schema and, for a new table, its keys.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub table: String,
    pub schema: SchemaRef,
    pub mode: WriteMode,
    /// PRIMARY KEY and UNIQUE constraints of a new table, as column indices of `schema`.
    pub constraints: Constraints,
    /// The statement recorded in `recfusion_tables`.
    pub statement: String,
}

enum Message {
    Batch(RecordBatch),
    Finish,
}

/// Streams `input` into the table `request` names, as one transaction. Returns the rows written.
pub async fn write(
    database: &Arc<SqliteDatabase>,
    request: WriteRequest,
    mut input: SendableRecordBatchStream,
) -> Result<u64> {
    let context = format!("{}.{}", database.name(), request.table);
    if database.read_only() {
        return exec_err!("{context}: database '{}' is attached READ_ONLY", database.name());
    }
    for field in request.schema.fields() {
        storage_for(field.name(), field.data_type()).map_err(|e| e.context(context.clone()))?;
    }
    let (sender, receiver) = mpsc::channel(2);
    let writer = {
        let database = Arc::clone(database);
        tokio::task::spawn_blocking(move || write_blocking(&database, &request, receiver))
    };
    let mut input_error = None;
    while let Some(batch) = input.next().await {
        match batch {
            Ok(batch) => {
                if sender.send(Message::Batch(batch)).await.is_err() {
                    break; // the writer stopped early; its result says why
                }
            }
            Err(error) => {
                input_error = Some(error);
                break;
            }
        }
    }
    if input_error.is_none() {
        let _ = sender.send(Message::Finish).await;
    }
    drop(sender);
    let written = writer
        .await
        .map_err(|e| DataFusionError::Execution(format!("{context}: the writer thread failed: {e}")))?;
    match input_error {
        Some(error) => Err(error),
        None => written,
    }
}

fn write_blocking(
    database: &SqliteDatabase,
    request: &WriteRequest,
    mut batches: mpsc::Receiver<Message>,
) -> Result<u64> {
    let context = format!("{}.{}", database.name(), request.table);
    let sqlite = |e: rusqlite::Error| database.error(&context, e);
    let mut conn = database.connect(false).map_err(sqlite)?;
    let transaction = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite)?;
    ensure_metadata_tables(&transaction).map_err(sqlite)?;
    let existing = database.table_info(&transaction, &request.table).map_err(sqlite)?;

    let (table, storages) = match (&request.mode, existing) {
        (WriteMode::Create { if_not_exists: true }, Some(_)) => return Ok(0),
        (WriteMode::Create { .. }, Some(info)) => {
            return exec_err!(
                "{context}: table '{}' already exists (use CREATE OR REPLACE TABLE to replace it)",
                info.name
            );
        }
        (WriteMode::Create { .. } | WriteMode::CreateOrReplace, existing) => {
            if let Some(old) = existing {
                transaction
                    .execute_batch(&format!("DROP TABLE {}", quote(&old.name)))
                    .map_err(sqlite)?;
            }
            let storages = create_table(&transaction, request).map_err(|e| e.context(context.clone()))?;
            (request.table.clone(), storages)
        }
        (_, None) => return exec_err!("{context}: no such table in '{}'", database.path().display()),
        (mode, Some(info)) => {
            check_insert(&info, mode).map_err(|e| e.context(context.clone()))?;
            if mode == &WriteMode::Overwrite {
                transaction
                    .execute_batch(&format!("DELETE FROM {}", quote(&info.name)))
                    .map_err(sqlite)?;
            }
            (info.name.clone(), info.columns.iter().map(|c| c.storage).collect())
        }
    };

    let written = {
        let insert = insert_sql(&table, request);
        let mut statement = transaction.prepare(&insert).map_err(sqlite)?;
        let mut written = 0u64;
        let mut scratch = Vec::new();
        loop {
            let batch = match batches.blocking_recv() {
                Some(Message::Batch(batch)) => batch,
                Some(Message::Finish) => break,
                None => return exec_err!("{context}: statement cancelled; the table is unchanged"),
            };
            let columns = batch
                .columns()
                .iter()
                .zip(request.schema.fields())
                .zip(&storages)
                .map(|((array, field), storage)| EncodedColumn::encode(field.name(), array, *storage))
                .collect::<Result<Vec<_>>>()
                .map_err(|e| e.context(context.clone()))?;
            for row in 0..batch.num_rows() {
                for (i, column) in columns.iter().enumerate() {
                    let value = ToSqlOutput::Borrowed(column.value(row, &mut scratch));
                    statement.raw_bind_parameter(i + 1, value).map_err(sqlite)?;
                }
                statement.raw_execute().map_err(|e| {
                    let row = written + row as u64 + 1;
                    DataFusionError::Execution(format!("{context}: row {row}: {e}; the table is unchanged"))
                })?;
            }
            written += batch.num_rows() as u64;
        }
        written
    };

    if matches!(request.mode, WriteMode::Create { .. } | WriteMode::CreateOrReplace) {
        record_columns(&transaction, &table, &request.schema).map_err(sqlite)?;
    }
    let operation = match &request.mode {
        WriteMode::Create { .. } => "create",
        WriteMode::CreateOrReplace => "create or replace",
        WriteMode::Append => "insert",
        WriteMode::Overwrite => "insert overwrite",
        WriteMode::InsertOrReplace | WriteMode::OnConflict(_) => "upsert",
    };
    record_provenance(&transaction, &table, operation, &request.statement, written).map_err(sqlite)?;
    transaction.commit().map_err(sqlite)?;
    Ok(written)
}

/// Creates the table with SQLite's declared types and its keys; returns each column's storage.
fn create_table(transaction: &Transaction, request: &WriteRequest) -> Result<Vec<Storage>> {
    let fields = request.schema.fields();
    let storages = fields
        .iter()
        .map(|f| storage_for(f.name(), f.data_type()))
        .collect::<Result<Vec<_>>>()?;
    let names = |columns: &[usize]| {
        columns
            .iter()
            .map(|&i| quote(fields[i].name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut definitions: Vec<String> = Vec::new();
    let mut key_columns: Vec<usize> = Vec::new();
    let mut constraints: Vec<String> = Vec::new();
    for constraint in request.constraints.iter() {
        match constraint {
            Constraint::PrimaryKey(columns) => {
                key_columns.extend(columns);
                constraints.push(format!("PRIMARY KEY ({})", names(columns)));
            }
            Constraint::Unique(columns) => constraints.push(format!("UNIQUE ({})", names(columns))),
        }
    }
    for (i, (field, storage)) in fields.iter().zip(&storages).enumerate() {
        let not_null = if key_columns.contains(&i) { " NOT NULL" } else { "" };
        definitions.push(format!("{} {}{not_null}", quote(field.name()), storage.declared_type()));
    }
    definitions.extend(constraints);
    let sql = format!(
        "CREATE TABLE {} (\n  {}\n)",
        quote(&request.table),
        definitions.join(",\n  ")
    );
    transaction
        .execute_batch(&sql)
        .map_err(|e| DataFusionError::Execution(e.to_string()))?;
    Ok(storages)
}

/// Refuses an upsert into a table with no key to match rows on.
fn check_insert(info: &TableInfo, mode: &WriteMode) -> Result<()> {
    let upsert = matches!(mode, WriteMode::InsertOrReplace | WriteMode::OnConflict(_));
    if upsert && !info.has_unique_key {
        return exec_err!(
            "an upsert needs a key to match rows on, and table '{}' has no PRIMARY KEY or UNIQUE index; \
             create it with PRIMARY KEY (…) or add CREATE UNIQUE INDEX",
            info.name
        );
    }
    Ok(())
}

fn insert_sql(table: &str, request: &WriteRequest) -> String {
    let columns: Vec<String> = request.schema.fields().iter().map(|f| quote(f.name())).collect();
    let placeholders = vec!["?"; columns.len()].join(", ");
    let verb = match request.mode {
        WriteMode::InsertOrReplace => "INSERT OR REPLACE",
        _ => "INSERT",
    };
    let mut sql = format!(
        "{verb} INTO {} ({}) VALUES ({placeholders})",
        quote(table),
        columns.join(", ")
    );
    if let WriteMode::OnConflict(clause) = &request.mode {
        sql.push(' ');
        sql.push_str(clause);
    }
    sql
}

pub(super) fn ensure_metadata_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {COLUMNS_TABLE} (\n  \
           table_name TEXT NOT NULL,\n  \
           column_name TEXT NOT NULL,\n  \
           arrow_type TEXT NOT NULL,\n  \
           PRIMARY KEY (table_name, column_name)\n);\n\
         CREATE TABLE IF NOT EXISTS {TABLES_TABLE} (\n  \
           table_name TEXT PRIMARY KEY,\n  \
           operation TEXT NOT NULL,\n  \
           statement TEXT NOT NULL,\n  \
           rows_written INTEGER NOT NULL,\n  \
           written_at TEXT NOT NULL,\n  \
           written_by TEXT NOT NULL\n);"
    ))
}

fn record_columns(conn: &Connection, table: &str, schema: &SchemaRef) -> rusqlite::Result<()> {
    forget_table(conn, table)?;
    let mut statement = conn.prepare(&format!(
        "INSERT INTO {COLUMNS_TABLE} (table_name, column_name, arrow_type) VALUES (?1, ?2, ?3)"
    ))?;
    for field in schema.fields() {
        statement.execute((table, field.name(), field.data_type().to_string()))?;
    }
    Ok(())
}

fn record_provenance(
    conn: &Connection,
    table: &str,
    operation: &str,
    statement: &str,
    rows: u64,
) -> rusqlite::Result<()> {
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO {TABLES_TABLE} \
             (table_name, operation, statement, rows_written, written_at, written_by) \
             VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?5)"
        ),
        (
            table,
            operation,
            statement.trim(),
            rows as i64,
            concat!("recfusion ", env!("CARGO_PKG_VERSION")),
        ),
    )?;
    Ok(())
}

/// Removes the column types recorded for `table`.
pub(super) fn forget_table(conn: &Connection, table: &str) -> rusqlite::Result<()> {
    conn.execute(
        &format!("DELETE FROM {COLUMNS_TABLE} WHERE table_name = ?1 COLLATE NOCASE"),
        [table],
    )?;
    Ok(())
}

/// `DROP TABLE [IF EXISTS] name.table`, with what recfusion recorded about it. Returns whether
/// a table was dropped.
pub fn drop_table(database: &SqliteDatabase, table: &str, if_exists: bool) -> Result<bool> {
    let context = format!("DROP TABLE {}.{table}", database.name());
    if database.read_only() {
        return exec_err!("{context}: database '{}' is attached READ_ONLY", database.name());
    }
    let sqlite = |e: rusqlite::Error| database.error(&context, e);
    let mut conn = database.connect(false).map_err(sqlite)?;
    let transaction = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite)?;
    let Some(info) = database.table_info(&transaction, table).map_err(sqlite)? else {
        return match if_exists {
            true => Ok(false),
            false => exec_err!("{context}: no such table"),
        };
    };
    ensure_metadata_tables(&transaction).map_err(sqlite)?;
    transaction
        .execute_batch(&format!("DROP TABLE {}", quote(&info.name)))
        .map_err(sqlite)?;
    forget_table(&transaction, &info.name).map_err(sqlite)?;
    transaction
        .execute(
            &format!("DELETE FROM {TABLES_TABLE} WHERE table_name = ?1"),
            [&info.name],
        )
        .map_err(sqlite)?;
    transaction.commit().map_err(sqlite)?;
    Ok(true)
}

/// Runs one DDL statement of SQLite's own (such as `CREATE INDEX`) in a transaction.
pub fn execute_ddl(database: &SqliteDatabase, context: &str, sql: &str) -> Result<()> {
    if database.read_only() {
        return exec_err!("{context}: database '{}' is attached READ_ONLY", database.name());
    }
    let sqlite = |e: rusqlite::Error| database.error(context, e);
    let mut conn = database.connect(false).map_err(sqlite)?;
    let transaction = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite)?;
    transaction.execute_batch(sql).map_err(sqlite)?;
    transaction.commit().map_err(sqlite)
}
