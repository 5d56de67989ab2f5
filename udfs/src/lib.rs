//! recfusion's SQL functions: vector math, text embeddings, profile aggregates, models trained
//! in-process, scoring and top-k, evaluation, privacy (pseudonyms, differentially private
//! aggregates), and file readers. Nothing here depends on the
//! CLI or SQLite, so any DataFusion application gets recfusion's functions with one call to
//! [`register_all`].
//!
//! This file is the one registry: every function of every kind is listed here, each with its
//! documentation beside its implementation. Table functions are built from the toolkit in
//! [`table_function`]; each call plans to a visible, serialisable plan node.
#![deny(clippy::clone_on_ref_ptr)]

use std::sync::Arc;

use datafusion::common::{Result, plan_err};
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{AggregateUDF, Documentation, ScalarUDF};
use datafusion::prelude::SessionContext;

pub mod display;
pub mod evaluate;
pub mod files;
pub mod function_reference;
pub mod information_schema;
pub mod models;
pub mod named_arguments;
pub mod privacy;
pub mod profile;
pub mod scoring;
mod simd;
pub mod table_function;
pub mod text;
pub mod vector;

pub use table_function::TableFunction;

/// Every scalar function of recfusion.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    let mut functions = vector::scalar_functions();
    functions.extend(evaluate::scalar_functions());
    functions.extend(text::scalar_functions());
    functions.push(Arc::new(ScalarUDF::from(display::Bar::new())));
    functions.extend(privacy::scalar_functions());
    functions
}

/// Every aggregate function of recfusion.
pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    let mut functions = vector::aggregate_functions();
    functions.push(Arc::new(AggregateUDF::new_from_impl(scoring::TopK::new())));
    functions.extend(evaluate::aggregate_functions());
    functions.extend(profile::aggregate_functions());
    functions.extend(privacy::aggregate_functions());
    functions
}

/// Every table function of recfusion.
pub fn table_functions() -> Vec<Arc<dyn TableFunction>> {
    vec![
        Arc::new(scoring::Recommend),
        Arc::new(scoring::ItemKnn),
        Arc::new(scoring::UserKnn),
        Arc::new(scoring::ContentKnn),
        Arc::new(scoring::SimilarItems),
        Arc::new(scoring::RerankMmr),
        Arc::new(scoring::RerankCalibrated),
        Arc::new(scoring::FuseRanks),
        Arc::new(models::TrainAls),
        Arc::new(models::AlsExplain),
        Arc::new(models::TrainItem2Vec),
        Arc::new(models::TrainSasRec),
        Arc::new(models::SasRecProfiles),
        Arc::new(models::TrainTwoTower),
        Arc::new(models::TwoTowerProfiles),
        Arc::new(models::TrainAttentionQuery),
        Arc::new(models::ModelVectors),
        Arc::new(models::ModelInfo),
        Arc::new(models::Models),
        Arc::new(text::EmbedTexts),
        Arc::new(evaluate::ItemPopularity),
        Arc::new(files::ReadCsv),
    ]
}

/// The table function called `name`.
pub fn table_function(name: &str) -> Option<Arc<dyn TableFunction>> {
    table_functions().into_iter().find(|function| function.name() == name)
}

/// The kind of a function, as listings name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    Scalar,
    Aggregate,
    Table,
}

impl FunctionKind {
    pub fn name(self) -> &'static str {
        match self {
            FunctionKind::Scalar => "scalar",
            FunctionKind::Aggregate => "aggregate",
            FunctionKind::Table => "table",
        }
    }
}

/// One function of recfusion with its documentation, for listings such as `\df` and
/// `information_schema.routines`.
#[derive(Debug, Clone)]
pub struct FunctionDoc {
    pub name: String,
    pub kind: FunctionKind,
    pub documentation: Documentation,
}

/// Every function of recfusion with its documentation.
pub fn function_docs() -> Vec<FunctionDoc> {
    let documented = |name: &str, kind, documentation: Option<&Documentation>| FunctionDoc {
        name: name.to_string(),
        kind,
        documentation: documentation
            .cloned()
            .unwrap_or_else(|| Documentation::builder(Default::default(), String::new(), name.to_string()).build()),
    };
    let scalars = scalar_functions()
        .into_iter()
        .map(|f| documented(f.name(), FunctionKind::Scalar, f.documentation()));
    let aggregates = aggregate_functions()
        .into_iter()
        .map(|f| documented(f.name(), FunctionKind::Aggregate, f.documentation()));
    let tables = table_functions()
        .into_iter()
        .map(|f| documented(f.name(), FunctionKind::Table, Some(f.documentation())));
    scalars.chain(aggregates).chain(tables).collect()
}

/// Names of every function of recfusion.
pub fn function_names() -> Vec<String> {
    function_docs().into_iter().map(|f| f.name).collect()
}

