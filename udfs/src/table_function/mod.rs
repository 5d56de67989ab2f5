//! The toolkit every recfusion table function is built from, and nothing above it: reading
//! arguments ([`Arguments`]), the logical node a call plans to ([`TableCallNode`]) with its
//! options as plain data ([`TableCall`]), the operator that computes from whole inputs
//! ([`ComputeExec`]), the planner that turns nodes into operators ([`planner`]), and the
//! interaction matrices the collaborative-filtering and training functions read
//! ([`interactions`]).
//!
//! A function implements [`TableFunction`]: `plan` checks a call's arguments at planning time
//! and says which tables it reads, with which options, returning which columns; `compute`
//! turns the inputs into rows when the query runs. [`Registered`] makes it a DataFusion table
//! function.

pub mod arguments;
pub mod exec;
pub mod interactions;
pub mod node;
pub mod planner;

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider, view::ViewTable};
use datafusion::common::{Column, DataFusionError, Result, exec_err, plan_err};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Documentation, Expr, Extension, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;
use serde::Serialize;

pub use arguments::{Arguments, NamedTable, expect_same_ids};
pub use exec::{ComputeExec, Interrupt, Run};
pub use node::{TableCall, TableCallNode};

/// A recfusion table function.
pub trait TableFunction: Debug + Send + Sync {
    /// Its SQL name.
    fn name(&self) -> &'static str;

    /// What `SHOW FUNCTIONS`, `information_schema.routines` and `\df` show.
    fn documentation(&self) -> &Documentation;

    /// Checks the arguments of a call and plans it; runs when the query is planned.
    fn plan(&self, args: &Arguments) -> Result<Planned>;

    /// The rows of a call from its inputs, each read whole; runs when the query runs. What it
    /// holds besides its inputs and output it accounts with [`Run::reserve`] as soon as the data
    /// tells how much that is.
    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch>;

    /// The rows of [`TableFunction::compute`], handed to `emit` in parts as they are made;
    /// `emit` answers false once nobody reads them any more. A function whose output dwarfs its
    /// inputs (`fuse_ranks` over a grid of weightings) overrides it, so that its output is never
    /// held whole; the others make it whole and account it.
    fn compute_in_parts(
        &self,
        inputs: &[RecordBatch],
        run: &Run,
        emit: &mut dyn FnMut(RecordBatch) -> Result<bool>,
    ) -> Result<()> {
        let output = self.compute(inputs, run)?;
        run.reserve(output.get_array_memory_size())?;
        emit(output)?;
        Ok(())
    }

    /// The operator of a function that has its own (streaming) one; `None` for the others,
    /// which run as a [`ComputeExec`] that reads every input whole and calls
    /// [`TableFunction::compute`].
    fn own_operator(
        &self,
        _call: &TableCall,
        _inputs: &[Arc<dyn ExecutionPlan>],
        _schema: &SchemaRef,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        Ok(None)
    }
}

/// An input of a call: a named table whose columns play the roles `columns` names by
/// position, e.g. `"user, item[, weight]"` (optional roles in brackets); `None` reads every
/// column. Each role is also the documented name of the argument that names its column
/// (`user => 'user_id'`), so a role must be unique among a function's inputs.
#[derive(Debug)]
pub struct Input {
    pub role: &'static str,
    pub table: NamedTable,
    pub columns: Option<&'static str>,
}

/// The one column of `fields` that looks as if it plays `role`: for a vector role the one
/// list column, else the one other column named after it (`user` → `user_id`, `exclude_item`
/// → `item_id`, `users_column` → `user_id`), if exactly one does.
fn likely_column<'a>(role: &str, fields: &'a Fields) -> Option<&'a str> {
    let key = match role.rsplit_once('_') {
        Some((head, "column")) => head.trim_end_matches('s'),
        Some((_, last)) => last,
        None => role,
    };
    let is_vector = |field: &Field| {
        matches!(
            field.data_type(),
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _)
        )
    };
    let plays = |field: &&FieldRef| {
        if key == "vector" {
            return is_vector(field);
        }
        let column = field.name().to_lowercase();
        !is_vector(field) && (column.contains(key) || (column.len() >= 3 && key.starts_with(&column)))
    };
    let matches: Vec<&FieldRef> = fields.iter().filter(plays).collect();
    match matches.as_slice() {
        [field] => Some(field.name().as_str()),
        _ => None,
    }
}

