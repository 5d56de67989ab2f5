//! SQL scripts: splitting text into statements (with the line each starts on) and
//! substituting `--define` variables written as `${NAME}`.

use std::collections::HashMap;

use datafusion::common::{Result, plan_err};

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement's text without its closing `;`.
    pub sql: String,
    /// 1-based line of the script where the statement starts.
    pub line: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    SingleQuote,
    DoubleQuote,
    LineComment,
    BlockComment,
}

/// A script that cannot be split: a `/*` comment that never ends would swallow the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unterminated {
    /// 1-based line where the comment starts.
    pub line: usize,
}

/// Splits a script on `;` outside quotes and comments. Text after the last `;` is a final
/// statement when it holds code; comment-only pieces are dropped.
pub fn split_statements(text: &str) -> std::result::Result<Vec<Statement>, Unterminated> {
    let mut statements = Vec::new();
    let mut comment_line = 0;
    let mut state = State::Code;
    let mut current = String::new();
    let mut start_line = None;
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        match state {
            State::Code => match c {
                ';' => {
                    if let Some(start) = start_line.take() {
                        statements.push(Statement {
                            sql: current.trim().to_string(),
                            line: start,
                        });
                    }
                    current.clear();
                    continue;
                }
                '\'' => state = State::SingleQuote,
                '"' => state = State::DoubleQuote,
                '-' if next == Some('-') => state = State::LineComment,
                '/' if next == Some('*') => {
                    state = State::BlockComment;
                    comment_line = line;
                }
                _ => {}
            },
            State::SingleQuote if c == '\'' => state = State::Code,
            State::DoubleQuote if c == '"' => state = State::Code,
            State::LineComment if c == '\n' => state = State::Code,
            State::BlockComment if c == '*' && next == Some('/') => {
                current.push(c);
                current.push(chars.next().unwrap_or('/'));
                state = State::Code;
                continue;
            }
            _ => {}
        }
        let is_code = matches!(state, State::Code | State::SingleQuote | State::DoubleQuote);
        if start_line.is_none() && is_code && !c.is_whitespace() {
            start_line = Some(line);
        }
        if c == '\n' {
            line += 1;
        }
        current.push(c);
    }
    if state == State::BlockComment {
        return Err(Unterminated { line: comment_line });
    }
    if let Some(start) = start_line {
        statements.push(Statement {
            sql: current.trim().to_string(),
            line: start,
        });
    }
    Ok(statements)
}

/// True when `text` ends a statement: its last code outside quotes and comments is `;`.
pub fn is_complete(text: &str) -> bool {
    let mut state = State::Code;
    let mut last_code = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        match state {
            State::Code => match c {
                '\'' => state = State::SingleQuote,
                '"' => state = State::DoubleQuote,
                '-' if next == Some('-') => state = State::LineComment,
                '/' if next == Some('*') => state = State::BlockComment,
                c if !c.is_whitespace() => last_code = Some(c),
                _ => {}
            },
            State::SingleQuote if c == '\'' => state = State::Code,
            State::DoubleQuote if c == '"' => state = State::Code,
            State::LineComment if c == '\n' => state = State::Code,
            State::BlockComment if c == '*' && next == Some('/') => {
                chars.next();
                state = State::Code;
            }
            _ => {}
        }
        if matches!(state, State::SingleQuote | State::DoubleQuote) {
            last_code = None;
        }
    }
    matches!(state, State::Code | State::LineComment) && last_code == Some(';')
}

/// Replaces every `${NAME}` with its value. An undefined name is an error, never an empty
/// string: a silently empty path or filter would run the wrong job.
pub fn substitute_variables(sql: &str, variables: &HashMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return plan_err!("unterminated variable reference '${{{after}': close it with '}}'");
        };
        let name = &after[..end];
        match variables.get(name) {
            Some(value) => out.push_str(value),
            None => {
                return plan_err!("undefined variable ${{{name}}}: define it with --define {name}=VALUE");
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses a `NAME=VALUE` definition.
pub fn parse_definition(text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_string(), value.to_string())),
        _ => plan_err!("--define expects NAME=VALUE, got '{text}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let script = "-- setup\nSELECT 'a;b';\n\n/* x; y */ SELECT 2\n  ; -- trailing; comment\nSELECT \"c;\" FROM t";
        let statements = split_statements(script).unwrap();
        assert_eq!(
            statements,
            vec![
                Statement {
                    sql: "-- setup\nSELECT 'a;b'".into(),
                    line: 2
                },
                Statement {
                    sql: "/* x; y */ SELECT 2".into(),
                    line: 4
                },
                Statement {
                    sql: "-- trailing; comment\nSELECT \"c;\" FROM t".into(),
                    line: 6
                },
            ]
        );
    }

    #[test]
    fn comment_only_pieces_are_dropped() {
        assert!(
            split_statements("-- nothing here;\n/* nor; here */\n ; ;")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_unclosed_comment_is_an_error_naming_its_line() {
        let error = split_statements("SELECT 1;\n\n/* forgot to close\nSELECT 2;").unwrap_err();
        assert_eq!(error, Unterminated { line: 3 });
    }

    #[test]
    fn completeness() {
        assert!(is_complete("select 1;"));
        assert!(is_complete("select 1; -- done"));
        assert!(!is_complete("select ';'"));
        assert!(!is_complete("select 1"));
        assert!(!is_complete("select 1 /* ; */"));
    }

    #[test]
    fn variables() {
        let vars = HashMap::from([("day".to_string(), "2026-01-02".to_string())]);
        assert_eq!(
            substitute_variables("WHERE d = '${day}'", &vars).unwrap(),
            "WHERE d = '2026-01-02'"
        );
        let err = substitute_variables("FROM '${data}/u.data'", &vars)
            .unwrap_err()
            .to_string();
        assert!(err.contains("undefined variable ${data}"), "{err}");
        assert!(substitute_variables("${day", &vars).is_err());
        assert_eq!(parse_definition("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_definition("novalue").is_err());
    }
}