/// Registers every recfusion function in `ctx`, makes it plan table function calls
/// ([`table_function::planner`]), and — when the session has `information_schema` on — serves
/// an `information_schema` that documents every recfusion function ([`information_schema`]).
/// A session with a query planner of its own keeps it for every query without a recfusion
/// table function.
///
/// Fails, registering nothing, if one of our names is already taken by a function of the
/// session: a silently replaced built-in would change the meaning of existing queries.
pub fn register_all(ctx: &SessionContext) -> Result<()> {
    register_functions(ctx)?;
    install_planner(ctx);
    Ok(())
}

/// Registers every recfusion function in `ctx` and documents them in its
/// `information_schema`, keeping the session's query planner as it is: for a session whose
/// planner sends plans elsewhere (a cluster client), where the table function calls are
/// planned by whoever receives them.
pub fn register_functions(ctx: &SessionContext) -> Result<()> {
    let state = ctx.state();
    for name in function_names() {
        if state.scalar_functions().contains_key(&name)
            || state.aggregate_functions().contains_key(&name)
            || state.window_functions().contains_key(&name)
            || state.table_functions().contains_key(&name)
        {
            return plan_err!("recfusion function {name} would replace a function the session already has");
        }
    }
    for udf in scalar_functions() {
        ctx.register_udf(udf.as_ref().clone());
    }
    for udaf in aggregate_functions() {
        ctx.register_udaf(udaf.as_ref().clone());
    }
    for function in table_functions() {
        ctx.register_udtf(function.name(), Arc::new(table_function::Registered(function)));
    }
    install_documentation(ctx);
    Ok(())
}

fn install_planner(ctx: &SessionContext) {
    let state = ctx.state_ref();
    let mut state = state.write();
    let previous = Arc::clone(state.query_planner());
    let planner = table_function::planner::TableCallQueryPlanner::wrapping(previous);
    *state = SessionStateBuilder::new_from_existing(state.clone())
        .with_query_planner(Arc::new(planner))
        .build();
}

fn install_documentation(ctx: &SessionContext) {
    let state = ctx.state_ref();
    let mut state = state.write();
    if state.config().information_schema() {
        let catalogs = information_schema::DocumentedCatalogList::new(Arc::clone(state.catalog_list()));
        *state = SessionStateBuilder::new_from_existing(state.clone())
            .with_config(state.config().clone().with_information_schema(false))
            .with_catalog_list(Arc::new(catalogs))
            .build();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_are_unique() {
        let names = function_names();
        let unique: HashSet<_> = names.iter().collect();
        assert_eq!(names.len(), unique.len(), "duplicate function names in {names:?}");
    }

    #[test]
    fn every_function_is_documented() {
        let mut missing = Vec::new();
        for function in function_docs() {
            let doc = &function.documentation;
            let name = &function.name;
            if doc.description.is_empty() {
                missing.push(format!("{name}: no description"));
            }
            if !doc.syntax_example.starts_with(name.as_str()) {
                missing.push(format!(
                    "{name}: syntax example without its name: {}",
                    doc.syntax_example
                ));
            }
            if doc.sql_example.is_none() {
                missing.push(format!("{name}: no SQL example"));
            }
            let takes_arguments = !doc.syntax_example.ends_with("()");
            if takes_arguments && doc.arguments.as_ref().is_none_or(|a| a.is_empty()) {
                missing.push(format!("{name}: no arguments documented"));
            }
        }
        assert!(missing.is_empty(), "undocumented:\n{}", missing.join("\n"));
    }

    /// Every function appears in `SHOW FUNCTIONS LIKE` and `information_schema.routines` with
    /// its description and syntax.
    #[tokio::test]
    async fn every_function_is_listed_with_its_documentation() {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::arrow::compute::cast;
        use datafusion::arrow::datatypes::DataType;
        use datafusion::prelude::SessionConfig;

        let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
        register_all(&ctx).unwrap();
        for function in function_docs() {
            let name = &function.name;
            for sql in [
                format!("SHOW FUNCTIONS LIKE '{name}'"),
                format!(
                    "SELECT description, syntax_example FROM information_schema.routines WHERE routine_name = '{name}'"
                ),
            ] {
                let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                assert!(rows > 0, "{name} is missing from: {sql}");
                for batch in &batches {
                    for column in ["description", "syntax_example"] {
                        let values = cast(batch.column_by_name(column).unwrap(), &DataType::Utf8).unwrap();
                        let values = values.as_string::<i32>();
                        for row in 0..values.len() {
                            assert!(
                                values.is_valid(row) && !values.value(row).is_empty(),
                                "{name} has no {column} in: {sql}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn registers_without_shadowing_builtins() {
        let ctx = SessionContext::new();
        register_all(&ctx).unwrap();
        for name in function_names() {
            let state = ctx.state();
            assert!(
                state.scalar_functions().contains_key(&name)
                    || state.aggregate_functions().contains_key(&name)
                    || state.table_functions().contains_key(&name),
                "{name} was not registered"
            );
        }
        assert!(register_all(&ctx).is_err(), "registering twice must be refused");
    }
}
