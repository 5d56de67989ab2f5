//! One SQL statement, from text to a result: the statements recfusion runs itself (`ATTACH`,
//! `DETACH`, and creating, writing, indexing and dropping tables of attached SQLite files),
//! everything else handed to DataFusion. The shell, scripts and Rust callers all come here.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Constraint, Constraints, DataFusionError, Result, TableReference, plan_err};
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{DdlStatement, DmlStatement, LogicalPlan, LogicalPlanBuilder, WriteOp};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, IndexColumn, ObjectName, OnInsert, Statement, TableConstraint, TableObject,
};
use datafusion::sql::sqlparser::dialect::DuckDbDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::sqlite::write::{WriteMode, WriteRequest, drop_table, execute_ddl, write};
use crate::sqlite::{self, AttachOptions, SqliteTable, quote};

/// Where a `COPY … TO 'file'` writes before the file is complete: a hidden name in the same
/// directory, with the same extension (which tells DataFusion to write one file). `None` for
/// partitioned, directory and remote targets, which DataFusion writes as it does.
fn partial_path(output_url: &str, partition_by: &[String]) -> Option<std::path::PathBuf> {
    if !partition_by.is_empty() || output_url.contains("://") || output_url.ends_with('/') {
        return None;
    }
    let target = Path::new(output_url);
    let extension = target.extension()?.to_str()?;
    let stem = target.file_stem()?.to_str()?;
    let name = format!(".{stem}.partial-{}.{extension}", std::process::id());
    Some(target.with_file_name(name))
}

/// Runs a `COPY` into `partial`, then renames it over the target: a query that fails part-way
/// leaves the target as it was, and no partial file behind.
async fn copy_atomically(
    ctx: &SessionContext,
    copy: &datafusion::logical_expr::dml::CopyTo,
    partial: &Path,
) -> Result<DataFrame> {
    let target = copy.output_url.clone();
    let mut into_partial = copy.clone();
    into_partial.output_url = partial.display().to_string();
    let written = DataFrame::new(ctx.state(), LogicalPlan::Copy(into_partial))
        .collect()
        .await;
    let renamed = written.and_then(|batches| {
        std::fs::rename(partial, &target).map_err(|e| {
            DataFusionError::Execution(format!("COPY: cannot move the finished file to '{target}': {e}"))
        })?;
        Ok(batches)
    });
    match renamed {
        Ok(batches) => ctx.read_batches(batches),
        Err(error) => {
            let _ = std::fs::remove_file(partial);
            Err(error)
        }
    }
}

