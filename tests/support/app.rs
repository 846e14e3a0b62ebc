//! The application in this process: the same `Application` as `main`, on a free port, over a
//! test's own store, and a client for it.

use serde_json::Value;
use session_service::app::Application;
use session_service::config::Config;

use super::StoreCtx;
use super::walk::CursorWalk;
pub use super::walk::Walk;

/// The running application and a client for it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: StoreCtx,
}

/// A response read whole: status, headers and the body as JSON (`Value::Null` if it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// A reply from its parts; `body` is the text as JSON, or null if it is not JSON.
    pub fn new(status: u16, headers: reqwest::header::HeaderMap, text: String) -> Self {
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts that this is problem JSON with `status` and `code`, and returns the body.
    pub fn assert_problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "body: {}",
            self.text
        );
        assert_eq!(self.body["code"], code, "body: {}", self.text);
        assert_eq!(self.body["status"], status);
        for member in ["type", "title", "detail"] {
            assert!(
                self.body[member].is_string(),
                "problem JSON lacks {member}: {}",
                self.text
            );
        }
        &self.body
    }

    /// The `field` names of a validation problem's `errors`.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Asserts that every reply is a 200 or a 201, and exactly one of them a 201: one request did
/// the work, the others got its result.
pub fn assert_one_201_and_the_rest_200(replies: &[Reply]) {
    for r in replies {
        assert!(
            r.status == 200 || r.status == 201,
            "{} {}",
            r.status,
            r.text
        );
    }
    assert_eq!(replies.iter().filter(|r| r.status == 201).count(), 1);
}

/// Starts the same `Application` as `main`, on a free port, over the test's own store.
pub async fn spawn_app(store: StoreCtx) -> TestApp {
    spawn_app_with(store, &[]).await
}

/// Two applications over the test's one store (MongoDB: one database; SQLite: one file, opened
/// twice as a second process would), each with `vars`.
pub async fn two_instances(s: StoreCtx, vars: &[(&str, &str)]) -> (TestApp, TestApp) {
    let second = StoreCtx {
        repos: s.reopen().await,
        ..s.clone()
    };
    (
        spawn_app_with(s, vars).await,
        spawn_app_with(second, vars).await,
    )
}

/// Like [`spawn_app`], with extra environment settings (e.g. `MAX_BODY_BYTES`).
pub async fn spawn_app_with(store: StoreCtx, vars: &[(&str, &str)]) -> TestApp {
    // Logs stay off unless asked for: TEST_LOG=1 cargo test
    if std::env::var_os("TEST_LOG").is_some() {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "session_service=debug".into());
        session_service::telemetry::init(session_service::config::LogFormat::Pretty, &filter);
    }
    let mut env: Vec<(String, String)> = vec![("PORT".into(), "0".into())];
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_lookup(|name| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("test config");
    let app = Application::with_repositories(&config, store.repos.clone())
        .await
        .expect("build application");
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        base,
        // An API test sees every status as sent: no redirect is followed behind its back.
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client"),
        store,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("read body");
        Reply::new(status, headers, text)
    }

    pub async fn get(&self, path: &str) -> Reply {
        Self::read(self.client.get(self.url(path)).send().await.expect("GET")).await
    }

    /// GETs `path` with the header `name: value`, and hands back the response unread.
    pub async fn get_with_header(&self, path: &str, name: &str, value: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header(name, value)
            .send()
            .await
            .expect("GET")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        Self::read(
            self.client
                .post(self.url(path))
                .json(body)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    /// POSTs `body` as is, with `content_type` if given.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        Self::read(request.send().await.expect("POST")).await
    }

    /// Sends `body` as JSON with `method` (e.g. PATCH).
    pub async fn request_json(&self, method: reqwest::Method, path: &str, body: &Value) -> Reply {
        Self::read(
            self.client
                .request(method, self.url(path))
                .json(body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// The HTTP client the test app uses.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub async fn request(&self, method: reqwest::Method, path: &str) -> Reply {
        Self::read(
            self.client
                .request(method, self.url(path))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// Creates a session and asserts it was created.
    pub async fn create_session(&self, id: &str) -> Value {
        let r = self
            .post_json(
                "/sessions",
                &serde_json::json!({"sessionId": id, "language": "en-US"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body
    }

    /// Adds a `user_speech` event with `{"text": event_id}` and asserts it was stored.
    pub async fn add_event(&self, session_id: &str, event_id: &str) -> Value {
        let r = self
            .post_json(
                &format!("/sessions/{session_id}/events"),
                &serde_json::json!({"eventId": event_id, "type": "user_speech", "payload": {"text": event_id}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body
    }
}

impl TestApp {
    /// Another handle on the same running application, to move into a spawned task.
    pub fn handle(&self) -> TestApp {
        TestApp {
            base: self.base.clone(),
            client: self.client.clone(),
            store: self.store.clone(),
        }
    }

    /// POSTs `body` to the session's events, whatever the answer.
    pub async fn post_event(&self, session_id: &str, body: &Value) -> Reply {
        self.post_json(&format!("/sessions/{session_id}/events"), body)
            .await
    }

    /// POSTs to the session's `complete`: with no body at all for `None`, else `body` as JSON.
    pub async fn complete(&self, session_id: &str, body: Option<&Value>) -> Reply {
        let path = format!("/sessions/{session_id}/complete");
        match body {
            Some(body) => self.post_json(&path, body).await,
            None => {
                Self::read(
                    self.client
                        .post(self.url(&path))
                        .send()
                        .await
                        .expect("POST"),
                )
                .await
            }
        }
    }

    /// GETs the session (with `query`, e.g. `"?limit=5"`, or `""`) and asserts 200.
    pub async fn read_session(&self, session_id: &str, query: &str) -> Value {
        let r = self.get(&format!("/sessions/{session_id}{query}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }

    /// Asserts that there is no session `session_id`: reading it is `404 session_not_found`.
    pub async fn assert_no_session(&self, session_id: &str) {
        self.get(&format!("/sessions/{session_id}"))
            .await
            .assert_problem(404, "session_not_found");
    }

    /// The session's `eventCount` as the read endpoint reports it.
    pub async fn event_count(&self, session_id: &str) -> u64 {
        self.read_session(session_id, "?limit=1").await["eventCount"]
            .as_u64()
            .expect("eventCount is a number")
    }

    /// Adds `user_speech` events `{prefix}1` … `{prefix}{n}` one after another.
    pub async fn add_events(&self, session_id: &str, prefix: &str, n: usize) {
        for i in 1..=n {
            self.add_event(session_id, &format!("{prefix}{i}")).await;
        }
    }

    /// Follows `nextCursor` from the first page in `order` ("asc" or "desc") with page size
    /// `limit`, checking every page's pagination on the way.
    pub async fn walk(&self, session_id: &str, order: &str, limit: u32) -> Walk {
        let mut walker = CursorWalk::new(session_id, order, limit);
        while let Some(query) = walker.next_query() {
            walker.page(self.read_session(session_id, &query).await);
        }
        walker.finish()
    }
}
