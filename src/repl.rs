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
use rustyline::validate::Validator;
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

/// The most history the shell reads back; a longer file is someone else's, not a history.
const MAX_HISTORY_BYTES: u64 = 16 << 20;

/// Why `path` cannot be the shell's history, if it cannot: a device, a FIFO or a directory
/// would be read forever or not at all, and a huge file would be read whole into memory.
/// A missing file is fine: the shell creates it.
pub fn history_file_problem(path: &std::path::Path) -> Option<String> {
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_file() {
        return Some("it is not a regular file".to_string());
    }
    (metadata.len() > MAX_HISTORY_BYTES).then(|| {
        format!(
            "it holds {} bytes, more than the {} MB a history may have",
            metadata.len(),
            MAX_HISTORY_BYTES >> 20
        )
    })
}

/// What Tab can complete in this session.
#[derive(Debug, Default, Clone)]
pub struct Words {
    pub tables: Vec<String>,
    pub columns: Vec<String>,
    /// Scalar, aggregate and window functions.
    pub functions: Vec<String>,
    pub table_functions: Vec<String>,
}

/// rustyline's view of the session: the words to complete.
pub struct ReplHelper {
    words: Arc<Mutex<Words>>,
}

impl ReplHelper {
    fn new() -> Self {
        Self {
            words: Arc::new(Mutex::new(Words::default())),
        }
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        match self.words.lock() {
            Ok(words) => Ok(complete(&words, line, pos)),
            Err(_) => Ok((pos, Vec::new())),
        }
    }
}

/// Candidates for what ends at `pos`: a file path inside an open quote; after FROM or JOIN,
/// tables and table functions; elsewhere columns, functions, tables and SQL keywords (in the
/// case the user is typing).
pub fn complete(words: &Words, line: &str, pos: usize) -> (usize, Vec<Pair>) {
    let before = &line[..pos];
    if before.matches('\'').count() % 2 == 1 {
        let start = before.rfind('\'').map_or(0, |i| i + 1);
        return (start, complete_path(&before[start..]));
    }
    let start = before
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map_or(0, |i| i + before[i..].chars().next().map_or(1, char::len_utf8));
    let typed = &before[start..];
    if typed.is_empty() {
        return (pos, Vec::new());
    }
    let lower = typed.to_lowercase();
    let matching = |list: &[String]| -> Vec<String> {
        list.iter()
            .filter(|w| w.to_lowercase().starts_with(&lower))
            .cloned()
            .collect()
    };
    let previous = before[..start]
        .split_whitespace()
        .next_back()
        .unwrap_or_default()
        .to_uppercase();
    let mut candidates = matching(&words.tables);
    candidates.extend(matching(&words.table_functions));
    if previous != "FROM" && previous != "JOIN" {
        candidates.extend(matching(&words.columns));
        candidates.extend(matching(&words.functions));
        let upper_case = typed.chars().all(|c| !c.is_lowercase());
        candidates.extend(
            ALL_KEYWORDS
                .iter()
                .filter(|k| k.to_lowercase().starts_with(&lower))
                .map(|k| if upper_case { k.to_string() } else { k.to_lowercase() }),
        );
    }
    let mut seen = std::collections::HashSet::new();
    candidates.retain(|c| seen.insert(c.clone()));
    (start, candidates.into_iter().map(pair).collect())
}

fn pair(text: String) -> Pair {
    Pair {
        display: text.clone(),
        replacement: text,
    }
}

/// Files and directories whose path starts with `typed` (directories end in `/`).
fn complete_path(typed: &str) -> Vec<Pair> {
    let (directory, prefix) = match typed.rfind('/') {
        Some(i) => (&typed[..=i], &typed[i + 1..]),
        None => ("", typed),
    };
    let listed = if directory.is_empty() { "." } else { directory };
    let Ok(entries) = std::fs::read_dir(listed) else {
        return Vec::new();
    };
    let mut paths: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let hidden = name.starts_with('.') && !prefix.starts_with('.');
            if hidden || !name.starts_with(prefix) {
                return None;
            }
            let slash = if entry.path().is_dir() { "/" } else { "" };
            Some(format!("{directory}{name}{slash}"))
        })
        .collect();
    paths.sort();
    paths.into_iter().map(pair).collect()
}

