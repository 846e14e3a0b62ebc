//! The real binary as a child process: `kill -9` mid-ingest and restart ([`crash`]), SIGTERM
//! under load ([`shutdown`]), the live-transcript stream ([`stream`]), the access log
//! ([`access_log`]), webhooks across `kill -9` ([`webhooks`]), the command line ([`cli`]) and
//! a test store's cleanup after a kill ([`cleanup`]).
//! One binary, one process launcher: `support::process`.

#[path = "../support/mod.rs"]
mod support;

mod access_log;
mod cleanup;
mod cli;
mod crash;
mod full_disk;
mod http2;
mod redact;
mod search_index;
mod shutdown;
mod stream;
mod stream_connection;
mod webhooks;

use std::time::Duration;

use serde_json::Value;

use support::ServiceStore;
use support::process::ServiceCommand;

/// How long one client request may take; a request cut by a kill fails long before.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The service's drain limit after SIGTERM (`SHUTDOWN_TIMEOUT_MS`) unless a test sets another.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the process may take to exit after SIGTERM: the drain limit plus closing storage.
const EXIT_LIMIT: Duration = Duration::from_secs(20);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("http client")
}

/// Waits for `service` to exit after SIGTERM (`EXIT_LIMIT`, a hang detector far below a long
/// drain limit), and checks that it exited 0 without its drain waiting for that limit.
async fn assert_exits_without_waiting_for_the_drain(
    service: &mut support::process::ServiceProcess,
) {
    let status = service.wait_exit(EXIT_LIMIT).await;
    assert_eq!(status.code(), Some(0), "{}", service.output());
    assert!(
        !service.json_logs().iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("did not finish in time"))),
        "the drain waited for its limit; its output:\n{}",
        service.output()
    );
}

/// POSTs `body` as JSON: the status and the body (`Null` if it is not JSON), or the error of a
/// request that got no complete response (it may or may not have been applied).
async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<(u16, Value), reqwest::Error> {
    let response = client.post(url).json(body).send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// The service on `store` with the drain limit `shutdown_timeout`, and `RUST_LOG=rust_log` if
/// given (else the default filter, as in production).
fn sqlite_service(
    store: &ServiceStore,
    rust_log: Option<&str>,
    shutdown_timeout: Duration,
) -> ServiceCommand {
    let command = ServiceCommand::new().store(store).env(
        "SHUTDOWN_TIMEOUT_MS",
        shutdown_timeout.as_millis().to_string(),
    );
    match rust_log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command,
    }
}