/// For a view's SELECT list: each role's likely column, else the role in angle brackets for
/// the user to fill in; optional roles without such a column are left out.
fn likely_columns(roles: &str, columns: &Fields) -> String {
    let (required, _) = role_counts(roles);
    let chosen: Vec<String> = role_names(roles)
        .enumerate()
        .filter_map(|(position, role)| match likely_column(role, columns) {
            Some(column) => Some(column.to_string()),
            None if position >= required => None,
            None => Some(format!("<{role}>")),
        })
        .collect();
    chosen.join(", ")
}

/// The named form of a call's column arguments: `user => 'user_id', item => 'item_id'`.
fn named_form(roles: &str, columns: &Fields) -> String {
    let (required, _) = role_counts(roles);
    let chosen: Vec<String> = role_names(roles)
        .enumerate()
        .filter_map(|(position, role)| match likely_column(role, columns) {
            Some(column) => Some(format!("{role} => '{column}'")),
            None if position >= required => None,
            None => Some(format!("{role} => '<column>'")),
        })
        .collect();
    chosen.join(", ")
}

/// How many columns `roles` ("user, item[, weight]") asks for at least and at most.
fn role_counts(roles: &str) -> (usize, usize) {
    let count = |text: &str| text.split(',').filter(|role| !role.trim().is_empty()).count();
    let required = roles.split('[').next().unwrap_or_default();
    (count(required), count(&roles.replace(['[', ']'], "")))
}

/// A planned call: what it reads, its options, and the columns it returns.
#[derive(Debug)]
pub struct Planned {
    pub inputs: Vec<Input>,
    pub options: serde_json::Map<String, serde_json::Value>,
    pub schema: SchemaRef,
}

impl Planned {
    /// A plan whose options are `options` as plain data.
    pub fn new(inputs: Vec<Input>, options: &impl Serialize, schema: SchemaRef) -> Result<Self> {
        let options = match serde_json::to_value(options) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(serde_json::Value::Null) => serde_json::Map::new(),
            Ok(other) => return plan_err!("table function options must be a struct, got {other}"),
            Err(e) => return Err(DataFusionError::Plan(format!("table function options: {e}"))),
        };
        Ok(Self {
            inputs,
            options,
            schema,
        })
    }
}

/// A [`TableFunction`] as DataFusion calls it: each call becomes a [`TableCallNode`] over
/// scans of its inputs.
#[derive(Debug)]
pub struct Registered(pub Arc<dyn TableFunction>);

