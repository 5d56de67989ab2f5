//! Planning errors about recfusion's functions, in the function's own words. DataFusion wraps a
//! function's own type error in three more ("Execution error: Function 'f' user-defined
//! coercion failed with: Error during planning: … No function matches … Candidate functions:
//! f(UserDefined)"), and reports a wrong number of arguments as an internal error that asks the
//! user to file a bug against DataFusion. Both become one sentence that starts with the
//! function's name; the second also shows its syntax.

use datafusion::common::DataFusionError;

/// `error`, restated when it is DataFusion's wrapping of a recfusion function's error.
pub fn clarify(error: DataFusionError) -> DataFusionError {
    let message = error.to_string();
    let Some(name) = between(&message, "Function '", "'") else {
        return error;
    };
    let Some(function) = recfusion_udfs::function_docs().into_iter().find(|f| f.name == name) else {
        return error;
    };
    if let Some(own) = between(
        &message,
        "user-defined coercion failed with: Error during planning: ",
        ". No function matches",
    ) {
        return DataFusionError::Plan(own.to_string());
    }
    if message.contains("failed to match any signature") {
        let given = between(&message, &format!("argument types '{name}("), ")'").unwrap_or_default();
        let count = top_level_items(given);
        let plural = if count == 1 { "" } else { "s" };
        let types = if given.is_empty() {
            String::new()
        } else {
            format!(" ({given})")
        };
        return DataFusionError::Plan(format!(
            "{name}: expected {}, got {count} argument{plural}{types}",
            function.documentation.syntax_example
        ));
    }
    error
}

/// The text between the first `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = from + text[from..].find(end)?;
    Some(&text[from..to])
}

/// How many comma-separated items `list` holds outside parentheses (types such as
/// `Map(Utf8, Int64)` hold commas of their own).
fn top_level_items(list: &str) -> usize {
    if list.trim().is_empty() {
        return 0;
    }
    let mut depth = 0i32;
    let mut items = 1;
    for c in list.chars() {
        match c {
            '(' | '[' | '<' => depth += 1,
            ')' | ']' | '>' => depth -= 1,
            ',' if depth == 0 => items += 1,
            _ => {}
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_errors_become_the_functions_own() {
        let wrapped = DataFusionError::Plan(
            "Execution error: Function 'vector_mean' user-defined coercion failed with: Error during planning: vector_mean: argument 1 must be a vector (a list of numbers), got Int64. No function matches the given name and argument types 'vector_mean(Int64)'. You might need to add explicit type casts.\n\tCandidate functions:\n\tvector_mean(UserDefined)".to_string(),
        );
        assert_eq!(
            clarify(wrapped).to_string(),
            "Error during planning: vector_mean: argument 1 must be a vector (a list of numbers), got Int64"
        );
        let arity = DataFusionError::Plan(
            "Internal error: Function 'attention_pool' failed to match any signature, errors: …. No function matches the given name and argument types 'attention_pool(Int64)'. You might need to add explicit type casts.".to_string(),
        );
        let clear = clarify(arity).to_string();
        assert!(
            clear.starts_with("Error during planning: attention_pool: expected attention_pool("),
            "{clear}"
        );
        assert!(clear.ends_with("got 1 argument (Int64)"), "{clear}");
        let other = DataFusionError::Plan("Function 'upper' failed to match any signature".to_string());
        assert_eq!(
            clarify(other).to_string(),
            "Error during planning: Function 'upper' failed to match any signature"
        );
        assert_eq!(top_level_items("Map(Utf8, Int64), Int64"), 2);
    }
}
