//! Attached SQLite databases: `ATTACH 'file.sqlite' AS out` makes the file the schema `out`
//! of the session, so `out.recs` is read and written with ordinary SQL.
//!
//! This module owns the file: opening it (creating it if needed, WAL mode, bounded waits on
//! locks), what recfusion records beside each table (`recfusion_columns`: the Arrow type of each
//! column; `recfusion_tables`: which statement wrote the table and when), and turning SQLite's
//! errors into messages that name the database. Reading is in [`table`], writing in [`write`],
//! the type mapping in [`types`].
//!
//! A file attached with a key ([`DatabaseKey`]) is a SQLCipher 4 database: every page encrypted,
//! the same tables and guarantees, and readable by the `sqlcipher` shell, DB Browser for SQLite
//! and Python's `sqlcipher3` with the same key. The key comes from an environment variable and
//! is never shown: not in errors, not in `Debug` output, not in EXPLAIN.

pub mod table;
pub mod types;
pub mod write;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result, TableReference, plan_err};
use datafusion::prelude::SessionContext;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

pub use table::{SqliteSchema, SqliteTable};
use types::Storage;

/// The table recording each column's Arrow type.
pub const COLUMNS_TABLE: &str = "recfusion_columns";
/// The table recording which statement wrote each table, and when.
pub const TABLES_TABLE: &str = "recfusion_tables";

/// How to attach a file.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// Open for reading only; writes are refused with an error.
    pub read_only: bool,
    /// How long a statement waits for another connection's lock before it fails.
    pub busy_timeout: Duration,
    /// The key of an encrypted (SQLCipher) file; `None` for a plain SQLite file.
    pub key: Option<DatabaseKey>,
}

impl Default for AttachOptions {
    fn default() -> Self {
        Self {
            read_only: false,
            busy_timeout: Duration::from_secs(10),
            key: None,
        }
    }
}

/// The key of an encrypted file, and where it came from (which is all its `Debug` shows).
#[derive(Clone)]
pub struct DatabaseKey {
    source: String,
    passphrase: String,
}

impl std::fmt::Debug for DatabaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseKey(from {})", self.source)
    }
}

impl DatabaseKey {
    /// The key held by the environment variable `variable`, as `ATTACH … (KEY_ENV 'variable')`
    /// names it. A passphrase goes through SQLCipher's key derivation; `x'…'` with 64 hex
    /// digits is a raw 256-bit key, as the `sqlcipher` shell takes it.
    pub fn from_env(variable: &str) -> Result<Self> {
        let source = format!("KEY_ENV '{variable}'");
        match std::env::var(variable) {
            Ok(passphrase) if !passphrase.is_empty() => Ok(Self { source, passphrase }),
            Ok(_) => plan_err!("ATTACH: {source}: the environment variable {variable} is empty"),
            Err(std::env::VarError::NotPresent) => {
                plan_err!("ATTACH: {source}: the environment variable {variable} is not set; set it to the file's key")
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                plan_err!("ATTACH: {source}: the environment variable {variable} is not valid UTF-8")
            }
        }
    }

    /// Where the key came from, for messages.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// An attached SQLite file. Every statement opens its own connection, so reads and writes of
/// different statements never share a transaction, and SQLite's locks serialise writers.
#[derive(Debug)]
pub struct SqliteDatabase {
    name: String,
    path: PathBuf,
    options: AttachOptions,
}

/// One column of a SQLite table as recfusion reads it.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: String,
    pub storage: Storage,
    pub data_type: DataType,
}

/// A SQLite table's columns and keys.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// The name as SQLite spells it (lookups ignore case, as SQLite does).
    pub name: String,
    pub columns: Vec<ColumnInfo>,
    /// Whether some PRIMARY KEY or UNIQUE index can identify a row, which upserts need.
    pub has_unique_key: bool,
}

impl TableInfo {
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.data_type.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }
}

impl SqliteDatabase {
    /// Opens `path`, creating it when it does not exist, and turns on WAL so readers see
    /// either the old or the new version of a table while a statement writes.
    pub fn open(name: &str, path: &Path, options: AttachOptions) -> Result<Self> {
        let context = format!("ATTACH '{}'", path.display());
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return plan_err!("{context}: directory '{}' does not exist", parent.display());
        }
        if path.is_dir() {
            return plan_err!("{context}: this is a directory, not a SQLite file");
        }
        if path.exists() && !options.read_only && is_read_only_file(path) {
            return plan_err!(
                "{context}: the file is read-only; attach it with (READ_ONLY) to read it, or make it writable"
            );
        }
        if !path.exists() && options.read_only {
            return plan_err!("{context}: the file does not exist, and READ_ONLY cannot create it");
        }
        let database = Self {
            name: name.to_string(),
            path: path.to_path_buf(),
            options: options.clone(),
        };
        let conn = database
            .connect(options.read_only)
            .map_err(|e| database.error(&context, e))?;
        let check = |conn: &Connection| -> rusqlite::Result<()> {
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
            if !database.options.read_only {
                conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
            }
            Ok(())
        };
        check(&conn).map_err(|e| database.error(&context, e))?;
        Ok(database)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn read_only(&self) -> bool {
        self.options.read_only
    }

