//! Hardening: security headers on every response, scoped API keys, rate limits.

use crate::support::app::spawn_app;
use crate::support::{Backend, TestStore};

#[tokio::test]
async fn every_response_says_nosniff_and_no_store() {
    let store = TestStore::open(Backend::Sqlite).await;
    let app = spawn_app(store.ctx()).await;
    app.create_session("hdr-1").await;
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/sessions",
        "/sessions/hdr-1",
        "/sessions/hdr-1/events",
        "/sessions/missing",
        "/no/such/route",
    ] {
        let r = app.get(path).await;
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path} ({})",
            r.status
        );
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
    }
}
