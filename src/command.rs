//! The shell's meta commands (`\d`, `\df`, `\timing`, …): parsing, help text and execution.

use datafusion::common::{Result, plan_err};

use crate::exec::Runner;
use crate::print::PrintFormat;

/// A backslash command typed at the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaCommand {
    Help,
    Quit,
    ListTables,
    /// `\d name.`: the tables of one schema, such as an attached SQLite file.
    ListSchemaTables(String),
    Describe(String),
    ListFunctions(Option<String>),
    ListModels,
    ToggleTiming,
    Format(Option<String>),
    MaxRows(Option<String>),
    Include(String),
}

impl MetaCommand {
    /// Every command with its description: the text of `\?`.
    pub const HELP: &'static [(&'static str, &'static str)] = &[
        ("\\?", "show this help"),
        ("\\q", "quit (also: quit, exit, Ctrl-D)"),
        ("\\d", "list tables"),
        ("\\d NAME", "describe table NAME"),
        (
            "\\d SCHEMA.",
            "list the tables of SCHEMA (e.g. an attached SQLite file)",
        ),
        (
            "\\df [PATTERN]",
            "list recfusion's functions (matching PATTERN) with descriptions",
        ),
        ("\\df NAME", "the whole documentation of function NAME"),
        ("\\models", "list the models kept by name (SELECT * FROM models())"),
        ("\\timing", "turn elapsed time in the footer on or off"),
        (
            "\\format FMT",
            "set the output format: table, csv, tsv, markdown, json, nd-json",
        ),
        ("\\maxrows N", "rows a table shows (0 = all)"),
        ("\\i FILE", "run the SQL statements in FILE"),
    ];

    /// Parses a line starting with `\`.
    pub fn parse(line: &str) -> Result<Self> {
        let line = line.trim().trim_end_matches(';').trim();
        let (name, argument) = match line.split_once(char::is_whitespace) {
            Some((name, argument)) => (name, Some(argument.trim().to_string()).filter(|a| !a.is_empty())),
            None => (line, None),
        };
        Ok(match (name, argument) {
            ("\\?" | "\\h" | "\\help", _) => Self::Help,
            ("\\q" | "\\quit", _) => Self::Quit,
            ("\\d", None) => Self::ListTables,
            ("\\d", Some(name)) if name.ends_with('.') => {
                Self::ListSchemaTables(name.trim_end_matches('.').to_string())
            }
            ("\\d", Some(table)) => Self::Describe(table),
            ("\\df", pattern) => Self::ListFunctions(pattern),
            ("\\models", _) => Self::ListModels,
            ("\\timing", _) => Self::ToggleTiming,
            ("\\format", format) => Self::Format(format),
            ("\\maxrows", rows) => Self::MaxRows(rows),
            ("\\i", Some(file)) => Self::Include(file),
            ("\\i", None) => return plan_err!("\\i needs a file name: \\i FILE"),
            (other, _) => return plan_err!("unknown command {other}; \\? lists the commands"),
        })
    }

    /// Runs the command. Returns false when the shell should quit.
    pub async fn execute(&self, runner: &mut Runner) -> Result<bool> {
        match self {
            Self::Help => {
                for (command, description) in Self::HELP {
                    println!("{command:<16} {description}");
                }
            }
            Self::Quit => return Ok(false),
            Self::ListTables => {
                runner
                    .execute(
                        "SELECT table_catalog, table_schema, table_name, table_type FROM information_schema.tables \
                         WHERE table_schema <> 'information_schema' ORDER BY table_catalog, table_schema, table_name",
                    )
                    .await?
            }
            Self::ListSchemaTables(schema) => {
                let schema = schema.replace('\'', "''");
                runner
                    .execute(&format!(
                        "SELECT table_name, table_type FROM information_schema.tables \
                         WHERE table_schema = '{schema}' ORDER BY table_name"
                    ))
                    .await?
            }
            Self::Describe(table) => runner.execute(&format!("DESCRIBE {table}")).await?,
            Self::ListModels => runner
                .execute(
                    "SELECT name, kind, created_at, rows, users, items, dim, loss, call FROM models() ORDER BY name",
                )
                .await?,
            Self::ListFunctions(pattern) => match pattern.as_deref().and_then(function_documentation) {
                Some(text) => print!("{text}"),
                None => print_functions(pattern.as_deref()),
            },
            Self::ToggleTiming => {
                runner.print.timing = !runner.print.timing;
                println!("Timing is {}.", if runner.print.timing { "on" } else { "off" });
            }
            Self::Format(None) => println!("Output format: {}.", runner.print.format),
            Self::Format(Some(format)) => {
                runner.print.format = format
                    .parse::<PrintFormat>()
                    .map_err(datafusion::common::DataFusionError::Plan)?;
                println!("Output format: {}.", runner.print.format);
            }
            Self::MaxRows(rows) => {
                if let Some(rows) = rows {
                    runner.print.max_rows = match rows.parse::<usize>() {
                        Ok(0) => None,
                        Ok(rows) => Some(rows),
                        Err(_) => return plan_err!("\\maxrows takes a number of rows (0 = all), got '{rows}'"),
                    };
                }
                match runner.print.max_rows {
                    Some(rows) => println!("Tables show at most {rows} rows."),
                    None => println!("Tables show every row."),
                }
            }
            Self::Include(file) => runner
                .run_file(std::path::Path::new(file), "\\i")
                .await
                .map_err(|e| datafusion::common::DataFusionError::Plan(e.to_string()))?,
        }
        Ok(true)
    }
}

