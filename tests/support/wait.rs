//! Waiting for what a service does in the background: read it again and again until it holds,
//! and fail with what was last read once the limit passes. Nothing here measures time: limits
//! are generous, for slow machines and the slow MongoDB test server.

use std::future::Future;
use std::time::{Duration, Instant};

/// Reads with `read` every `every` until `done` holds for what it read, and returns that. After
/// `limit` the test fails, naming `what` and showing `show` of the last read.
pub async fn until<T, Fut>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut read: impl FnMut() -> Fut,
    done: impl Fn(&T) -> bool,
    show: impl Fn(&T) -> String,
) -> T
where
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + limit;
    loop {
        let found = read().await;
        if done(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "waited {limit:?} for {what}; {}",
            show(&found)
        );
        tokio::time::sleep(every).await;
    }
}
