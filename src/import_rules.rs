//! Imports point one way, checked on the source (see STYLE "Imports point one way"): the pure
//! and storage floors never reach the HTTP framework, and the application state is built from
//! parts that know nothing of it. A module here is a top-level one, `src/x.rs` or `src/x/`;
//! what it imports is every `crate::x` its code names (`use` lines and inline paths, comments
//! skipped), tests included.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// Below the HTTP edges: none of them may reach a module that uses axum, directly or not.
const FLOORS: &[&str] = &["store", "domain", "scim_proto", "authz"];

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Each top-level module's files, read from `src/`.
fn modules() -> BTreeMap<String, Vec<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("src/") {
        let path = entry.expect("entry").path();
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("name");
        let files = if path.is_dir() {
            let mut files = Vec::new();
            rust_files(&path, &mut files);
            files
        } else if path.extension().is_some_and(|e| e == "rs") {
            vec![std::fs::read_to_string(&path).expect("source")]
        } else {
            continue;
        };
        if !matches!(stem, "lib" | "main") {
            modules.insert(stem.to_owned(), files);
        }
    }
    modules
}

fn rust_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(std::fs::read_to_string(&path).expect("source"));
        }
    }
}

/// The source without its comments: a line's text from `//` on, unless inside a string.
fn code(source: &str) -> String {
    source
        .lines()
        .map(|line| {
            let mut quotes = 0;
            let bytes = line.as_bytes();
            for i in 0..bytes.len() {
                match bytes[i] {
                    b'"' if i == 0 || bytes[i - 1] != b'\\' => quotes += 1,
                    b'/' if quotes % 2 == 0 && bytes.get(i + 1) == Some(&b'/') => {
                        return &line[..i];
                    }
                    _ => {}
                }
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment after every `crate::` in `code`, also inside `crate::{a, b::c}` groups.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if code[..at].ends_with('$') {
            continue;
        }
        let rest = code[at + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    _ if item_start && !c.is_whitespace() => {
                        found.insert(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found
}

/// Which module imports which (self excluded), and which modules use axum.
fn graph() -> (Graph, BTreeSet<String>) {
    let modules = modules();
    let mut imports = Graph::new();
    let mut axum = BTreeSet::new();
    for (name, files) in &modules {
        let code: Vec<String> = files.iter().map(|f| code(f)).collect();
        if code.iter().any(|c| c.contains("axum::")) {
            axum.insert(name.clone());
        }
        let named = code
            .iter()
            .flat_map(|c| crate_paths(c))
            // Macros (`crate::user_columns!`) and items of the crate root are not modules.
            .filter(|m| m != name && modules.contains_key(m))
            .collect();
        imports.insert(name.clone(), named);
    }
    (imports, axum)
}

/// Every module `from` reaches through its imports, itself included, each with the chain of
/// imports that leads there.
fn reachable(imports: &Graph, from: &str) -> BTreeMap<String, Vec<String>> {
    let mut seen = BTreeMap::from([(from.to_owned(), vec![from.to_owned()])]);
    let mut queue = VecDeque::from([from.to_owned()]);
    while let Some(module) = queue.pop_front() {
        for next in imports.get(&module).into_iter().flatten() {
            if !seen.contains_key(next) {
                let mut chain = seen[&module].clone();
                chain.push(next.clone());
                seen.insert(next.clone(), chain);
                queue.push_back(next.clone());
            }
        }
    }
    seen
}

#[test]
fn the_floors_below_the_http_edges_reach_no_module_that_uses_axum() {
    let (imports, axum) = graph();
    for must_see in ["app", "ops", "scim", "admin"] {
        assert!(
            axum.contains(must_see),
            "the scan missed axum in {must_see}"
        );
    }
    let mut breaches = Vec::new();
    for floor in FLOORS {
        assert!(imports.contains_key(*floor), "no module {floor}");
        for (module, chain) in reachable(&imports, floor) {
            if axum.contains(&module) {
                breaches.push(chain.join(" -> "));
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "reach a module that uses axum:\n{}",
        breaches.join("\n")
    );
}

#[test]
fn nothing_the_state_is_built_from_imports_the_state() {
    let (imports, _) = graph();
    let parts = &imports["state"];
    for must_see in ["auth", "store", "telemetry", "rate_limit"] {
        assert!(
            parts.contains(must_see),
            "the scan missed state -> {must_see}"
        );
    }
    let loops: Vec<String> = parts
        .iter()
        .filter_map(|part| reachable(&imports, part).remove("state"))
        .map(|chain| format!("state -> {}", chain.join(" -> ")))
        .collect();
    assert!(loops.is_empty(), "import loops:\n{}", loops.join("\n"));
}

#[test]
fn the_scan_reads_grouped_imports_and_skips_comments() {
    let source = "use crate::{a, b::{c, d}, e as f};\n\
                  // use crate::commented;\n\
                  let url = \"http://x\"; crate::g::h(); // crate::trailing\n\
                  $crate::macro_path!();";
    let found = crate_paths(&code(source));
    let expected = ["a", "b", "e", "g"].map(String::from);
    assert_eq!(found, BTreeSet::from(expected));
}
