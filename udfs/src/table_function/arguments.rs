//! The arguments of one table function call, read by position (named arguments were put in
//! their places before planning, [`crate::named_arguments`]). Every check fails with one error
//! shape: `function: argument N (role) must be …, got …`. What is read is remembered, defaults
//! included, so a call can be shown with every option it ran with ([`Arguments::call_text`]).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::catalog::{Session, TableFunctionArgs, TableProvider};
use datafusion::common::{DataFusionError, Result, ScalarValue, TableReference, plan_err};
use datafusion::datasource::listing::ListingTable;
use datafusion::logical_expr::{Documentation, Expr};

use super::Input;

/// A table or view named by an argument.
#[derive(Debug, Clone)]
pub struct NamedTable {
    pub name: String,
    pub provider: Arc<dyn TableProvider>,
}

/// The literal arguments of a call of `function`.
pub struct Arguments<'a> {
    function: &'static str,
    syntax: &'a str,
    /// The documented name of each position (the first of its alternatives).
    names: Vec<&'a str>,
    exprs: &'a [Expr],
    session: &'a dyn Session,
    /// Each argument as read, defaults included, as SQL text.
    read: RefCell<BTreeMap<usize, String>>,
    /// Where the options end and the column names begin, once the count was checked.
    options_end: Cell<Option<usize>>,
}

impl<'a> Arguments<'a> {
    pub fn new(function: &'static str, documentation: &'a Documentation, args: &TableFunctionArgs<'a, 'a>) -> Self {
        let names = documentation
            .arguments
            .iter()
            .flatten()
            .map(|(name, _)| name.split('|').next().unwrap_or_default().trim())
            .collect();
        Self {
            function,
            syntax: &documentation.syntax_example,
            names,
            exprs: args.exprs(),
            session: args.session(),
            read: RefCell::new(BTreeMap::new()),
            options_end: Cell::new(None),
        }
    }

