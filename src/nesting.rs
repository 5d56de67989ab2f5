//! How deeply a statement nests, measured on its tokens before it is parsed: DataFusion plans
//! and copies expressions recursively, so `1+1+…+1` with 20,000 terms (or 20,000 `UNION ALL`s)
//! would overflow the stack and abort the process. Deeper than [`MAX_DEPTH`] is refused with an
//! error instead, as DuckDB does at the same depth (`max_expression_depth`).

use datafusion::common::{Result, plan_err};
use datafusion::sql::sqlparser::dialect::DuckDbDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// The deepest chain of operators or set operations a statement may hold. Planning time
/// grows with the square of the depth: 1,000 plans in about a second.
pub const MAX_DEPTH: usize = 1000;

/// One level of parentheses. A chain of binary operators nests one level per operator
/// (`a + b + c` is `(a + b) + c`); commas and clause keywords start a new expression; set
/// operations nest across the clauses of the queries they join.
#[derive(Default)]
struct Level {
    operators: usize,
    set_operations: usize,
    deepest_group: usize,
    deepest_expression: usize,
}

impl Level {
    fn end_expression(&mut self) {
        self.deepest_expression = self.deepest_expression.max(self.operators + self.deepest_group);
        self.operators = 0;
        self.deepest_group = 0;
    }

    fn depth(mut self) -> usize {
        self.end_expression();
        self.deepest_expression + self.set_operations
    }
}

/// An upper bound of the nesting DataFusion will build for `sql`. Text that does not
/// tokenize measures 0: the parser reports it.
pub fn statement_depth(sql: &str) -> usize {
    let Ok(tokens) = Tokenizer::new(&DuckDbDialect {}, sql).tokenize() else {
        return 0;
    };
    let mut levels = vec![Level::default()];
    for token in tokens {
        match token {
            Token::LParen | Token::LBracket => levels.push(Level::default()),
            Token::RParen | Token::RBracket if levels.len() > 1 => {
                let inner = levels.pop().map_or(0, Level::depth) + 1;
                if let Some(level) = levels.last_mut() {
                    level.deepest_group = level.deepest_group.max(inner);
                }
            }
            Token::Comma | Token::SemiColon => {
                if let Some(level) = levels.last_mut() {
                    level.end_expression();
                }
            }
            Token::Word(word) => {
                let Some(level) = levels.last_mut() else { continue };
                match word.keyword {
                    Keyword::AND | Keyword::OR => level.operators += 1,
                    Keyword::UNION | Keyword::EXCEPT | Keyword::INTERSECT => level.set_operations += 1,
                    Keyword::SELECT
                    | Keyword::FROM
                    | Keyword::WHERE
                    | Keyword::GROUP
                    | Keyword::HAVING
                    | Keyword::ORDER
                    | Keyword::LIMIT
                    | Keyword::ON
                    | Keyword::WHEN
                    | Keyword::THEN
                    | Keyword::ELSE
                    | Keyword::VALUES
                    | Keyword::SET => level.end_expression(),
                    _ => {}
                }
            }
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Ampersand
            | Token::Pipe
            | Token::Caret
            | Token::ShiftLeft
            | Token::ShiftRight => {
                if let Some(level) = levels.last_mut() {
                    level.operators += 1;
                }
            }
            _ => {}
        }
    }
    // Unclosed parentheses are the parser's to report; measure what is open.
    levels.into_iter().rev().fold(0, |inner, mut level| {
        level.deepest_group = level.deepest_group.max(inner);
        level.depth()
    })
}

/// Refuses a statement that nests deeper than [`MAX_DEPTH`].
pub fn check_depth(sql: &str) -> Result<()> {
    let depth = statement_depth(sql);
    if depth > MAX_DEPTH {
        return plan_err!(
            "the statement nests about {depth} operators or set operations deep; the limit is \
             {MAX_DEPTH}. Write a long chain of ORs as `x IN (…)`, sum many terms with an \
             aggregate, or build a long UNION in steps (INSERT INTO … SELECT …)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(operator: &str, terms: usize) -> String {
        format!("SELECT {}", vec!["1"; terms].join(operator))
    }

    #[test]
    fn a_chain_nests_one_level_per_operator() {
        assert_eq!(statement_depth(&chain(" + ", 5)), 4);
        assert_eq!(statement_depth(&chain(" OR ", 1001)), 1000);
        assert!(check_depth(&chain(" + ", 1001)).is_ok());
        let error = check_depth(&chain(" + ", 1002)).unwrap_err().to_string();
        assert!(error.contains("1001") && error.contains("limit is 1000"), "{error}");
    }

    #[test]
    fn lists_and_clauses_start_new_expressions() {
        let values: Vec<String> = (0..5000).map(|i| format!("(-{i}, 1 - 2)")).collect();
        let sql = format!("SELECT count(*) FROM (VALUES {}) t WHERE a > 1", values.join(", "));
        assert!(statement_depth(&sql) < 10, "{}", statement_depth(&sql));
        let list: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
        let sql = format!("SELECT * FROM t WHERE x IN ({}) AND y = 1", list.join(", "));
        assert!(statement_depth(&sql) < 10);
    }

    #[test]
    fn groups_and_set_operations_add_up() {
        assert_eq!(statement_depth("SELECT ((1 + 2) + 3)"), 4);
        let union = vec!["SELECT 1 + 1"; 1500].join(" UNION ALL ");
        assert!(check_depth(&union).is_err());
        assert!(check_depth(&vec!["SELECT 1"; 500].join(" UNION ALL ")).is_ok());
    }
}