    /// Whether the file is encrypted (attached with a key).
    pub fn encrypted(&self) -> bool {
        self.options.key.is_some()
    }

    /// A new connection; `read_only` for scans, so a reader never takes a write lock.
    pub fn connect(&self, read_only: bool) -> rusqlite::Result<Connection> {
        let mut flags = OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        flags |= if read_only || self.options.read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        };
        let conn = Connection::open_with_flags(&self.path, flags)?;
        if let Some(key) = &self.options.key {
            // Must come first: SQLCipher reads no page before it has the key.
            conn.pragma_update(None, "key", &key.passphrase)?;
        }
        conn.busy_timeout(self.options.busy_timeout)?;
        Ok(conn)
    }

    /// A SQLite error as a DataFusion error that names this database and what was being done.
    pub fn error(&self, context: &str, error: rusqlite::Error) -> DataFusionError {
        let database = format!("database '{}' ({})", self.name, self.path.display());
        let message = match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
                "{database} is locked by another connection; gave up after {:.1} s",
                self.options.busy_timeout.as_secs_f64()
            ),
            Some(ErrorCode::NotADatabase) => match &self.options.key {
                Some(key) => format!(
                    "the key from {} does not open '{}': it is encrypted with another key, or it is not an encrypted SQLite file",
                    key.source(),
                    self.path.display()
                ),
                None => format!(
                    "'{}' is not a SQLite database (if it is an encrypted one, attach it with its key: (KEY_ENV 'VARIABLE'))",
                    self.path.display()
                ),
            },
            Some(ErrorCode::ReadOnly) => format!("{database} is read-only"),
            Some(ErrorCode::CannotOpen) => format!("cannot open '{}': {error}", self.path.display()),
            _ => format!("{error} ({database})"),
        };
        DataFusionError::Execution(format!("{context}: {message}"))
    }

    /// The names of the tables and views in the file.
    pub fn table_names(&self) -> Result<Vec<String>> {
        let names = || -> rusqlite::Result<Vec<String>> {
            let conn = self.connect(true)?;
            let mut statement = conn.prepare(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            )?;
            statement.query_map([], |row| row.get(0))?.collect()
        };
        names().map_err(|e| self.error("listing tables", e))
    }

    /// The columns and keys of `table`, or `None` when it does not exist.
    pub fn table_info(&self, conn: &Connection, table: &str) -> rusqlite::Result<Option<TableInfo>> {
        let name: Option<String> = conn
            .query_row(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1 COLLATE NOCASE",
                [table],
                |row| row.get(0),
            )
            .optional()?;
        let Some(name) = name else { return Ok(None) };
        let recorded = recorded_types(conn, &name)?;
        let mut columns = Vec::new();
        let mut has_primary_key = false;
        let mut statement = conn.prepare("SELECT name, type, pk FROM pragma_table_info(?1)")?;
        let mut rows = statement.query([&name])?;
        while let Some(row) = rows.next()? {
            let column: String = row.get(0)?;
            let declared: String = row.get(1)?;
            let key_position: i64 = row.get(2)?;
            if key_position > 0 {
                has_primary_key = true;
            }
            let (declared_storage, declared_type) = Storage::from_declared(&declared);
            let (storage, data_type) = recorded
                .iter()
                .find(|(c, _)| c == &column)
                .and_then(|(_, t)| t.parse::<DataType>().ok())
                .and_then(|t| types::storage_for(&column, &t).ok().map(|s| (s, t)))
                .filter(|(s, _)| s.declared_type() == declared_storage.declared_type() || declared.is_empty())
                .unwrap_or((declared_storage, declared_type));
            columns.push(ColumnInfo {
                name: column,
                storage,
                data_type,
            });
        }
        let has_unique_index: bool = conn.query_row(
            "SELECT count(*) > 0 FROM pragma_index_list(?1) WHERE \"unique\" = 1",
            [&name],
            |row| row.get(0),
        )?;
        Ok(Some(TableInfo {
            name,
            columns,
            has_unique_key: has_unique_index || has_primary_key,
        }))
    }
}

/// The Arrow types recfusion recorded for `table`'s columns, if it wrote the table.
fn recorded_types(conn: &Connection, table: &str) -> rusqlite::Result<Vec<(String, String)>> {
    let has_metadata: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [COLUMNS_TABLE],
        |row| row.get(0),
    )?;
    if !has_metadata {
        return Ok(Vec::new());
    }
    let mut statement = conn.prepare(&format!(
        "SELECT column_name, arrow_type FROM {COLUMNS_TABLE} WHERE table_name = ?1"
    ))?;
    statement
        .query_map([table], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect()
}

