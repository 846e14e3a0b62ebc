//! A real webhook receiver on loopback for the webhook tests: it records every request (headers
//! and body) and answers each with the next status of a script (then 204), optionally with
//! `Retry-After`. Signatures are checked with the `standardwebhooks` crate, an implementation
//! independent of the service's own signing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::support::app::TestApp;
use crate::support::wait;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    pub fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }

    /// Verifies the request with `secret` through the `standardwebhooks` crate.
    pub fn verified_by(&self, secret: &str) -> bool {
        let webhook = standardwebhooks::Webhook::new(secret).expect("a whsec_ secret");
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("webhook-id", self.id.parse().unwrap());
        headers.insert("webhook-timestamp", self.timestamp.parse().unwrap());
        headers.insert("webhook-signature", self.signature.parse().unwrap());
        webhook.verify(self.body.as_bytes(), &headers).is_ok()
    }
}

#[derive(Default)]
struct Script {
    /// Statuses to answer, in order; then 204.
    statuses: Vec<(u16, Option<&'static str>)>,
    received: Vec<Received>,
}

/// The receiver; stops when dropped.
pub struct Receiver {
    pub url: String,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut script = script.lock().unwrap();
    script.received.push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    });
    let (status, retry_after) = if script.statuses.is_empty() {
        (204, None)
    } else {
        script.statuses.remove(0)
    };
    let mut reply = HeaderMap::new();
    if let Some(seconds) = retry_after {
        reply.insert("retry-after", seconds.parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), reply)
}

impl Receiver {
    /// A receiver on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::on(listener)
    }

    /// A receiver on `listener` (e.g. a port that was closed until now).
    pub fn on(listener: tokio::net::TcpListener) -> Self {
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(Script::default()));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(script.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, script, task }
    }

    /// Answers the next requests with these statuses (and `Retry-After`), then 204.
    pub fn answer(&self, statuses: &[(u16, Option<&'static str>)]) {
        self.script.lock().unwrap().statuses = statuses.to_vec();
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }

    /// Waits (up to [`PATIENCE`]) until `done` holds for what was received; what was received.
    pub async fn until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let read = || std::future::ready(self.received());
        wait::until(
            what,
            PATIENCE,
            Duration::from_millis(50),
            read,
            |r| done(r),
            |r| {
                let kinds: Vec<_> = r.iter().map(Received::kind).collect();
                format!("received {} requests: {kinds:?}", r.len())
            },
        )
        .await
    }
}

/// Registers an endpoint for `url` with `types`; its id and secret.
pub async fn register(app: &TestApp, url: &str, types: &[&str]) -> (String, String) {
    let r = app
        .post_json("/webhooks", &json!({"url": url, "types": types}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["secret"].as_str().unwrap().to_owned(),
    )
}

/// The endpoint's delivery log, newest first.
pub async fn log(app: &TestApp, id: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/webhooks/{id}/deliveries?limit=100"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["deliveries"].as_array().unwrap().clone()
}

/// How long a test waits for something to arrive: generous, since the MongoDB test server is
/// slow when the whole suite runs at once (nothing here measures time).
const PATIENCE: Duration = Duration::from_secs(120);

/// Waits (up to [`PATIENCE`]) until the endpoint's log satisfies `done`, reading it four times a
/// second.
pub async fn log_until(
    app: &TestApp,
    id: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let read = || log(app, id);
    let show = |found: &Vec<Value>| format!("the log: {found:#?}");
    wait::until(
        what,
        PATIENCE,
        Duration::from_millis(250),
        read,
        |f| done(f),
        show,
    )
    .await
}

/// The settings every webhook test runs with: receivers on loopback, short retries.
pub const FAST: &[(&str, &str)] = &[
    ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
    ("WEBHOOK_RETRY_SCHEDULE", "0,1,1,1"),
    ("WEBHOOK_TIMEOUT_MS", "2000"),
];