/// Runs one SQL statement and returns its result. `ATTACH`/`DETACH` and writes to attached
/// SQLite files are carried out here (writes return a one-row `count`); anything else is
/// planned and run by DataFusion, as `SessionContext::sql` would.
pub async fn execute_sql(ctx: &SessionContext, sql: &str) -> Result<DataFrame> {
    crate::nesting::check_depth(sql)?;
    match first_keyword(sql).as_deref() {
        Some("ATTACH") => return attach_statement(ctx, sql),
        Some("DETACH") => return detach_statement(ctx, sql),
        Some("DROP") => {
            if let Some(dropped) = drop_model_statement(ctx, sql)? {
                return Ok(dropped);
            }
        }
        _ => {}
    }
    let state = ctx.state();
    let dialect = state.config_options().sql_parser.dialect;
    let mut statement = state.sql_to_statement(sql, &dialect)?;
    recfusion_udfs::named_arguments::resolve_statement(&mut statement)?;
    if let DFStatement::CreateExternalTable(create) = &statement {
        for location in &create.locations {
            crate::session::refuse_special_file(location)?;
        }
    }
    let mut on_conflict = None;
    let mut query_keys = Vec::new();
    if let DFStatement::Statement(inner) = &mut statement {
        match inner.as_mut() {
            // DataFusion looks key columns up by qualified name, which a query's columns
            // (`t.user_id`) do not match; the keys of `CREATE TABLE db.t (PRIMARY KEY (…)) AS
            // SELECT …` are resolved below against the result's column names instead.
            Statement::CreateTable(create)
                if create.query.is_some()
                    && create.columns.is_empty()
                    && sqlite::attached(ctx, &table_reference(ctx, &create.name)?).is_some() =>
            {
                query_keys = std::mem::take(&mut create.constraints);
            }
            Statement::CreateIndex(index) => {
                if let Some(database) = sqlite::attached(ctx, &table_reference(ctx, &index.table_name)?) {
                    return create_index(ctx, &database, index);
                }
            }
            Statement::Insert(insert) => {
                if let (Some(OnInsert::OnConflict(clause)), TableObject::TableName(name)) = (&insert.on, &insert.table)
                    && sqlite::attached(ctx, &table_reference(ctx, name)?).is_some()
                {
                    on_conflict = Some(clause.to_string());
                    insert.on = None;
                }
            }
            _ => {}
        }
    }
    let mut plan = state
        .statement_to_plan(statement)
        .await
        .map_err(crate::function_errors::clarify)?;
    if let LogicalPlan::Copy(copy) = &mut plan
        && copy.file_type.get_ext().eq_ignore_ascii_case("csv")
        && let Some(as_text) = crate::nested_text::plan_as_text(&copy.input)?
    {
        copy.input = Arc::new(as_text);
    }
    if let LogicalPlan::Copy(copy) = &plan
        && let Some(partial) = partial_path(&copy.output_url, &copy.partition_by)
    {
        return copy_atomically(ctx, copy, &partial).await;
    }
    match &plan {
        LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
            if let Some(database) = sqlite::attached(ctx, &create.name) {
                let mode = match (create.or_replace, create.if_not_exists) {
                    (true, _) => WriteMode::CreateOrReplace,
                    (false, if_not_exists) => WriteMode::Create { if_not_exists },
                };
                let schema = Arc::clone(create.input.schema().inner());
                let mut constraints = create.constraints.clone();
                if !query_keys.is_empty() {
                    constraints = query_constraints(ctx, &query_keys, &schema)?;
                }
                let request = WriteRequest {
                    table: create.name.table().to_string(),
                    schema,
                    mode,
                    constraints,
                    statement: sql.to_string(),
                };
                let input = DataFrame::new(state.clone(), create.input.as_ref().clone());
                let rows = write(&database, request, input.execute_stream().await?).await?;
                return count_result(ctx, rows);
            }
            if let Some(created) = crate::cluster::create_table(ctx, create).await? {
                return Ok(created);
            }
        }
        LogicalPlan::Ddl(DdlStatement::DropTable(drop)) => {
            if let Some(database) = sqlite::attached(ctx, &drop.name) {
                drop_table(&database, drop.name.table(), drop.if_exists)?;
                return no_rows(ctx);
            }
        }
        LogicalPlan::Dml(DmlStatement {
            target,
            op: WriteOp::Insert(op),
            input,
            ..
        }) => {
            let provider = datafusion::datasource::source_as_provider(target)?;
            if let Some(table) = provider.downcast_ref::<SqliteTable>() {
                let mode = match (on_conflict, op) {
                    (Some(clause), InsertOp::Append) => WriteMode::OnConflict(clause),
                    (Some(_), _) => return plan_err!("ON CONFLICT cannot be combined with OR REPLACE or OVERWRITE"),
                    (None, InsertOp::Append) => WriteMode::Append,
                    (None, InsertOp::Overwrite) => WriteMode::Overwrite,
                    (None, InsertOp::Replace) => WriteMode::InsertOrReplace,
                };
                let request = WriteRequest {
                    table: table.info().name.clone(),
                    schema: Arc::clone(input.schema().inner()),
                    mode,
                    constraints: Default::default(),
                    statement: sql.to_string(),
                };
                let target = format!("{}.{}", table.database().name(), request.table);
                let schema = Arc::clone(&request.schema);
                let input = DataFrame::new(state.clone(), input.as_ref().clone());
                let written = async { write(table.database(), request, input.execute_stream().await?).await };
                let rows = written
                    .await
                    .map_err(|error| name_unfit_column(&target, &schema, error))?;
                return count_result(ctx, rows);
            }
        }
        _ => {}
    }
    ctx.execute_logical_plan(plan).await
}

