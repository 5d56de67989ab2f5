//! Named arguments in calls of recfusion's functions: `train_als('events', factors => 64)`,
//! `item_knn('pairs', 10, max_history => 100)`, `vector_to_text(v, decimals => 2)`.
//!
//! DataFusion 55 plans a table function's arguments by position and refuses a named one before
//! any function sees it, so a parsed statement is rewritten first ([`resolve_named_arguments`]):
//! every call of a recfusion function that names an argument becomes the positional call its
//! documentation's argument list gives. An optional table-function argument left out between
//! others becomes NULL, which every table function reads as its default; scalar and aggregate
//! functions take their arguments in order, so there a left-out argument before a given one is
//! an error. Names are the documented argument names (alternatives written `dim | model_dir`),
//! matched without regard to case unless quoted. Calls that name nothing are left as written.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::OnceLock;

use datafusion::common::{DataFusionError, Result};
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, Statement, TableFactor, Value, VisitMut,
    VisitorMut,
};

use crate::{FunctionKind, function_docs};

/// A function's argument names, each position with its accepted names.
struct Parameters {
    kind: FunctionKind,
    names: Vec<Vec<String>>,
}

impl Parameters {
    fn position(&self, name: &Ident) -> Option<usize> {
        let matches = |candidate: &String| match name.quote_style {
            Some(_) => *candidate == name.value,
            None => candidate.eq_ignore_ascii_case(&name.value),
        };
        self.names.iter().position(|names| names.iter().any(matches))
    }

    fn shown(&self, position: usize) -> String {
        self.names[position].join(" | ")
    }

    fn listed(&self) -> String {
        (0..self.names.len())
            .map(|p| self.shown(p))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Every recfusion function's parameters by (lower-case) name.
fn parameters() -> &'static HashMap<String, Parameters> {
    static PARAMETERS: OnceLock<HashMap<String, Parameters>> = OnceLock::new();
    PARAMETERS.get_or_init(|| {
        function_docs()
            .into_iter()
            .map(|function| {
                let names = function
                    .documentation
                    .arguments
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, _)| name.split('|').map(|n| n.trim().to_string()).collect())
                    .collect();
                let parameters = Parameters {
                    kind: function.kind,
                    names,
                };
                (function.name.to_lowercase(), parameters)
            })
            .collect()
    })
}

/// Rewrites every call of a recfusion function in `statement` that names arguments into its
/// positional form; a call that names them wrongly is an error that names the function and
/// lists its arguments.
pub fn resolve_named_arguments<T: VisitMut>(statement: &mut T) -> Result<()> {
    match statement.visit(&mut Resolver) {
        ControlFlow::Break(error) => Err(error),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// [`resolve_named_arguments`] over a whole parsed statement, including what `EXPLAIN` and
/// `COPY (query) TO` wrap.
pub fn resolve_statement(statement: &mut datafusion::sql::parser::Statement) -> Result<()> {
    use datafusion::sql::parser::{CopyToSource, Statement as DFStatement};
    match statement {
        DFStatement::Statement(inner) => resolve_named_arguments::<Statement>(inner),
        DFStatement::Explain(explain) => resolve_statement(&mut explain.statement),
        DFStatement::CopyTo(copy) => match &mut copy.source {
            CopyToSource::Query(query) => resolve_named_arguments(query.as_mut()),
            CopyToSource::Relation(_) => Ok(()),
        },
        _ => Ok(()),
    }
}

struct Resolver;

impl VisitorMut for Resolver {
    type Break = DataFusionError;

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<Self::Break> {
        let (name, args) = match factor {
            TableFactor::Table {
                name, args: Some(args), ..
            } => (&*name, &mut args.args),
            TableFactor::Function { name, args, .. } => (&*name, args),
            _ => return ControlFlow::Continue(()),
        };
        resolved(name, args)
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        if let Expr::Function(function) = expr
            && let FunctionArguments::List(list) = &mut function.args
        {
            return resolved(&function.name, &mut list.args);
        }
        ControlFlow::Continue(())
    }
}

fn resolved(name: &ObjectName, args: &mut Vec<FunctionArg>) -> ControlFlow<DataFusionError> {
    match resolve_call(name, args) {
        Ok(()) => ControlFlow::Continue(()),
        Err(error) => ControlFlow::Break(error),
    }
}

/// The name of an argument given as `name => value`, `None` for a positional one.
fn argument_name(arg: &FunctionArg) -> Option<Ident> {
    match arg {
        FunctionArg::Named { name, .. } => Some(name.clone()),
        FunctionArg::ExprNamed {
            name: Expr::Identifier(name),
            ..
        } => Some(name.clone()),
        FunctionArg::ExprNamed { name, .. } => Some(Ident::new(name.to_string())),
        FunctionArg::Unnamed(_) => None,
    }
}

fn argument_value(arg: FunctionArg) -> FunctionArgExpr {
    match arg {
        FunctionArg::Named { arg, .. } | FunctionArg::ExprNamed { arg, .. } | FunctionArg::Unnamed(arg) => arg,
    }
}

fn resolve_call(name: &ObjectName, args: &mut Vec<FunctionArg>) -> Result<()> {
    if args.iter().all(|arg| argument_name(arg).is_none()) {
        return Ok(());
    }
    let [part] = name.0.as_slice() else {
        return Ok(());
    };
    let Some(ident) = part.as_ident() else {
        return Ok(());
    };
    let function = match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    };
    let Some(parameters) = parameters().get(&function) else {
        return Ok(());
    };
    let error = |message: String| DataFusionError::Plan(format!("{function}: {message}"));
    let mut slots: Vec<Option<FunctionArgExpr>> = Vec::with_capacity(parameters.names.len());
    let mut named_from = None;
    let mut positional = 0;
    for (index, arg) in std::mem::take(args).into_iter().enumerate() {
        let Some(arg_name) = argument_name(&arg) else {
            if let Some(named) = named_from {
                return Err(error(format!(
                    "argument {} is positional but follows the named argument '{named}'; give positional arguments first, then named ones",
                    index + 1
                )));
            }
            slots.push(Some(argument_value(arg)));
            positional += 1;
            continue;
        };
        named_from.get_or_insert_with(|| arg_name.value.clone());
        let Some(position) = parameters.position(&arg_name) else {
            return Err(error(format!(
                "no argument is named '{}'; its arguments are {}",
                arg_name.value,
                parameters.listed()
            )));
        };
        if slots.len() <= position {
            slots.resize(position + 1, None);
        }
        if slots[position].is_some() {
            let how = match position < positional {
                true => format!("both by position (argument {}) and by name", position + 1),
                false => "twice by name".to_string(),
            };
            return Err(error(format!(
                "argument '{}' is given {how}",
                parameters.shown(position)
            )));
        }
        slots[position] = Some(argument_value(arg));
    }
    let mut resolved = Vec::with_capacity(slots.len());
    for (position, slot) in slots.into_iter().enumerate() {
        let value = match slot {
            Some(value) => value,
            None if parameters.kind == FunctionKind::Table => FunctionArgExpr::Expr(Expr::value(Value::Null)),
            None => {
                return Err(error(format!(
                    "argument '{}' must be given too (by position or by name): a {} function takes its arguments in order, so a later one cannot be given without it",
                    parameters.shown(position),
                    parameters.kind.name()
                )));
            }
        };
        resolved.push(FunctionArg::Unnamed(value));
    }
    *args = resolved;
    Ok(())
}