/// recfusion's functions whose name contains `pattern` (case-insensitive), with the first
/// sentence of their description.
pub fn function_summaries(pattern: Option<&str>) -> Vec<(String, String, String)> {
    let pattern = pattern.map(|p| p.trim_matches('*').to_lowercase());
    let mut rows: Vec<_> = recfusion_udfs::function_docs()
        .into_iter()
        .filter(|f| pattern.as_ref().is_none_or(|p| f.name.to_lowercase().contains(p)))
        .map(|f| {
            (
                f.documentation.syntax_example,
                f.kind.name().to_string(),
                first_sentence(&f.documentation.description),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// The first sentence of `text`: up to a full stop followed by a capital letter, so
/// abbreviations such as "e.g. a view" stay whole.
fn first_sentence(text: &str) -> String {
    let mut end = text.len();
    for (i, _) in text.match_indices(". ") {
        let next = text[i + 2..].chars().next();
        let abbreviation = text[..i].ends_with("e.g") || text[..i].ends_with("i.e");
        if next.is_some_and(char::is_uppercase) && !abbreviation {
            end = i;
            break;
        }
    }
    text[..end].trim_end_matches('.').to_string() + "."
}

/// The whole documentation of the function named `name`: syntax, description, arguments
/// and example, as `\df NAME` prints it.
pub fn function_documentation(name: &str) -> Option<String> {
    let function = recfusion_udfs::function_docs()
        .into_iter()
        .find(|f| f.name.eq_ignore_ascii_case(name.trim()))?;
    let doc = &function.documentation;
    let mut text = format!(
        "{}  ({} function)\n\n{}\n",
        doc.syntax_example,
        function.kind.name(),
        doc.description
    );
    if let Some(arguments) = doc.arguments.as_ref().filter(|a| !a.is_empty()) {
        text.push_str("\nArguments:\n");
        let width = arguments.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        for (name, description) in arguments {
            text.push_str(&format!("  {name:<width$}  {description}\n"));
        }
    }
    if let Some(example) = &doc.sql_example {
        let example = example
            .trim()
            .trim_start_matches("```sql")
            .trim_end_matches("```")
            .trim_matches('\n');
        text.push_str(&format!("\nExample:\n{example}\n"));
    }
    Some(text)
}

fn print_functions(pattern: Option<&str>) {
    let rows = function_summaries(pattern);
    if rows.is_empty() {
        println!("No recfusion function matches '{}'.", pattern.unwrap_or_default());
        return;
    }
    let width = rows.iter().map(|(syntax, _, _)| syntax.len()).max().unwrap_or(0);
    for (syntax, kind, description) in rows {
        println!("{syntax:<width$}  {kind:<9}  {description}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(MetaCommand::parse("\\d").unwrap(), MetaCommand::ListTables);
        assert_eq!(
            MetaCommand::parse("\\d events;").unwrap(),
            MetaCommand::Describe("events".into())
        );
        assert_eq!(
            MetaCommand::parse("\\df cos").unwrap(),
            MetaCommand::ListFunctions(Some("cos".into()))
        );
        assert_eq!(
            MetaCommand::parse("\\format csv").unwrap(),
            MetaCommand::Format(Some("csv".into()))
        );
        assert_eq!(
            MetaCommand::parse("\\maxrows 100").unwrap(),
            MetaCommand::MaxRows(Some("100".into()))
        );
        assert!(MetaCommand::parse("\\nope").is_err());
        assert!(MetaCommand::parse("\\i").is_err());
    }

    #[test]
    fn first_sentences_keep_abbreviations() {
        assert_eq!(
            first_sentence("Scores items (e.g. a view). Rows: x."),
            "Scores items (e.g. a view)."
        );
        assert_eq!(first_sentence("One sentence"), "One sentence.");
    }

    #[test]
    fn documents_one_function_whole() {
        let text = function_documentation("RECOMMEND").unwrap();
        assert!(text.starts_with("recommend(users, items, k"), "{text}");
        assert!(text.contains("Arguments:\n  users "), "{text}");
        assert!(text.contains("Example:\n> SELECT * FROM recommend("), "{text}");
        assert!(function_documentation("recomm").is_none());
    }

    #[test]
    fn lists_our_functions() {
        let all = function_summaries(None);
        assert!(
            all.iter()
                .any(|(syntax, _, _)| syntax.starts_with("array_cosine_similarity"))
        );
        // A pattern matches anywhere in the name, as `\df` does.
        let means = function_summaries(Some("VECTOR_MEAN"));
        let syntaxes: Vec<&str> = means.iter().map(|(syntax, _, _)| syntax.as_str()).collect();
        assert_eq!(syntaxes.len(), 2, "{syntaxes:?}");
        assert!(
            syntaxes[0].starts_with("dp_vector_mean(") && syntaxes[1].starts_with("vector_mean("),
            "{syntaxes:?}"
        );
        assert!(means.iter().all(|(_, kind, _)| kind == "aggregate"));
        let knn = function_summaries(Some("item_knn"));
        assert_eq!(knn.len(), 1);
        assert_eq!(knn[0].1, "table");
    }
}