impl TableFunctionImpl for Registered {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let function = &self.0;
        let arguments = Arguments::new(function.name(), function.documentation(), &args);
        let planned = function.plan(&arguments)?;
        let mut inputs = Vec::with_capacity(planned.inputs.len());
        let mut names = Vec::with_capacity(planned.inputs.len());
        for input in planned.inputs {
            inputs.push(scan(&input)?);
            names.push((input.role.to_string(), input.table.name));
        }
        arguments.unused_column_names()?;
        let call = TableCall {
            function: function.name().to_string(),
            inputs: names,
            options: planned.options,
            sql: arguments.call_text(),
        };
        let node = TableCallNode::new(call, Arc::clone(function), inputs, planned.schema)?;
        let plan = LogicalPlan::Extension(Extension { node: Arc::new(node) });
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

/// The roles of `roles` ("user, item[, weight]") in order.
fn role_names(roles: &str) -> impl Iterator<Item = &str> {
    roles
        .split([',', '[', ']'])
        .map(str::trim)
        .filter(|role| !role.is_empty())
}

/// The plan that reads an input: a scan of the table (a view is inlined).
fn scan(input: &Input) -> Result<LogicalPlan> {
    let table = &input.table;
    LogicalPlanBuilder::scan(
        table.name.as_str(),
        provider_as_source(Arc::clone(&table.provider)),
        None,
    )?
    .build()
}

/// Fails unless the columns of `input`'s table match its roles one to one: with more columns
/// than roles, the roles would silently fall on the wrong columns. Columns the call named for
/// the roles (`user => 'user_id'`) were chosen already ([`Arguments::input`]).
pub(crate) fn check_roles(function: &str, input: &Input) -> Result<()> {
    let Some(roles) = input.columns else {
        return Ok(());
    };
    let table = &input.table;
    let schema = table.provider.schema();
    let (required, most) = role_counts(roles);
    let found: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let available = found.len();
    if available >= required && available <= most {
        return Ok(());
    }
    let suggestion = if available > most {
        format!(
            "; name the columns, e.g. {function}('{}', …, {}), or pass a view with exactly those columns, e.g. CREATE VIEW {}_{} AS SELECT {} FROM {}",
            table.name,
            named_form(roles, schema.fields()),
            input.role,
            function,
            likely_columns(roles, schema.fields()),
            table.name
        )
    } else {
        String::new()
    };
    plan_err!(
        "{function}: the {} table '{}' has {available} columns ({}), but {function} reads its \
         columns by position as ({roles}){suggestion}",
        input.role,
        table.name,
        found.join(", ")
    )
}

/// The table `table` with only the columns named for `roles` by the call, in the roles'
/// order; `None` when the call names none of them.
pub(crate) fn chosen_columns(
    function: &str,
    input_role: &str,
    table: &NamedTable,
    roles: &str,
    arguments: &Arguments,
) -> Result<Option<NamedTable>> {
    let mut chosen = Vec::new();
    for (position, role) in role_names(roles).enumerate() {
        chosen.push((position, role, arguments.column_name(role)?));
    }
    if chosen.iter().all(|(_, _, named)| named.is_none()) {
        return Ok(None);
    }
    let schema = table.provider.schema();
    let found: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let (required, _) = role_counts(roles);
    let mut columns = Vec::new();
    for (position, role, named) in chosen {
        let Some((_, column)) = named else {
            if position < required {
                return plan_err!(
                    "{function}: columns of the {input_role} table '{}' are named for some roles but not for {role}; name every one of ({roles}), e.g. {role} => '{}'",
                    table.name,
                    likely_column(role, schema.fields()).unwrap_or("column")
                );
            }
            continue;
        };
        let Some(field) = find_column(&found, &column) else {
            return plan_err!(
                "{function}: {role} => '{column}' names no column of the {input_role} table '{}', whose columns are {}",
                table.name,
                found.join(", ")
            );
        };
        columns.push(Expr::Column(Column::from_name(field)));
    }
    let plan = LogicalPlanBuilder::scan(
        table.name.as_str(),
        provider_as_source(Arc::clone(&table.provider)),
        None,
    )?
    .project(columns)?
    .build()?;
    Ok(Some(NamedTable {
        name: table.name.clone(),
        provider: Arc::new(ViewTable::new(plan, None)),
    }))
}

/// The column of `columns` called `name`: exactly, else the one that matches it ignoring case.
fn find_column<'a>(columns: &[&'a str], name: &str) -> Option<&'a str> {
    if let Some(exact) = columns.iter().find(|c| **c == name) {
        return Some(exact);
    }
    let mut folded = columns.iter().filter(|c| c.eq_ignore_ascii_case(name));
    match (folded.next(), folded.next()) {
        (Some(column), None) => Some(column),
        _ => None,
    }
}

/// The body of [`TableFunction::compute`] for functions with their own operator.
pub fn computed_by_own_operator(function: &str) -> Result<RecordBatch> {
    exec_err!("{function}: runs as its own operator, not as a computation")
}
