//! The dependency rule, checked on the source: api → service → repo traits → domain, with
//! `config` knowing the backends' settings and nothing knowing `config` but the edge. A `use`
//! (or path) that points the wrong way fails here, naming the file and the line.
//!
//! One narrow exception: `config` reads the API keys into `api::auth::keys`' types, which live
//! next to the authentication that uses them. That module is plain data (no HTTP, no `config`),
//! held to it by its own rule below, so `config` depending on it brings in nothing of `api`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each layer may not name: other crate modules, and crates that belong to another layer.
const RULES: &[(&str, &[&str])] = &[
    (
        "src/domain",
        &[
            "crate::repo",
            "crate::service",
            "crate::api",
            "crate::app",
            "crate::config",
            "crate::telemetry",
            "axum",
            "mongodb",
            "bson",
            "rusqlite",
            "utoipa",
        ],
    ),
    (
        "src/repo",
        &[
            "crate::service",
            "crate::api",
            "crate::app",
            "crate::config",
            "crate::telemetry",
            "axum",
            "utoipa",
        ],
    ),
    (
        "src/service",
        &[
            "crate::api",
            "crate::app",
            "crate::config",
            "crate::telemetry",
            "axum",
            "utoipa",
            "mongodb",
            "bson",
            "rusqlite",
        ],
    ),
    (
        "src/config",
        &[
            "crate::api",
            "crate::app",
            "crate::service",
            "axum",
            "mongodb",
            "rusqlite",
        ],
    ),
    (
        "src/api/auth/keys.rs",
        &[
            "crate::api",
            "crate::app",
            "crate::config",
            "crate::service",
            "crate::repo",
            "crate::telemetry",
            "axum",
            "utoipa",
            "mongodb",
            "bson",
            "rusqlite",
        ],
    ),
    ("src/telemetry", &["crate::api", "crate::app", "axum"]),
    ("src/api", &["crate::app", "mongodb", "bson", "rusqlite"]),
];

/// Paths a layer may name although a rule forbids what they start with.
const ALLOWED: &[(&str, &str)] = &[("src/config", "crate::api::auth::keys")];

/// `line` without the paths its layer is allowed to name.
fn without_allowed(layer: &str, line: &str) -> String {
    ALLOWED
        .iter()
        .filter(|(allowed_in, _)| *allowed_in == layer)
        .fold(line.to_owned(), |line, (_, path)| line.replace(path, ""))
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).expect("readable source folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Whether `line` names `forbidden` as a path (`forbidden::…` or `use forbidden`), outside a
/// comment.
fn names(line: &str, forbidden: &str) -> bool {
    let code = line.split("//").next().unwrap_or_default();
    code.match_indices(forbidden).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = &code[at + forbidden.len()..];
        let starts_a_path = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
        starts_a_path && (after.starts_with("::") || after.starts_with(';'))
    })
}

