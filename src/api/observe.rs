//! Per-request observation: a request id (taken from `x-request-id` or generated) that is echoed
//! in the response, carried by the request's tracing span and put into problem JSON; a bounded
//! request time; one access log line; the HTTP metrics; how each write ended, for `/ready`
//! ([`StorageHealth`]); and the security headers of every response. One layer does all of it: each layer costs a boxed future and a clone of the
//! service below it on every request.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use tracing::Instrument;

use super::error::AppError;
use super::health::StorageHealth;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// A client's id is kept if it is 1–128 visible ASCII characters; otherwise a new one is made.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id)
}

/// A random v4 UUID, from a thread-local generator (`uuid`'s `fast-rng`): no system call per id.
fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// What the `observe` layer needs: the request time limit, and where write outcomes go.
#[derive(Clone)]
pub struct Observe {
    pub timeout: Duration,
    pub storage_health: StorageHealth,
}

pub async fn observe(State(observe): State<Observe>, req: Request, next: Next) -> Response {
    let timeout = observe.timeout;
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!("request", %method, route, request_id = %id);
    let header = HeaderValue::from_str(&id).ok();
    let served = async {
        match tokio::time::timeout(timeout, next.run(req)).await {
            Ok(response) => response,
            Err(_) => AppError::Timeout(timeout).into_response(),
        }
    };
    let mut response = REQUEST_ID.scope(id, served.instrument(span.clone())).await;

    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request served"
        );
    });
    record(method_label(&method), route, status, elapsed);
    observe.storage_health.record(&method, &response);
    let headers = response.headers_mut();
    if let Some(value) = header {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    security_headers(headers);
    response
}

/// On every response: no MIME sniffing, and no caching of session data by browsers or proxies.
fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The method as a metric label: the standard ones by name, any other as `other`, so that a
/// client inventing methods cannot make the metrics grow without bound.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    STANDARD
        .iter()
        .find(|m| *m == method)
        .map_or("other", Method::as_str)
}

/// The HTTP metrics of one (method, status) on one route.
struct RouteMetrics {
    method: &'static str,
    status: u16,
    requests: Counter,
    duration: Histogram,
}

impl RouteMetrics {
    fn new(method: &'static str, route: &str, status: u16) -> Self {
        let labels = [
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        Self {
            method,
            status,
            requests: metrics::counter!("http_requests_total", &labels),
            duration: metrics::histogram!("http_request_duration_seconds", &labels),
        }
    }

    fn record(&self, elapsed: Duration) {
        self.requests.increment(1);
        self.duration.record(elapsed.as_secs_f64());
    }
}

thread_local! {
    /// Handles by route, then by (method, status), looked up once per thread: building the
    /// labels and finding them in the recorder's registry cost more than the rest of a
    /// request's metrics together. Bounded: routes are the router's own (and `unmatched`),
    /// methods are the standard ones or `other`, statuses are three digits.
    static ROUTE_METRICS: RefCell<HashMap<Box<str>, Vec<RouteMetrics>>> =
        RefCell::new(HashMap::new());
}

fn record(method: &'static str, route: &str, status: u16, elapsed: Duration) {
    if !crate::telemetry::recorder_installed() {
        // No-op handles must not be kept: the recorder may be installed later.
        RouteMetrics::new(method, route, status).record(elapsed);
        return;
    }
    ROUTE_METRICS.with_borrow_mut(|routes| {
        let by_route = match routes.get_mut(route) {
            Some(by_route) => by_route,
            None => routes.entry(route.into()).or_default(),
        };
        match by_route
            .iter()
            .find(|m| m.method == method && m.status == status)
        {
            Some(metrics) => metrics.record(elapsed),
            None => {
                let metrics = RouteMetrics::new(method, route, status);
                metrics.record(elapsed);
                by_route.push(metrics);
            }
        }
    });
}
