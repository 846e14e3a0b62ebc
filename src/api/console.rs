//! The web console: one HTML page with its CSS, icon and JavaScript modules (the files under
//! `console/` at the repository root), compiled into the binary. Nothing is fetched at run time
//! and nothing is built: the browser loads these files as they are in the repository.
//!
//! The console holds no data; it reads and writes through the API with the key its user enters,
//! so these routes are public. Every console response carries [`CONSOLE_CSP`], which allows
//! scripts, styles, images and connections from this origin only and no inline script at all.

use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::error::AppError;

/// Where the console lives; `GET /` redirects here.
pub const CONSOLE_PATH: &str = "/console";

/// The Content-Security-Policy of every console response: only this origin's scripts (no inline
/// script, no `eval`), styles, images and connections; no plugins, frames, forms or `<base>`.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One embedded file: its name under `/console/`, its media type, its bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// The file `console/$name`, served as `$content_type`.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("../../console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the console page loads. A name not listed here is a 404.
const ASSETS: &[Asset] = &[
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("sse.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("list.js", JS),
    asset!("call.js", JS),
    asset!("metadata.js", JS),
    asset!("overview.js", JS),
    asset!("chart.js", JS),
    asset!("zone.js", JS),
    asset!("search.js", JS),
    asset!("webhooks.js", JS),
    asset!("webhook-form.js", JS),
    asset!("deliveries.js", JS),
];

const INDEX_HTML: &str = include_str!("../../console/index.html");

/// `body` as `content_type`, with the console's CSP and no referrer.
fn respond(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONSOLE_CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `GET /console`: the page.
pub async fn page() -> Response {
    respond("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /console/{name}`: one of [`ASSETS`], or a 404 problem.
pub async fn asset(uri: Uri) -> Response {
    let name = uri
        .path()
        .strip_prefix(CONSOLE_PATH)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or_default();
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => respond(asset.content_type, asset.body),
        None => AppError::not_found("route_not_found", "no such console file").into_response(),
    }
}

/// `GET /`: the console.
pub async fn root() -> Redirect {
    Redirect::to(CONSOLE_PATH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        let sources = std::iter::once(INDEX_HTML).chain(ASSETS.iter().map(|a| a.body));
        for source in sources {
            for (i, _) in source.match_indices("/console/") {
                let rest = &source[i + "/console/".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                    .collect();
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "/console/{name} is referenced but not embedded"
                );
            }
            for (i, _) in source.match_indices("from \"./") {
                let rest = &source[i + "from \"./".len()..];
                let name: String = rest.chars().take_while(|c| *c != '"').collect();
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "./{name} is imported but not embedded"
                );
            }
        }
    }

    #[test]
    fn no_console_file_writes_html_from_data() {
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            for forbidden in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(
                    !asset.body.contains(forbidden),
                    "{} uses {forbidden}: render values with textContent",
                    asset.name
                );
            }
        }
    }
}
