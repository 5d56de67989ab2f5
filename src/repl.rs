//! The interactive shell: rustyline editing with history, multi-line statements that end at
//! `;`, tab completion of keywords, tables, columns and functions, and meta commands.
//! Errors are printed and the loop goes on; Ctrl-C clears the line or cancels a query.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use crate::command::MetaCommand;
use crate::exec::Runner;
use crate::script::{is_complete, split_statements};

const PROMPT: &str = "recfusion> ";
const CONTINUATION_PROMPT: &str = "        -> ";

/// Where the shell keeps its history: `$RECFUSION_HISTORY`, else `~/.recfusion_history`.
pub fn history_path() -> Option<PathBuf> {
    std::env::var_os("RECFUSION_HISTORY")
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|home| home.join(".recfusion_history")))
}

/// rustyline's view of the session: the words to complete and when input is complete.
pub struct ReplHelper {
    words: Arc<Mutex<Vec<String>>>,
}

impl ReplHelper {
    fn new() -> Self {
        Self {
            words: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(complete_word(&self.words.lock().expect("completion words"), line, pos))
    }
}

/// Candidates for the word that ends at `pos`: session words (tables, columns, functions)
/// first, then SQL keywords in the case the user is typing.
pub fn complete_word(words: &[String], line: &str, pos: usize) -> (usize, Vec<Pair>) {
    let start = line[..pos]
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map_or(0, |i| i + line[i..].chars().next().map_or(1, char::len_utf8));
    let typed = &line[start..pos];
    if typed.is_empty() {
        return (pos, Vec::new());
    }
    let lower = typed.to_lowercase();
    let upper_case = typed.chars().all(|c| !c.is_lowercase());
    let mut candidates: Vec<String> = words
        .iter()
        .filter(|w| w.to_lowercase().starts_with(&lower))
        .cloned()
        .collect();
    candidates.extend(
        ALL_KEYWORDS
            .iter()
            .filter(|k| k.to_lowercase().starts_with(&lower))
            .map(|k| if upper_case { k.to_string() } else { k.to_lowercase() }),
    );
    candidates.dedup();
    let pairs = candidates
        .into_iter()
        .map(|c| Pair {
            display: c.clone(),
            replacement: c,
        })
        .collect();
    (start, pairs)
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        let input = ctx.input().trim();
        if input.is_empty() || input.starts_with('\\') || is_quit(input) || is_complete(input) {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _default: bool) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Helper for ReplHelper {}

fn is_quit(input: &str) -> bool {
    matches!(input.trim_end_matches(';').trim(), "quit" | "exit" | "\\q")
}

/// Tables, columns and functions of the session, for completion.
async fn session_words(runner: &Runner) -> Vec<String> {
    let state = runner.ctx.state();
    let mut words: Vec<String> = state
        .scalar_functions()
        .keys()
        .chain(state.aggregate_functions().keys())
        .chain(state.window_functions().keys())
        .cloned()
        .collect();
    let columns = "SELECT DISTINCT table_name, column_name FROM information_schema.columns";
    if let Ok(df) = runner.ctx.sql(columns).await
        && let Ok(batches) = df.collect().await
    {
        for batch in batches {
            for column in batch.columns() {
                let names = datafusion::arrow::compute::cast(column, &datafusion::arrow::datatypes::DataType::Utf8);
                if let Ok(names) = names {
                    let names = datafusion::arrow::array::AsArray::as_string::<i32>(&names);
                    words.extend(names.iter().flatten().map(str::to_string));
                }
            }
        }
    }
    words.sort();
    words.dedup();
    words
}

/// Runs the shell until `\q`, `quit`, `exit` or end of input.
pub async fn run(runner: &mut Runner) -> rustyline::Result<()> {
    let config = rustyline::Config::builder()
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut editor: Editor<ReplHelper, DefaultHistory> = Editor::with_config(config)?;
    let helper = ReplHelper::new();
    let words = Arc::clone(&helper.words);
    editor.set_helper(Some(helper));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    *words.lock().expect("completion words") = session_words(runner).await;

    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            PROMPT
        } else {
            CONTINUATION_PROMPT
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(error) => return Err(error),
        };
        if pending.is_empty() && line.trim().is_empty() {
            continue;
        }
        if pending.is_empty() && is_quit(&line) {
            break;
        }
        if pending.is_empty() && line.trim_start().starts_with('\\') {
            let _ = editor.add_history_entry(line.as_str());
            match MetaCommand::parse(&line) {
                Ok(command) => match command.execute(runner).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(error) => eprintln!("Error: {}", error.message()),
                },
                Err(error) => eprintln!("Error: {}", error.message()),
            }
            *words.lock().expect("completion words") = session_words(runner).await;
            continue;
        }
        if !pending.is_empty() {
            pending.push('\n');
        }
        pending.push_str(&line);
        if !is_complete(&pending) {
            continue;
        }
        let text = std::mem::take(&mut pending);
        let _ = editor.add_history_entry(text.as_str());
        match split_statements(&text) {
            Ok(statements) => {
                for statement in statements {
                    if let Err(error) = runner.execute(&statement.sql).await {
                        eprintln!("Error: {error}");
                        break;
                    }
                }
            }
            Err(_) => eprintln!("Error: a /* comment is never closed with */"),
        }
        *words.lock().expect("completion words") = session_words(runner).await;
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_session_words_and_keywords() {
        let words = vec![
            "events".to_string(),
            "event_type".to_string(),
            "array_cosine_similarity".to_string(),
        ];
        let (start, pairs) = complete_word(&words, "select * from eve", 17);
        assert_eq!(start, 14);
        let found: Vec<_> = pairs.iter().map(|p| p.replacement.as_str()).collect();
        assert!(found.contains(&"events") && found.contains(&"event_type") && found.contains(&"events"));
        let (_, pairs) = complete_word(&words, "SEL", 3);
        assert!(pairs.iter().any(|p| p.replacement == "SELECT"));
        let (_, pairs) = complete_word(&words, "sel", 3);
        assert!(pairs.iter().any(|p| p.replacement == "select"));
        let (_, pairs) = complete_word(&words, "select array_cos", 16);
        assert_eq!(pairs[0].replacement, "array_cosine_similarity");
    }
}
