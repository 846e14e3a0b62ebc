//! The web console's routes: `/` redirects to it, the page and every file it loads come with the
//! right media type and a Content-Security-Policy that allows no inline script and no other
//! origin, unknown files are 404 problems, and the page loads without a key when keys are set.
//! The console never touches storage, so these run on SQLite; what the page does in a browser is
//! tested by tools/browser (run by ./run-tests.sh).

use std::collections::BTreeSet;

use crate::support::app::{TestApp, spawn_app_with};
use crate::support::{Backend, TestStore};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const KEY: &str = "console-key-0123456789abcdef";

async fn app_with(vars: &[(&str, &str)]) -> (TestApp, TestStore) {
    let store = TestStore::open(Backend::Sqlite).await;
    let app = spawn_app_with(store.ctx(), vars).await;
    (app, store)
}

/// The media type the console must send for a file, by its extension.
fn content_type_for(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        other => panic!("the console serves no .{other:?} files"),
    }
}

/// Every `/console/NAME` the page names and every `./NAME` a module imports, followed through
/// the modules: the files a browser fetches to show the console.
async fn files_the_page_loads(app: &TestApp) -> BTreeSet<String> {
    let page = app.get("/console").await.text;
    let mut todo: Vec<String> = referenced(&page, "\"/console/");
    let mut seen = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if name.ends_with(".js") {
            let module = app.get(&format!("/console/{name}")).await.text;
            todo.extend(referenced(&module, "from \"./"));
        }
    }
    seen
}

fn referenced(source: &str, prefix: &str) -> Vec<String> {
    source
        .match_indices(prefix)
        .map(|(i, _)| {
            source[i + prefix.len()..]
                .chars()
                .take_while(|c| *c != '"')
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn the_root_redirects_to_the_console() {
    let (app, _store) = app_with(&[]).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client.get(app.url("/")).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()["location"], "/console");
    // A browser follows it to the page.
    let followed = reqwest::get(app.url("/")).await.unwrap();
    assert_eq!(followed.status(), 200);
    let text = followed.text().await.unwrap();
    assert!(text.contains("<title>"), "{text}");
}

#[tokio::test]
async fn the_console_page_is_html_with_a_policy_that_forbids_inline_scripts_and_other_origins() {
    let (app, _store) = app_with(&[]).await;
    let r = app.get("/console").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("content-security-policy"), Some(CSP));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r.text.starts_with("<!doctype html>"));
    for (i, _) in r.text.match_indices("<script") {
        let tag: String = r.text[i..].chars().take_while(|c| *c != '>').collect();
        assert!(
            tag.contains("src=\"/console/"),
            "every script is a file of this origin, none inline: {tag}"
        );
    }
    for forbidden in [
        "onload=",
        "onclick=",
        "onerror=",
        "style=",
        "javascript:",
        "http:",
        "https:",
    ] {
        assert!(!r.text.contains(forbidden), "the page has no {forbidden}");
    }
}

#[tokio::test]
async fn every_file_the_console_loads_has_its_media_type_and_the_policy() {
    let (app, _store) = app_with(&[]).await;
    let files = files_the_page_loads(&app).await;
    for expected in ["app.js", "api.js", "sse.js", "console.css", "icon.svg"] {
        assert!(files.contains(expected), "{expected} in {files:?}");
    }
    for name in &files {
        let r = app.get(&format!("/console/{name}")).await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(
            r.header("content-type"),
            Some(content_type_for(name)),
            "{name}"
        );
        assert_eq!(r.header("content-security-policy"), Some(CSP), "{name}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{name}"
        );
        assert!(!r.text.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn an_unknown_console_file_is_a_404_problem() {
    let (app, _store) = app_with(&[]).await;
    for path in [
        "/console/nope.js",
        "/console/index.html",
        "/console/",
        "/console/%2e%2e%2fCargo.toml",
        "/console/app.js/",
        "/console/app.js.map",
    ] {
        app.get(path).await.assert_problem(404, "route_not_found");
    }
    let r = app.request(reqwest::Method::POST, "/console").await;
    r.assert_problem(405, "method_not_allowed");
}

#[tokio::test]
async fn with_api_keys_the_console_loads_without_a_key_and_the_api_still_needs_one() {
    let (app, _store) = app_with(&[("API_KEYS", KEY)]).await;
    assert_eq!(app.get("/console").await.status, 200);
    for name in files_the_page_loads(&app).await {
        assert_eq!(
            app.get(&format!("/console/{name}")).await.status,
            200,
            "{name}"
        );
    }
    assert_eq!(app.get("/sessions").await.status, 401);
    let r = app
        .get_with_header("/sessions", "authorization", &format!("Bearer {KEY}"))
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_console_is_not_part_of_the_api_description() {
    let (app, _store) = app_with(&[]).await;
    let doc = app.get("/openapi.json").await.body;
    let paths = doc["paths"].as_object().unwrap();
    assert!(
        paths.keys().all(|p| p != "/" && !p.starts_with("/console")),
        "{:?}",
        paths.keys()
    );
}