    pub fn function(&self) -> &'static str {
        self.function
    }

    pub fn session(&self) -> &dyn Session {
        self.session
    }

    /// Fails unless the call has a number of arguments in `range`. Past the end of `range` come
    /// the documented column names of the inputs (`user => 'user_id'`), which
    /// [`Arguments::unused_column_names`] checks once the inputs are known.
    pub fn expect_count(&self, range: RangeInclusive<usize>) -> Result<()> {
        self.options_end.set(Some(*range.end()));
        let given = self.exprs.len();
        let column_names = |index: usize| match self.literal(index) {
            None => true,
            Some(value) => matches!(
                value.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ),
        };
        if range.contains(&given)
            || (given > *range.end() && given <= self.names.len() && (*range.end()..given).all(column_names))
        {
            return Ok(());
        }
        plan_err!(
            "{}: expected {}, got {} argument{}",
            self.function,
            self.syntax,
            self.exprs.len(),
            if self.exprs.len() == 1 { "" } else { "s" }
        )
    }

    /// The error for argument `index` (0-based) in `role`, which must be `expected`.
    pub fn invalid(&self, index: usize, role: &str, expected: &str, got: impl std::fmt::Display) -> DataFusionError {
        DataFusionError::Plan(format!(
            "{}: argument {} ({role}) must be {expected}, got {got}",
            self.function,
            index + 1
        ))
    }

    /// Argument `index` as a literal, `None` when absent or NULL. An expression reads as its
    /// text, so errors show what was written.
    fn literal(&self, index: usize) -> Option<ScalarValue> {
        let value = match self.exprs.get(index)? {
            Expr::Literal(value, _) => value.clone(),
            Expr::Negative(inner) => match inner.as_ref() {
                Expr::Literal(value, _) => value.arithmetic_negate().ok()?,
                other => ScalarValue::Utf8(Some(format!("-{other}"))),
            },
            other => ScalarValue::Utf8(Some(other.to_string())),
        };
        (!value.is_null()).then_some(value)
    }

    /// Whether argument `index` is a text literal (rather than a number or nothing).
    pub fn is_text(&self, index: usize) -> bool {
        matches!(
            self.exprs.get(index),
            Some(Expr::Literal(
                ScalarValue::Utf8(Some(_)) | ScalarValue::LargeUtf8(Some(_)) | ScalarValue::Utf8View(Some(_)),
                _
            ))
        )
    }

    /// A text argument, `None` when absent or NULL.
    pub fn text(&self, index: usize, role: &str) -> Result<Option<String>> {
        match self.literal(index) {
            None => Ok(None),
            Some(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => {
                self.remember(index, quoted(&s));
                Ok(Some(s))
            }
            Some(other) => Err(self.invalid(index, role, "a string", other)),
        }
    }

    /// Notes that argument `index` was read as `value` (SQL text), for [`Arguments::call_text`].
    fn remember(&self, index: usize, value: String) {
        self.read.borrow_mut().insert(index, value);
    }

    /// The remembered value of `index`, passed through.
    fn remembered<T: std::fmt::Display>(&self, index: usize, value: T) -> T {
        self.remember(index, value.to_string());
        value
    }

    /// The call as SQL with every argument it was planned with, defaults included: the first
    /// by position, the others by name, e.g.
    /// `train_als('events', model => 'als_v1', factors => 64, …)`.
    pub fn call_text(&self) -> String {
        let read = self.read.borrow();
        let arguments: Vec<String> = read
            .iter()
            .map(|(&index, value)| match (index, self.names.get(index)) {
                (0, _) | (_, None) => value.clone(),
                (_, Some(name)) => format!("{name} => {value}"),
            })
            .collect();
        format!("{}({})", self.function, arguments.join(", "))
    }

    /// The position of the argument documented as `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| *n == name)
    }

    /// The column named for the role `name` (`user => 'user_id'`), `None` when not given.
    pub fn column_name(&self, name: &str) -> Result<Option<(usize, String)>> {
        let Some(index) = self.position(name) else {
            return Ok(None);
        };
        Ok(self.text(index, name)?.map(|column| (index, column)))
    }

    /// The error for arguments past the options that no input took as a column name: they were
    /// given by position beyond the last option.
    pub fn unused_column_names(&self) -> Result<()> {
        let Some(end) = self.options_end.get() else {
            return Ok(());
        };
        let read = self.read.borrow();
        match (end..self.exprs.len()).find(|&index| self.literal(index).is_some() && !read.contains_key(&index)) {
            None => Ok(()),
            Some(index) => plan_err!(
                "{}: argument {} ({}) names a column of an input that this call does not read; expected {}",
                self.function,
                index + 1,
                self.names.get(index).copied().unwrap_or("?"),
                self.syntax
            ),
        }
    }

    /// A text argument, `default` when absent, NULL or ''.
    pub fn text_or(&self, index: usize, role: &str, default: &str) -> Result<String> {
        match self.text(index, role)? {
            Some(text) if !text.is_empty() => Ok(text),
            _ => {
                self.remember(index, quoted(default));
                Ok(default.to_string())
            }
        }
    }

    /// A text argument that must be given and non-empty; `expected` says what it names.
    pub fn required_text(&self, index: usize, role: &str, expected: &str) -> Result<String> {
        match self.text(index, role)? {
            Some(text) if !text.is_empty() => Ok(text),
            _ => Err(self.invalid(index, role, expected, "nothing")),
        }
    }

    /// An integer argument ≥ 1, or `default` when absent or NULL.
    pub fn positive_integer(&self, index: usize, role: &str, default: Option<usize>) -> Result<usize> {
        match (self.optional_positive_integer(index, role)?, default) {
            (Some(n), _) | (None, Some(n)) => Ok(self.remembered(index, n)),
            (None, None) => Err(self.invalid(index, role, "a positive integer", show(self, index, None))),
        }
    }

    /// An integer argument ≥ 1, `None` when absent or NULL.
    pub fn optional_positive_integer(&self, index: usize, role: &str) -> Result<Option<usize>> {
        match self.integer(index) {
            None => Ok(None),
            Some(Ok(n)) if n > 0 => Ok(Some(self.remembered(index, n as usize))),
            other => Err(self.invalid(index, role, "a positive integer", show(self, index, other))),
        }
    }

    /// The seed of a seeded computation: an integer ≥ 0, 42 when absent or NULL.
    pub fn seed(&self, index: usize) -> Result<u64> {
        match self.integer(index) {
            None => Ok(self.remembered(index, 42)),
            Some(Ok(n)) if n >= 0 => Ok(self.remembered(index, n as u64)),
            other => Err(self.invalid(index, "seed", "a non-negative integer", show(self, index, other))),
        }
    }

    /// A finite number in `range`, or `default` when absent or NULL.
    pub fn number(&self, index: usize, role: &str, range: RangeInclusive<f64>, default: f64) -> Result<f64> {
        let value = self.optional_number(index, role, range)?.unwrap_or(default);
        Ok(self.remembered(index, value))
    }

    /// A finite number in `range`, `None` when absent or NULL.
    pub fn optional_number(&self, index: usize, role: &str, range: RangeInclusive<f64>) -> Result<Option<f64>> {
        let Some(value) = self.literal(index) else {
            return Ok(None);
        };
        match value.cast_to(&DataType::Float64) {
            Ok(ScalarValue::Float64(Some(v))) if v.is_finite() && range.contains(&v) => {
                Ok(Some(self.remembered(index, v)))
            }
            _ => {
                let expected = match (range.start(), range.end()) {
                    (start, end) if end.is_infinite() && start.is_infinite() => "a finite number".to_string(),
                    (start, end) if end.is_infinite() => format!("a number ≥ {start}"),
                    (start, end) => format!("a number from {start} to {end}"),
                };
                Err(self.invalid(index, role, &expected, value))
            }
        }
    }

    /// A true/false argument, or `default` when absent or NULL.
    pub fn boolean(&self, index: usize, role: &str, default: bool) -> Result<bool> {
        match self.literal(index) {
            None => Ok(self.remembered(index, default)),
            Some(ScalarValue::Boolean(Some(value))) => Ok(self.remembered(index, value)),
            Some(other) => Err(self.invalid(index, role, "true or false", other)),
        }
    }

    /// The table or view named by argument `index`, `None` when absent, NULL or ''.
    pub fn table(&self, index: usize, role: &str) -> Result<Option<NamedTable>> {
        match self.text(index, role)? {
            Some(name) if !name.is_empty() => {
                let provider = resolve(self.function, self.session, &name, role)?;
                Ok(Some(NamedTable { name, provider }))
            }
            _ => Ok(None),
        }
    }

    /// The input read from the table named by argument `index` (`None` when absent, NULL or
    /// ''), whose columns play `columns`' roles: by position, or the columns the call names
    /// for them (`user => 'user_id'`).
    pub fn input(&self, index: usize, role: &'static str, columns: Option<&'static str>) -> Result<Option<Input>> {
        let Some(table) = self.table(index, role)? else {
            return Ok(None);
        };
        let table = match columns {
            Some(roles) => super::chosen_columns(self.function, role, &table, roles, self)?.unwrap_or(table),
            None => table,
        };
        let input = Input { role, table, columns };
        super::check_roles(self.function, &input)?;
        Ok(Some(input))
    }

    /// [`Arguments::input`] of an argument that must be given.
    pub fn required_input(&self, index: usize, role: &'static str, columns: Option<&'static str>) -> Result<Input> {
        self.input(index, role, columns)?
            .ok_or_else(|| self.invalid(index, role, "the name of a table or view", "nothing"))
    }

    /// The table or view named by argument `index`, which must be given.
    pub fn required_table(&self, index: usize, role: &str) -> Result<NamedTable> {
        self.table(index, role)?
            .ok_or_else(|| self.invalid(index, role, "the name of a table or view", "nothing"))
    }

    /// An integer literal as i64: `None` when absent, `Err` holding the value when it is not an
    /// integer (or does not fit).
    fn integer(&self, index: usize) -> Option<std::result::Result<i64, ScalarValue>> {
        let value = self.literal(index)?;
        if !value.data_type().is_integer() {
            return Some(Err(value));
        }
        Some(match value.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(n))) => Ok(n),
            _ => Err(value),
        })
    }
}