/// Names the table and column a value could not be converted for: DataFusion casts inserted
/// values to the table's column types and reports only "Cannot cast string 'abc' to value of
/// Int64 type".
fn name_unfit_column(target: &str, columns: &Schema, error: DataFusionError) -> DataFusionError {
    let message = error.to_string();
    let Some(type_name) = message
        .split_once("to value of ")
        .and_then(|(_, rest)| rest.split_once(" type"))
        .map(|(type_name, _)| type_name)
    else {
        return error;
    };
    let candidates: Vec<&str> = columns
        .fields()
        .iter()
        .filter(|field| field.data_type().to_string() == type_name)
        .map(|field| field.name().as_str())
        .collect();
    let which = match candidates.as_slice() {
        [] => return error.context(format!("inserting into {target}")),
        [column] => format!("column {column}"),
        several => format!("one of the columns {}", several.join(", ")),
    };
    let reason = message.rsplit("caused by\n").next().unwrap_or(&message).trim();
    DataFusionError::Execution(format!(
        "inserting into {target}: a value does not convert to the type of {which} ({type_name}): {reason}"
    ))
}

/// PRIMARY KEY and UNIQUE constraints of a `CREATE TABLE … AS` as column indices of its result.
fn query_constraints(ctx: &SessionContext, constraints: &[TableConstraint], schema: &SchemaRef) -> Result<Constraints> {
    let normalize = ctx.state().config_options().sql_parser.enable_ident_normalization;
    let position = |column: &IndexColumn| -> Result<usize> {
        let SqlExpr::Identifier(ident) = &column.column.expr else {
            return plan_err!("key columns must be column names, got {}", column.column.expr);
        };
        let name = if normalize && ident.quote_style.is_none() {
            ident.value.to_lowercase()
        } else {
            ident.value.clone()
        };
        schema
            .index_of(&name)
            .map_err(|_| datafusion::common::plan_datafusion_err!("key column '{name}' is not a column of the query"))
    };
    let positions = |columns: &[IndexColumn]| columns.iter().map(position).collect::<Result<Vec<_>>>();
    let resolved = constraints
        .iter()
        .map(|constraint| match constraint {
            TableConstraint::PrimaryKey(key) => Ok(Constraint::PrimaryKey(positions(&key.columns)?)),
            TableConstraint::Unique(unique) => Ok(Constraint::Unique(positions(&unique.columns)?)),
            other => plan_err!("only PRIMARY KEY and UNIQUE constraints are supported here, got {other}"),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Constraints::new_unverified(resolved))
}

/// The first keyword of `sql`, upper-cased, past whitespace and comments.
pub fn first_keyword(sql: &str) -> Option<String> {
    let dialect = DuckDbDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize().ok()?;
    tokens.into_iter().find_map(|token| match token {
        Token::Whitespace(_) => None,
        Token::Word(word) => Some(Some(word.value.to_ascii_uppercase())),
        _ => Some(None),
    })?
}

fn parse_duckdb(sql: &str) -> Result<Statement> {
    let mut statements = DFParser::parse_sql_with_dialect(sql, &DuckDbDialect {})?;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(DFStatement::Statement(statement)), true) => Ok(*statement),
        _ => plan_err!("expected one statement, got: {sql}"),
    }
}