/// Every line goes back to the loop, which keeps a statement open until its `;` and shows
/// the continuation prompt meanwhile.
impl Validator for ReplHelper {}

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
async fn session_words(runner: &Runner) -> Words {
    let state = runner.ctx.state();
    let sorted = |mut list: Vec<String>| {
        list.sort();
        list.dedup();
        list
    };
    let mut words = Words {
        functions: sorted(
            state
                .scalar_functions()
                .keys()
                .chain(state.aggregate_functions().keys())
                .chain(state.window_functions().keys())
                .cloned()
                .collect(),
        ),
        table_functions: sorted(state.table_functions().keys().cloned().collect()),
        ..Words::default()
    };
    let columns = "SELECT DISTINCT table_name, column_name FROM information_schema.columns";
    if let Ok(df) = runner.ctx.sql(columns).await
        && let Ok(batches) = df.collect().await
    {
        for batch in batches {
            let text = |i: usize| {
                datafusion::arrow::compute::cast(batch.column(i), &datafusion::arrow::datatypes::DataType::Utf8)
                    .ok()
                    .map(|names| {
                        let names = datafusion::arrow::array::AsArray::as_string::<i32>(&names);
                        names.iter().flatten().map(str::to_string).collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            };
            words.tables.extend(text(0));
            words.columns.extend(text(1));
        }
    }
    words.tables = sorted(std::mem::take(&mut words.tables));
    words.columns = sorted(std::mem::take(&mut words.columns));
    words
}

fn set_words(shared: &Mutex<Words>, words: Words) {
    if let Ok(mut current) = shared.lock() {
        *current = words;
    }
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
    let history = history_path().filter(|path| match history_file_problem(path) {
        None => true,
        Some(problem) => {
            eprintln!(
                "recfusion: not using {} as the shell's history: {problem}",
                path.display()
            );
            false
        }
    });
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    set_words(&words, session_words(runner).await);

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
            if let Some(path) = &history {
                let _ = editor.save_history(path);
            }
            match MetaCommand::parse(&line) {
                Ok(command) => match command.execute(runner).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(error) => eprintln!("Error: {}", error.message()),
                },
                Err(error) => eprintln!("Error: {}", error.message()),
            }
            set_words(&words, session_words(runner).await);
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
        // Saved at once: closing the terminal must not lose what was typed.
        if let Some(path) = &history {
            let _ = editor.save_history(path);
        }
        match split_statements(&text) {
            Ok(statements) => {
                for statement in statements {
                    if let Err(error) = runner.execute(&statement.sql).await {
                        // From the start of a cleared line: a training bar may be on it.
                        eprintln!("\r\x1b[2KError: {error}");
                        break;
                    }
                }
            }
            Err(_) => eprintln!("Error: a /* comment is never closed with */"),
        }
        set_words(&words, session_words(runner).await);
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> Words {
        Words {
            tables: vec!["events".into(), "ratings".into()],
            columns: vec!["event_type".into(), "rating".into()],
            functions: vec!["array_cosine_similarity".into()],
            table_functions: vec!["recommend".into(), "read_csv".into()],
        }
    }

    fn replacements(line: &str) -> Vec<String> {
        complete(&words(), line, line.len())
            .1
            .into_iter()
            .map(|p| p.replacement)
            .collect()
    }

    #[test]
    fn completes_tables_and_table_functions_after_from() {
        assert_eq!(replacements("select * from rat"), vec!["ratings"]);
        assert_eq!(replacements("SELECT * FROM recomm"), vec!["recommend"]);
        assert_eq!(replacements("select * from events e join ev"), vec!["events"]);
    }

    #[test]
    fn completes_columns_functions_and_keywords_elsewhere() {
        let found = replacements("select eve");
        assert!(found.contains(&"events".to_string()) && found.contains(&"event_type".to_string()));
        assert!(replacements("SEL").contains(&"SELECT".to_string()));
        assert!(replacements("sel").contains(&"select".to_string()));
        assert_eq!(replacements("select array_cos")[0], "array_cosine_similarity");
    }

    #[test]
    fn completes_file_paths_inside_quotes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/events.parquet"), "").unwrap();
        let typed = format!("SELECT * FROM '{}/da", dir.path().display());
        assert_eq!(replacements(&typed), vec![format!("{}/data/", dir.path().display())]);
        let typed = format!("SELECT * FROM '{}/data/ev", dir.path().display());
        assert_eq!(
            replacements(&typed),
            vec![format!("{}/data/events.parquet", dir.path().display())]
        );
    }
}