/// `text` as a SQL string literal.
pub fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn show(args: &Arguments, index: usize, value: Option<std::result::Result<i64, ScalarValue>>) -> String {
    match value {
        Some(Ok(n)) => n.to_string(),
        Some(Err(v)) => v.to_string(),
        None if index < args.exprs.len() => "NULL".to_string(),
        None => "nothing".to_string(),
    }
}

/// The table or view `name`, as the session resolves it.
pub fn resolve(function: &str, session: &dyn Session, name: &str, role: &str) -> Result<Arc<dyn TableProvider>> {
    let defaults = &session.config_options().catalog;
    let lookup = |reference: TableReference| -> Result<Option<Arc<dyn TableProvider>>> {
        let reference = reference.resolve(&defaults.default_catalog, &defaults.default_schema);
        let schema = session
            .catalog_list()
            .catalog(&reference.catalog)
            .and_then(|catalog| catalog.schema(&reference.schema));
        match schema {
            // Catalog lookups are async for remote catalogs; ours answer at once.
            Some(schema) => futures::executor::block_on(schema.table(&reference.table))
                .map_err(|e| e.context(format!("{function}: reading the {role} table '{name}'"))),
            None => Ok(None),
        }
    };
    let mut table = lookup(TableReference::from(name))?;
    // 'events.csv' parses as table 'csv' of schema 'events'; a file of that name beside the
    // session is what the user meant.
    if table.is_none() && name.contains('.') && std::path::Path::new(name).exists() {
        table = lookup(TableReference::bare(name))?;
    }
    let table = table.ok_or_else(|| DataFusionError::Plan(format!("{function}: {role} table '{name}' not found")))?;
    check_listed_files_exist(function, name, role, table.as_ref())?;
    Ok(table)
}