/// `ATTACH [DATABASE] [IF NOT EXISTS] 'file.sqlite' [AS name] [(TYPE sqlite, READ_ONLY,
/// KEY_ENV 'VARIABLE')]`. The options are read here rather than by the parser, which knows only
/// DuckDB's.
fn attach_statement(ctx: &SessionContext, sql: &str) -> Result<DataFrame> {
    let (statement, attach_options) = split_attach_options(sql)?;
    let Statement::AttachDuckDBDatabase {
        if_not_exists,
        database_path,
        database_alias,
        ..
    } = parse_duckdb(&statement)?
    else {
        return plan_err!("ATTACH: expected ATTACH 'file.sqlite' AS name");
    };
    let mut options = AttachOptions::default();
    for (option, value) in attach_options {
        match (option.to_ascii_uppercase().as_str(), value) {
            ("READ_ONLY", None) => options.read_only = true,
            ("READ_ONLY", Some(Token::Word(word)))
                if ["TRUE", "FALSE"].contains(&word.value.to_uppercase().as_str()) =>
            {
                options.read_only = word.value.eq_ignore_ascii_case("true");
            }
            ("TYPE", Some(Token::Word(kind))) if kind.value.eq_ignore_ascii_case("sqlite") => {}
            ("TYPE", Some(kind)) => {
                return plan_err!("ATTACH: only SQLite files can be attached (TYPE sqlite), not TYPE {kind}");
            }
            ("KEY_ENV", Some(Token::SingleQuotedString(variable))) => {
                options.key = Some(sqlite::DatabaseKey::from_env(&variable)?);
            }
            ("KEY_ENV", _) => {
                return plan_err!(
                    "ATTACH: KEY_ENV takes the name of an environment variable in quotes, e.g. KEY_ENV 'RECFUSION_KEY'"
                );
            }
            ("KEY" | "ENCRYPTION_KEY" | "PASSWORD", _) => {
                return plan_err!(
                    "ATTACH: a key is never written in SQL, where the shell history and scripts would keep it; put it in an environment variable and give its name: (KEY_ENV 'RECFUSION_KEY')"
                );
            }
            (other, _) => {
                return plan_err!(
                    "ATTACH: unknown option {other}; the options are TYPE sqlite, READ_ONLY and KEY_ENV 'VARIABLE'"
                );
            }
        }
    }
    let path = Path::new(&database_path.value);
    let name = match database_alias {
        Some(alias) => alias.value,
        None => default_name(path)?,
    };
    if if_not_exists && sqlite::attached(ctx, &TableReference::partial(name.as_str(), "")).is_some() {
        return no_rows(ctx);
    }
    sqlite::attach(ctx, path, &name, options)?;
    no_rows(ctx)
}

/// An option of `ATTACH`: its name and its value, if it has one.
type AttachOption = (String, Option<Token>);