#[test]
fn every_layer_depends_only_inwards() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut violations = Vec::new();
    for (layer, forbidden) in RULES {
        for file in rust_files(&root.join(layer)) {
            let text = std::fs::read_to_string(&file).expect("readable source file");
            for (number, line) in text.lines().enumerate() {
                let checked = without_allowed(layer, line);
                for name in forbidden.iter().filter(|name| names(&checked, name)) {
                    violations.push(format!(
                        "{}:{}: {layer} must not use {name}: {}",
                        file.strip_prefix(root).unwrap_or(&file).display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_checker_sees_a_forbidden_path() {
    assert!(names("use crate::api::AppError;", "crate::api"));
    assert!(names("    axum::http::StatusCode::OK", "axum"));
    assert!(!names("// axum::http is not for here", "axum"));
    assert!(!names("use crate::apis::X;", "crate::api"));
    assert!(!names("let my_axum::x = 1;", "axum"));
    let keys = "use crate::api::auth::keys::{ApiKeys, Scope};";
    assert!(!names(&without_allowed("src/config", keys), "crate::api"));
    assert!(names(
        &without_allowed("src/config", "use crate::api::AppError;"),
        "crate::api"
    ));
    assert!(names(&without_allowed("src/service", keys), "crate::api"));
}

// No import cycles between the crate's modules: a module never `use`s one that (directly or
// through others) `use`s it back. Every `use crate::…`, `use super::…` and `use self::…` outside
// `#[cfg(test)]` code is an edge from its file's module to the module it names (a module's own
// children and parents do not count: `mod.rs` re-exporting its children is how a module is put
// together).

type Module = Vec<String>;

/// `src/api/dto/request.rs` → `api::dto::request`; `mod.rs`, `lib.rs` and `main.rs` name their
/// folder.
fn module_of(root: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(root).unwrap_or(file).with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The paths of every `use` declaration in `code` (one that starts a line, `pub` or not), one
/// level of braces expanded.
fn used_paths(code: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut open: Option<String> = None;
    for line in code.lines() {
        let trimmed = line.trim_start();
        let rest = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .find_map(|start| trimmed.strip_prefix(start));
        if let (None, Some(rest)) = (&open, rest) {
            open = Some(rest.to_owned());
        } else if let Some(s) = open.as_mut() {
            s.push_str(trimmed);
        }
        if open.as_ref().is_some_and(|s| s.contains(';')) {
            let s = open.take().unwrap_or_default();
            statements.push(
                s.split(';')
                    .next()
                    .unwrap_or_default()
                    .replace(char::is_whitespace, ""),
            );
        }
    }
    let mut paths = Vec::new();
    for path in statements {
        match path.split_once("::{") {
            Some((prefix, items)) => {
                let items = items.strip_suffix('}').unwrap_or(items);
                let mut depth = 0;
                let mut item = String::new();
                for c in items.chars().chain(std::iter::once(',')) {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            let head = item.split("::{").next().unwrap_or_default();
                            paths.push(format!("{prefix}::{head}"));
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    item.push(c);
                }
            }
            None => paths.push(path),
        }
    }
    paths
}

/// The module `path`, used in `from`, names (the longest known module it starts with).
fn target(from: &Module, path: &str, modules: &BTreeSet<Module>) -> Option<Module> {
    let mut parts = path.split("::").peekable();
    let mut base: Module = match parts.peek().copied() {
        Some("crate") => {
            parts.next();
            Vec::new()
        }
        Some("self") => {
            parts.next();
            from.clone()
        }
        Some("super") => {
            let mut base = from.clone();
            while parts.peek() == Some(&"super") {
                parts.next();
                base.pop();
            }
            base
        }
        _ => return None,
    };
    base.extend(parts.map(str::to_owned));
    while !base.is_empty() && !modules.contains(&base) {
        base.pop();
    }
    Some(base).filter(|m| !m.is_empty())
}

/// Module → the modules it uses, read from the files (non-test code only).
fn graph(files: &[(Module, String)]) -> BTreeMap<Module, BTreeSet<Module>> {
    let modules: BTreeSet<Module> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, text) in files {
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .map(|l| l.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        for path in used_paths(&code) {
            let Some(to) = target(module, &path, &modules) else {
                continue;
            };
            let related = to.starts_with(module) || module.starts_with(&to);
            if !related {
                edges.entry(module.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

/// Every cycle found by a depth-first walk, as `a -> b -> a`.
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> BTreeSet<String> {
    fn walk(
        at: &Module,
        stack: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        found: &mut BTreeSet<String>,
    ) {
        stack.push(at.clone());
        for next in edges.get(at).into_iter().flatten() {
            if let Some(start) = stack.iter().position(|m| m == next) {
                let mut cycle: Vec<String> = stack[start..].iter().map(|m| m.join("::")).collect();
                cycle.push(next.join("::"));
                found.insert(cycle.join(" -> "));
            } else if !done.contains(next) {
                walk(next, stack, done, edges, found);
            }
        }
        stack.pop();
        done.insert(at.clone());
    }
    let mut found = BTreeSet::new();
    let mut done = BTreeSet::new();
    for module in edges.keys() {
        if !done.contains(module) {
            walk(module, &mut Vec::new(), &mut done, edges, &mut found);
        }
    }
    found
}

#[test]
fn no_module_of_the_crate_imports_one_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files: Vec<(Module, String)> = rust_files(&root)
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("readable source file");
            (module_of(&root, &f), text)
        })
        .collect();
    let found = cycles(&graph(&files));
    assert!(
        found.is_empty(),
        "import cycles:\n{}",
        found.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_checker_finds_a_cycle_through_super_and_braces() {
    let m = |p: &str| p.split("::").map(str::to_owned).collect::<Module>();
    let files = vec![
        (m("api"), "mod dto;\nmod read;\n".to_owned()),
        (
            m("api::dto"),
            "use super::read::{self, Event};\n".to_owned(),
        ),
        (m("api::read"), "use super::dto::AddEvent;\n".to_owned()),
        (
            m("api::error"),
            "use crate::api::dto::X;\n#[cfg(test)]\nuse super::read::Y;\n".to_owned(),
        ),
    ];
    let found = cycles(&graph(&files));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found
            .iter()
            .all(|c| c.contains("api::dto") && c.contains("api::read"))
    );
    assert!(!found.iter().any(|c| c.contains("api::error")));
}