fn is_read_only_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.permissions().readonly())
        .unwrap_or(false)
}

/// `name` quoted as a SQLite identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The databases attached to a session, by name. Kept in the session's config extensions
/// because the catalog may wrap schema providers (URL tables do), which hides their type.
#[derive(Debug, Default)]
struct Attached(Mutex<Registry>);

#[derive(Debug, Default)]
struct Registry {
    databases: HashMap<String, Arc<SqliteDatabase>>,
    /// Names once attached and since detached, which hold an empty [`DetachedSchema`].
    detached: HashSet<String>,
}

/// What a detached name holds: the catalog that serves URL tables cannot deregister a
/// schema, so the name stays registered with no tables in it until it is attached again.
#[derive(Debug)]
struct DetachedSchema;

#[async_trait::async_trait]
impl datafusion::catalog::SchemaProvider for DetachedSchema {
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn table(&self, _name: &str) -> Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
        Ok(None)
    }

    fn table_exist(&self, _name: &str) -> bool {
        false
    }
}

fn attachments(ctx: &SessionContext) -> Arc<Attached> {
    if let Some(attached) = ctx.state().config().get_extension::<Attached>() {
        return attached;
    }
    let attached = Arc::new(Attached::default());
    ctx.state_ref()
        .write()
        .config_mut()
        .set_extension(Arc::clone(&attached));
    attached
}

/// Attaches the SQLite file at `path` as schema `name` of the session's default catalog.
pub fn attach(ctx: &SessionContext, path: &Path, name: &str, options: AttachOptions) -> Result<Arc<SqliteDatabase>> {
    // Each statement opens its own connection, so an in-memory database would be gone after
    // the statement that wrote it: refuse it rather than lose what is written there.
    let shown = path.to_string_lossy();
    if shown.trim().is_empty() {
        return plan_err!("ATTACH: the path is empty; name a SQLite file, e.g. ATTACH 'scratch.sqlite' AS {name}");
    }
    if shown == ":memory:" || shown.starts_with("file::memory:") || shown.contains("mode=memory") {
        return plan_err!(
            "ATTACH: '{shown}' is an in-memory database, which would not outlive one statement; attach a file, e.g. ATTACH 'scratch.sqlite' AS {name}"
        );
    }
    let catalog = default_catalog(ctx)?;
    let attached = attachments(ctx);
    let mut registry = attached.0.lock().expect("attached databases");
    if let Some(db) = registry.databases.get(name) {
        return plan_err!(
            "ATTACH: '{name}' is already attached (to '{}'); DETACH it first",
            db.path.display()
        );
    }
    if catalog.schema(name).is_some() && !registry.detached.contains(name) {
        return plan_err!("ATTACH: the name '{name}' is already used by a schema; choose another with AS");
    }
    let database = Arc::new(SqliteDatabase::open(name, path, options)?);
    catalog.register_schema(name, Arc::new(SqliteSchema::new(Arc::clone(&database))))?;
    registry.detached.remove(name);
    registry.databases.insert(name.to_string(), Arc::clone(&database));
    Ok(database)
}

/// Detaches the database attached as `name`. Returns whether one was.
pub fn detach(ctx: &SessionContext, name: &str) -> Result<bool> {
    let attached = attachments(ctx);
    let mut registry = attached.0.lock().expect("attached databases");
    if registry.databases.remove(name).is_none() {
        return Ok(false);
    }
    default_catalog(ctx)?.register_schema(name, Arc::new(DetachedSchema))?;
    registry.detached.insert(name.to_string());
    Ok(true)
}

/// The attached database a table reference points into, if it points into one.
pub fn attached(ctx: &SessionContext, table: &TableReference) -> Option<Arc<SqliteDatabase>> {
    let state = ctx.state();
    let defaults = &state.config_options().catalog;
    let resolved = table
        .clone()
        .resolve(&defaults.default_catalog, &defaults.default_schema);
    if *resolved.catalog != *defaults.default_catalog {
        return None;
    }
    let attached = state.config().get_extension::<Attached>()?;
    let registry = attached.0.lock().expect("attached databases");
    registry.databases.get(resolved.schema.as_ref()).cloned()
}

fn default_catalog(ctx: &SessionContext) -> Result<Arc<dyn datafusion::catalog::CatalogProvider>> {
    let catalog_name = ctx.state().config_options().catalog.default_catalog.clone();
    ctx.catalog(&catalog_name)
        .ok_or_else(|| DataFusionError::Plan(format!("ATTACH: the default catalog '{catalog_name}' does not exist")))
}