/// An `ATTACH` statement without its trailing `( … )` option list, and the options, each a name
/// and an optional value. A value is never shown in an error: it could be a key.
fn split_attach_options(sql: &str) -> Result<(String, Vec<AttachOption>)> {
    let tokens = Tokenizer::new(&DuckDbDialect {}, sql)
        .tokenize()
        .map_err(|e| DataFusionError::Plan(format!("ATTACH: {e}")))?;
    let significant = |t: &Token| !matches!(t, Token::Whitespace(_) | Token::SemiColon);
    let Some(close) = tokens.iter().rposition(significant) else {
        return Ok((sql.to_string(), Vec::new()));
    };
    if tokens[close] != Token::RParen {
        return Ok((sql.to_string(), Vec::new()));
    }
    let mut depth = 0;
    let mut open = None;
    for index in (0..=close).rev() {
        match tokens[index] {
            Token::RParen => depth += 1,
            Token::LParen => {
                depth -= 1;
                if depth == 0 {
                    open = Some(index);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(open) = open else {
        return plan_err!("ATTACH: unbalanced parentheses in the option list");
    };
    let mut options = Vec::new();
    for option in tokens[open + 1..close].split(|t| *t == Token::Comma) {
        let parts: Vec<&Token> = option.iter().filter(|t| significant(t)).collect();
        match parts.as_slice() {
            [] => {}
            [Token::Word(name)] => options.push((name.value.clone(), None)),
            [Token::Word(name), value] => options.push((name.value.clone(), Some((*value).clone()))),
            [Token::Word(name), ..] => {
                return plan_err!("ATTACH: option {} takes at most one value", name.value);
            }
            _ => {
                return plan_err!(
                    "ATTACH: each option is a name and at most one value, e.g. (READ_ONLY, KEY_ENV 'RECFUSION_KEY')"
                );
            }
        }
    }
    let statement = tokens[..open].iter().map(Token::to_string).collect();
    Ok((statement, options))
}

/// The name a file is attached as when no `AS` is given: its stem, as DuckDB does.
pub fn default_name(path: &Path) -> Result<String> {
    match path.file_stem().and_then(|s| s.to_str()) {
        Some(stem) if !stem.is_empty() => Ok(stem.to_string()),
        _ => plan_err!(
            "ATTACH '{}': cannot derive a name from the path; add AS name",
            path.display()
        ),
    }
}

/// `DETACH [DATABASE] [IF EXISTS] name`.
fn detach_statement(ctx: &SessionContext, sql: &str) -> Result<DataFrame> {
    let Statement::DetachDuckDBDatabase {
        if_exists,
        database_alias,
        ..
    } = parse_duckdb(sql)?
    else {
        return plan_err!("DETACH: expected DETACH name");
    };
    if !sqlite::detach(ctx, &database_alias.value)? && !if_exists {
        return plan_err!("DETACH: no database named '{}' is attached", database_alias.value);
    }
    no_rows(ctx)
}

/// `DROP MODEL [IF EXISTS] name`: removes a model kept by name from the models directory, as
/// BigQuery ML's `DROP MODEL` does; `None` for any other `DROP`.
fn drop_model_statement(ctx: &SessionContext, sql: &str) -> Result<Option<DataFrame>> {
    let dialect = DuckDbDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| DataFusionError::Plan(format!("DROP MODEL: {e}")))?;
    let mut words = tokens
        .into_iter()
        .filter(|token| !matches!(token, Token::Whitespace(_)) && *token != Token::SemiColon);
    let word = |token: &Option<Token>, expected: &str| matches!(token, Some(Token::Word(word)) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case(expected));
    let (_drop, model) = (words.next(), words.next());
    if !word(&model, "MODEL") {
        return Ok(None);
    }
    let mut next = words.next();
    let if_exists = word(&next, "IF");
    if if_exists {
        if !word(&words.next(), "EXISTS") {
            return plan_err!("DROP MODEL: expected DROP MODEL [IF EXISTS] name");
        }
        next = words.next();
    }
    let name = match next {
        Some(Token::Word(word)) => word.value,
        Some(Token::SingleQuotedString(text)) => text,
        _ => return plan_err!("DROP MODEL: expected DROP MODEL [IF EXISTS] name"),
    };
    if let Some(extra) = words.next() {
        return plan_err!("DROP MODEL {name}: unexpected '{extra}' after the name");
    }
    recfusion_udfs::models::directory::drop_model(ctx.state().config(), &name, if_exists)?;
    Ok(Some(no_rows(ctx)?))
}

/// `CREATE [UNIQUE] INDEX [IF NOT EXISTS] [name] ON db.table (column, …)`, run in SQLite.
fn create_index(
    ctx: &SessionContext,
    database: &sqlite::SqliteDatabase,
    index: &datafusion::sql::sqlparser::ast::CreateIndex,
) -> Result<DataFrame> {
    let table = table_reference(ctx, &index.table_name)?;
    let context = format!("CREATE INDEX ON {}.{}", database.name(), table.table());
    let columns = index
        .columns
        .iter()
        .map(|c| match &c.column.expr {
            SqlExpr::Identifier(ident) => Ok(ident.value.clone()),
            other => plan_err!("{context}: index columns must be column names, got {other}"),
        })
        .collect::<Result<Vec<_>>>()?;
    if columns.is_empty() {
        return plan_err!("{context}: name at least one column");
    }
    let name = match &index.name {
        Some(name) => name.0.last().map(|part| part.to_string()).unwrap_or_default(),
        None => format!("{}_{}_idx", table.table(), columns.join("_")),
    };
    let sql = format!(
        "CREATE {}INDEX {}{} ON {} ({})",
        if index.unique { "UNIQUE " } else { "" },
        if index.if_not_exists { "IF NOT EXISTS " } else { "" },
        quote(name.trim_matches('"')),
        quote(table.table()),
        columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
    );
    execute_ddl(database, &context, &sql)?;
    no_rows(ctx)
}

fn table_reference(ctx: &SessionContext, name: &ObjectName) -> Result<TableReference> {
    let normalize = ctx.state().config_options().sql_parser.enable_ident_normalization;
    object_name_to_table_reference(name.clone(), normalize)
}

fn count_result(ctx: &SessionContext, rows: u64) -> Result<DataFrame> {
    let schema = Arc::new(Schema::new(vec![Field::new("count", DataType::UInt64, false)]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(UInt64Array::from(vec![rows]))])?;
    ctx.read_batch(batch)
}

fn no_rows(ctx: &SessionContext) -> Result<DataFrame> {
    Ok(DataFrame::new(ctx.state(), LogicalPlanBuilder::empty(false).build()?))
}
