//! recfusion's SQL functions: vector math, recommendation (top-k) and evaluation, with the
//! profile and model families as they land. Nothing here depends on the CLI or SQLite, so any
//! DataFusion application gets recfusion's functions with one call to [`register_all`].
#![deny(clippy::clone_on_ref_ptr)]

use std::sync::Arc;

use datafusion::catalog::TableFunctionImpl;
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;

pub mod compute;
pub mod evaluate;
pub mod models;
pub mod profile;
pub mod recommend;
pub mod text;
pub mod vector;

/// Every scalar function of recfusion.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    let mut functions = vector::scalar_functions();
    functions.extend(evaluate::scalar_functions());
    functions.extend(text::scalar_functions());
    functions
}

/// Every aggregate function of recfusion.
pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    let mut functions = vector::aggregate_functions();
    functions.push(Arc::new(AggregateUDF::new_from_impl(recommend::top_k_agg::TopK::new())));
    functions.extend(evaluate::aggregate_functions());
    functions.extend(profile::aggregate_functions());
    functions
}

/// Every table function of recfusion, by name.
pub fn table_functions() -> Vec<(&'static str, Arc<dyn TableFunctionImpl>)> {
    use recommend::knn::{KnnFunction, Method};
    vec![
        ("recommend", Arc::new(recommend::Recommend)),
        ("item_knn", Arc::new(KnnFunction(Method::ItemKnn))),
        ("user_knn", Arc::new(KnnFunction(Method::UserKnn))),
        ("content_knn", Arc::new(KnnFunction(Method::Content))),
        ("train_als", Arc::new(models::TrainAls)),
        ("train_item2vec", Arc::new(models::TrainItem2Vec)),
        ("train_sasrec", Arc::new(models::transformer::TrainSasRec)),
        ("sasrec_profiles", Arc::new(models::transformer::SasRecProfiles)),
        ("train_two_tower", Arc::new(models::features::TrainTwoTower)),
        (
            "train_attention_query",
            Arc::new(models::attention_query::TrainAttentionQuery),
        ),
        ("two_tower_profiles", Arc::new(models::features::TwoTowerProfiles)),
        ("model_vectors", Arc::new(models::ModelVectors)),
        ("embed_texts", Arc::new(text::EmbedTexts)),
    ]
}

/// (name, syntax, description) of every table function, for listings such as `\df`.
pub fn table_function_docs() -> Vec<(&'static str, &'static str, &'static str)> {
    use recommend::knn::Method;
    let mut docs = vec![("recommend", recommend::SYNTAX, recommend::DESCRIPTION)];
    for method in [Method::ItemKnn, Method::UserKnn, Method::Content] {
        docs.push((method.name(), method.syntax(), method.description()));
    }
    docs.extend(models::DOCS);
    docs.extend(models::transformer::DOCS);
    docs.extend(models::features::DOCS);
    docs.push(models::attention_query::DOC);
    docs.push(text::DOC);
    docs
}

/// Names of every function of recfusion, for listings such as the REPL's `\df`.
pub fn function_names() -> Vec<String> {
    let scalars = scalar_functions().into_iter().map(|f| f.name().to_string());
    let aggregates = aggregate_functions().into_iter().map(|f| f.name().to_string());
    let tables = table_functions().into_iter().map(|(name, _)| name.to_string());
    scalars.chain(aggregates).chain(tables).collect()
}

/// Registers every recfusion function in `ctx`.
///
/// Fails, registering nothing, if one of our names is already taken by a function of the
/// session: a silently replaced built-in would change the meaning of existing queries.
pub fn register_all(ctx: &SessionContext) -> Result<()> {
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
    for (name, function) in table_functions() {
        ctx.register_udtf(name, function);
    }
    Ok(())
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