/// A table over local files whose file or directory is gone lists no files and reads as
/// empty, so a function would answer from no rows as if there were none; say so instead.
fn check_listed_files_exist(function: &str, name: &str, role: &str, table: &dyn TableProvider) -> Result<()> {
    let Some(listing) = table.downcast_ref::<ListingTable>() else {
        return Ok(());
    };
    for url in listing.table_paths() {
        if url.scheme() != "file" || url.get_glob().is_some() {
            continue;
        }
        if let Ok(path) = url.get_url().to_file_path()
            && !path.exists()
        {
            return plan_err!(
                "{function}: the {role} table '{name}' reads '{}', which does not exist (moved or deleted since the table was created?)",
                path.display()
            );
        }
    }
    Ok(())
}

/// Fails unless ids in column `b` of one table can be matched with ids in column `a` of
/// another: the same type, both integers, or both text. `a` and `b` are (table role, column).
pub fn expect_same_ids(function: &str, a: (&str, &Field), b: (&str, &Field)) -> Result<()> {
    let text = |t: &DataType| match t {
        DataType::Dictionary(_, values) => {
            matches!(**values, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        }
        _ => matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View),
    };
    let (ta, tb) = (a.1.data_type(), b.1.data_type());
    if ta == tb || (ta.is_integer() && tb.is_integer()) || (text(ta) && text(tb)) || tb.is_null() {
        return Ok(());
    }
    plan_err!(
        "{function}: column '{}' of the {} table holds {tb}, which cannot match the {} ids of the {} table's column '{}'",
        b.1.name(),
        b.0,
        ta,
        a.0,
        a.1.name()
    )
}
