//! The crates' inner structure: no module of a library crate imports,
//! directly or through others, a module that imports it (an import circle
//! makes two files one concern and a newcomer read both to follow
//! either). Tests inside a module (`#[cfg(test)]` and after) may use
//! anything.
//!
//! And no function of library code is longer than [`MAX_FN_LINES`].
//!
//! A module's imports are its `crate::a::b` paths (the longest prefix that
//! is a module) and its `pub use child::...` re-exports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use groundtruth_tests::repo;

/// Module path (`rules::dictionary_keys`, `crate` for lib.rs) of a file
/// under `src`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("lib" | "mod" | "main")
    ) {
        parts.pop();
    }
    if parts.is_empty() {
        "crate".into()
    } else {
        parts.join("::")
    }
}

/// The module's source before its tests, without line comments.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let body = text.split("\n#[cfg(test)]").next().unwrap_or_default();
    body.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lowercase path segments after `prefix` (`crate::a::b::Item` gives
/// `[a, b]`), for each occurrence.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    code.match_indices(prefix)
        .filter(|(at, _)| {
            // Not the tail of a longer name (`my_crate::`).
            code[..*at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
        .map(|(at, _)| {
            code[at + prefix.len()..]
                .split("::")
                .take_while(|s| {
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                })
                .collect()
        })
        .collect()
}

/// Each module's imports of other modules of its crate.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = groundtruth_tests::files_under(src, "rs");
    let modules: BTreeMap<String, std::path::PathBuf> = files
        .iter()
        .map(|f| (module_of(src, f), f.clone()))
        .collect();
    let mut graph = BTreeMap::new();
    for (m, file) in &modules {
        let code = code(file);
        let mut to = BTreeSet::new();
        for parts in paths_after(&code, "crate::") {
            // The longest prefix that is a module.
            if let Some(target) = (1..=parts.len())
                .rev()
                .map(|k| parts[..k].join("::"))
                .find(|c| modules.contains_key(c))
            {
                if &target != m && !m.starts_with(&format!("{target}::")) {
                    to.insert(target);
                }
            }
        }
        for line in code.lines() {
            if let Some(rest) = line.trim_start().strip_prefix("pub use ") {
                if let Some((child, _)) = rest.split_once("::") {
                    let target = if m == "crate" {
                        child.to_string()
                    } else {
                        format!("{m}::{child}")
                    };
                    if modules.contains_key(&target) {
                        to.insert(target);
                    }
                }
            }
        }
        graph.insert(m.clone(), to);
    }
    graph
}

/// The circles of `graph`: each strongly connected set of two or more.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Kosaraju: finish order on the graph, then components on its reverse.
    fn visit(
        v: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        if !seen.insert(v.to_string()) {
            return;
        }
        for w in g.get(v).into_iter().flatten() {
            visit(w, g, seen, out);
        }
        out.push(v.to_string());
    }
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for v in graph.keys() {
        visit(v, graph, &mut seen, &mut order);
    }
    let mut reverse: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (v, ws) in graph {
        for w in ws {
            reverse.entry(w.clone()).or_default().insert(v.clone());
        }
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for v in order.iter().rev() {
        let mut component = Vec::new();
        visit(v, &reverse, &mut seen, &mut component);
        if component.len() > 1 {
            component.sort();
            out.push(component);
        }
    }
    out
}

#[test]
fn the_checker_finds_a_circle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(circles(&graph), [vec!["a", "b", "c"]]);
    let code = "use crate::rules::dictionary_keys::{Key, KeyKind};\nlet x = my_crate::a;";
    assert_eq!(
        paths_after(code, "crate::"),
        [vec!["rules", "dictionary_keys"]]
    );
}

#[test]
fn no_module_imports_one_that_imports_it() {
    let crates = repo().join("crates");
    let mut found = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&crates)
        .expect("crates/")
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    for krate in names {
        let src = krate.join("src");
        if !src.is_dir() {
            continue;
        }
        for circle in circles(&imports(&src)) {
            found.push(format!(
                "{}: {}",
                krate.file_name().unwrap_or_default().to_string_lossy(),
                circle.join(" <-> ")
            ));
        }
    }
    assert!(
        found.is_empty(),
        "import circles inside crates (move what both need into a module of its own):\n{}",
        found.join("\n")
    );
}

/// The longest a function in library code may be: past this a reader
/// cannot hold it, and its sections want names (a helper, a method).
const MAX_FN_LINES: usize = 150;

/// Functions of `code` longer than `max` lines: (name, lines). A function
/// runs from its `fn` line to the first line after it that closes a brace
/// at the `fn` line's indentation (rustfmt's layout).
fn long_functions(code: &str, max: usize) -> Vec<(String, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let head = ["pub(crate) ", "pub ", "async ", "const ", "unsafe "]
            .iter()
            .fold(trimmed, |t, p| t.strip_prefix(p).unwrap_or(t));
        let Some(rest) = head.strip_prefix("fn ") else {
            i += 1;
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // A declaration without a body (a trait's) ends with `;`.
        let mut j = i;
        while j < lines.len() && !lines[j].trim_end().ends_with('{') {
            if lines[j].trim_end().ends_with(';') {
                break;
            }
            j += 1;
        }
        if j >= lines.len() || lines[j].trim_end().ends_with(';') {
            i = j + 1;
            continue;
        }
        let close = format!("{}}}", " ".repeat(indent));
        let end = (j + 1..lines.len())
            .find(|&k| lines[k].starts_with(&close))
            .unwrap_or(lines.len() - 1);
        let n = end - i + 1;
        if n > max {
            out.push((name, n));
        }
        i = end + 1;
    }
    out
}

#[test]
fn the_function_length_checker_counts_from_fn_to_its_closing_brace() {
    let long = format!(
        "pub fn short() {{\n    x();\n}}\n\nimpl A {{\n    async fn long(&self) {{\n{}    }}\n}}\n",
        "        y();\n".repeat(10)
    );
    assert_eq!(long_functions(&long, 5), [("long".to_string(), 12)]);
    assert!(long_functions(&long, 12).is_empty());
    assert!(long_functions("trait T {\n    fn f(&self);\n}\n", 0).is_empty());
}

#[test]
fn no_library_function_is_longer_than_a_reader_can_hold() {
    let crates = repo().join("crates");
    let mut found = Vec::new();
    let mut files = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(&crates)
        .expect("crates/")
        .flatten()
        .map(|e| e.path().join("src"))
        .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    for file in files {
        for (name, n) in long_functions(&code(&file), MAX_FN_LINES) {
            found.push(format!(
                "{}: fn {name} is {n} lines",
                file.strip_prefix(&crates).unwrap_or(&file).display()
            ));
        }
    }
    assert!(
        found.is_empty(),
        "functions over {MAX_FN_LINES} lines in library code (name their sections: helpers, methods):\n{}",
        found.join("\n")
    );
}
