//! The function reference, `docs/functions.md`, written from the one registry
//! ([`crate::function_docs`]) as DataFusion writes its own function pages from `#[user_doc]`:
//! every function's syntax, description, arguments (with the names they take) and example,
//! grouped by family. `recfusion docs` prints it, and a test fails when the committed page
//! differs from what the registry gives.

use std::fmt::Write;

use crate::{FunctionDoc, FunctionKind, function_docs};

/// The families in the order the page lists them.
const SECTIONS: [&str; 9] = [
    "Vector Functions",
    "Text Functions",
    "Profile Functions",
    "Model Functions",
    "Recommendation Functions",
    "Evaluation Functions",
    "Privacy Functions",
    "File Functions",
    "Display Functions",
];

/// The whole page, Markdown.
pub fn markdown() -> String {
    let mut functions = function_docs();
    functions.sort_by(|a, b| a.name.cmp(&b.name));
    let mut page = String::new();
    page.push_str(
        "# Function reference\n\n\
         <!-- Written by `recfusion docs` from the functions' own documentation; do not edit by hand. -->\n\n\
         Every function recfusion adds to SQL, by family. Arguments are given by position or by name\n\
         (`name => value`, any case; positional ones first); an optional argument left out takes the\n\
         default its description gives. Table functions read tables or views by name; their column\n\
         arguments (`user => 'user_id'`) choose the columns that play each role, so a table with extra\n\
         columns needs no view. In the shell, `\\df NAME` shows the same text.\n\n",
    );
    for section in SECTIONS {
        let members: Vec<&FunctionDoc> = functions
            .iter()
            .filter(|f| f.documentation.doc_section.label == section)
            .collect();
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(page, "- [{section}](#{})", anchor(section));
        for function in &members {
            let _ = writeln!(page, "  - [`{}`](#{})", function.name, anchor(&function.name));
        }
    }
    let others: Vec<&FunctionDoc> = functions
        .iter()
        .filter(|f| !SECTIONS.contains(&f.documentation.doc_section.label))
        .collect();
    for section in SECTIONS {
        let members: Vec<&FunctionDoc> = functions
            .iter()
            .filter(|f| f.documentation.doc_section.label == section)
            .collect();
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(page, "\n## {section}");
        for function in members {
            write_function(&mut page, function);
        }
    }
    if !others.is_empty() {
        let _ = writeln!(page, "\n## Other Functions");
        for function in others {
            write_function(&mut page, function);
        }
    }
    page
}

fn write_function(page: &mut String, function: &FunctionDoc) {
    let doc = &function.documentation;
    let kind = match function.kind {
        FunctionKind::Scalar => "scalar function",
        FunctionKind::Aggregate => "aggregate function",
        FunctionKind::Table => "table function",
    };
    let _ = writeln!(page, "\n### `{}`\n\n*{kind}*\n\n{}\n", function.name, doc.description);
    let _ = writeln!(page, "```text\n{}\n```", doc.syntax_example);
    if let Some(arguments) = doc.arguments.as_ref().filter(|a| !a.is_empty()) {
        let _ = writeln!(page, "\n| argument | description |\n|---|---|");
        for (name, description) in arguments {
            let names: Vec<String> = name.split('|').map(|n| format!("`{}`", n.trim())).collect();
            let _ = writeln!(page, "| {} | {} |", names.join(" or "), description.replace('|', "\\|"));
        }
    }
    if let Some(example) = &doc.sql_example {
        let _ = writeln!(page, "\nExample:\n\n{}", example.trim());
    }
}

/// GitHub's anchor of a heading: lower case, spaces as dashes, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// docs/functions.md is what the registry writes: a function documented in code but not in
    /// the committed page (or the other way round) fails here.
    #[test]
    fn the_committed_reference_is_the_registry_s() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/functions.md");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == super::markdown(),
            "docs/functions.md is not what the functions' documentation gives; write it again with \
             `cargo run -- docs > docs/functions.md`"
        );
    }
}
