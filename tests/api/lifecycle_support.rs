//! Helpers the lifecycle files share.

use std::time::Duration;

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
