//! Helpers the lifecycle files share.

use std::time::Duration;

use crate::support::app::TestApp;

/// Polls `check` every `poll` for up to `seconds`; panics with `what` if it never holds.
pub async fn eventually<F, Fut>(poll: Duration, seconds: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {seconds} s"
        );
        tokio::time::sleep(poll).await;
    }
}

/// Asserts that `GET path` lists `id` first.
pub async fn assert_listed_first(app: &TestApp, path: &str, id: &str) {
    let listed = app.get(path).await;
    assert_eq!(
        listed.body["sessions"][0]["sessionId"], id,
        "{}",
        listed.text
    );
}
