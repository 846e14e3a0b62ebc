//! The dependency rule, checked on the source: api → service → repo traits → domain, with
//! `config` knowing the backends' settings and nothing knowing `config` but the edge. A `use`
//! (or path) that points the wrong way fails here, naming the file and the line.
//!
//! One narrow exception: `config` reads the API keys into `api::auth::keys`' types, which live
//! next to the authentication that uses them. That module is plain data (no HTTP, no `config`),
//! held to it by its own rule below, so `config` depending on it brings in nothing of `api`.

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
    ("src/telemetry.rs", &["crate::api", "crate::app", "axum"]),
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
