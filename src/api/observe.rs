//! Per-request observation: a request id (taken from `x-request-id` or generated) that is echoed
//! in the response, carried by the request's tracing span and put into problem JSON; a bounded
//! request time; a handler's panic answered as a 500 problem; one access log line; the HTTP
//! metrics; how each write ended, for `/ready` ([`StorageHealth`]); and the security headers of
//! every response.
//!
//! One hand-written layer does all of it, with a future of its own: a layer made with
//! `middleware::from_fn` (or one layer per concern) costs a boxed future, a clone of the service
//! below it and a move of the request on every request, which together cost more than the rest
//! of this layer (BENCHMARKS.md, "Profile").

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tokio::time::Sleep;
use tower::{Layer, Service};
use tracing::Span;
use tracing::instrument::Instrumented;

use super::error::AppError;
use super::health::StorageHealth;
use super::request_id::{self, REQUEST_ID_HEADER};
use crate::telemetry::Metrics;

/// The `observe` layer's settings: the request time limit, where write outcomes and metrics go. Put it
/// outermost (`Router::layer`), so that it sees every request, 401s and panics included.
#[derive(Clone)]
pub struct Observe {
    pub timeout: Duration,
    pub storage_health: StorageHealth,
    /// Where the HTTP metrics go.
    pub metrics: Metrics,
}

impl<S> Layer<S> for Observe {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Observed<S> {
        Observed {
            inner,
            observe: self.clone(),
        }
    }
}

/// A service below the `observe` layer.
#[derive(Clone)]
pub struct Observed<S> {
    inner: S,
    observe: Observe,
}

impl<S> Service<Request> for Observed<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observing<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let started = Instant::now();
        let id = request_id::of(&req);
        let method = req.method().clone();
        let route = req.extensions().get::<MatchedPath>().cloned();
        let route_name = route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let span = tracing::info_span!(
            "request",
            %method,
            route = route_name,
            request_id = id.to_str().unwrap_or_default()
        );
        // The service below may do work (and panic) before its future exists; a panic there is
        // answered when the future is first polled, within the request's scope.
        let inner = {
            let _entered = span.enter();
            std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))).ok()
        };
        let timeout = self.observe.timeout;
        // From the same clock reading as the request's duration; a limit too far away to add to
        // it is left to tokio, which caps it.
        let timer = match started.checked_add(timeout) {
            Some(deadline) => tokio::time::sleep_until(deadline.into()),
            None => tokio::time::sleep(timeout),
        };
        let served = Served {
            inner,
            timer,
            timeout,
        };
        let done = Done {
            started,
            method,
            route,
            span: span.clone(),
            header: id.clone(),
            storage_health: self.observe.storage_health.clone(),
            metrics: self.observe.metrics,
        };
        Observing {
            served: request_id::scope(id, tracing::Instrument::instrument(served, span)),
            done: Some(done),
        }
    }
}

pin_project! {
    /// The request's answer within its time limit, a panic turned into a 500 problem.
    struct Served<F> {
        #[pin]
        inner: Option<F>,
        #[pin]
        timer: Sleep,
        timeout: Duration,
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Served<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(panicked());
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(Ok(response))) => return Poll::Ready(response),
            Ok(Poll::Ready(Err(never))) => match never {},
            Ok(Poll::Pending) => {}
            Err(_) => {
                // A panicked future must not be polled again.
                this.inner.set(None);
                return Poll::Ready(panicked());
            }
        }
        ready!(this.timer.poll(cx));
        // The handler is dropped, as a timed-out `tokio::time::timeout` would drop it.
        this.inner.set(None);
        Poll::Ready(AppError::Timeout(*this.timeout).into_response())
    }
}

fn panicked() -> Response {
    AppError::Internal("a request handler panicked".into()).into_response()
}

/// What the answer needs once it is there.
struct Done {
    started: Instant,
    method: Method,
    route: Option<MatchedPath>,
    span: Span,
    header: HeaderValue,
    storage_health: StorageHealth,
    metrics: Metrics,
}

impl Done {
    fn finish(self, mut response: Response) -> Response {
        let status = response.status().as_u16();
        let elapsed = self.started.elapsed();
        self.span.in_scope(|| {
            tracing::info!(
                status,
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                "request served"
            );
        });
        let route = self.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        record(
            self.metrics,
            method_label(&self.method),
            route,
            status,
            elapsed,
        );
        self.storage_health.record(&self.method, &response);
        let headers = response.headers_mut();
        headers.insert(REQUEST_ID_HEADER, self.header);
        security_headers(headers);
        response
    }
}

pin_project! {
    /// The future of a request under the `observe` layer.
    pub struct Observing<F> {
        #[pin]
        served: TaskLocalFuture<HeaderValue, Instrumented<Served<F>>>,
        done: Option<Done>,
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Observing<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.served.poll(cx));
        let response = match this.done.take() {
            Some(done) => done.finish(response),
            None => response,
        };
        Poll::Ready(Ok(response))
    }
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
    fn new(recorder: Metrics, method: &'static str, route: &str, status: u16) -> Self {
        let labels = [
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        metrics::with_local_recorder(recorder.recorder(), || Self {
            method,
            status,
            requests: metrics::counter!("http_requests_total", &labels),
            duration: metrics::histogram!("http_request_duration_seconds", &labels),
        })
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
    /// methods are the standard ones or `other`, statuses are three digits. One recorder per
    /// process ([`Metrics`]), so one cache per thread serves every `observe` layer.
    static ROUTE_METRICS: RefCell<Vec<(Box<str>, Vec<RouteMetrics>)>> =
        const { RefCell::new(Vec::new()) };
}

fn record(recorder: Metrics, method: &'static str, route: &str, status: u16, elapsed: Duration) {
    ROUTE_METRICS.with_borrow_mut(|routes| {
        // A dozen routes: a scan is cheaper than hashing the route.
        let at = match routes.iter().position(|(r, _)| **r == *route) {
            Some(at) => at,
            None => {
                routes.push((route.into(), Vec::new()));
                routes.len() - 1
            }
        };
        let by_route = &mut routes[at].1;
        match by_route
            .iter()
            .find(|m| m.method == method && m.status == status)
        {
            Some(metrics) => metrics.record(elapsed),
            None => {
                let metrics = RouteMetrics::new(recorder, method, route, status);
                metrics.record(elapsed);
                by_route.push(metrics);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::response::Response;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::Observe;
    use crate::api::REQUEST_ID_HEADER;

    async fn panics() -> &'static str {
        panic!("a handler that panics")
    }

    fn app() -> Router {
        app_with(Duration::from_millis(50))
    }

    fn app_with(timeout: Duration) -> Router {
        let panics_in_call = tower::service_fn(
            |_req: Request<Body>| -> std::future::Ready<Result<Response, Infallible>> {
                panic!("a service that panics before its future exists")
            },
        );
        Router::new()
            .route("/ok", get(|| async { "fine" }))
            .route("/panics", get(panics))
            .route_service("/panics-in-call", panics_in_call)
            .route("/never", get(std::future::pending::<&'static str>))
            .layer(Observe {
                timeout,
                storage_health: Default::default(),
                metrics: crate::telemetry::metrics(),
            })
    }

    /// The status, the request id header, and the body as JSON (if it is JSON).
    async fn call(path: &str, id: Option<&str>) -> (StatusCode, String, serde_json::Value) {
        let mut req = Request::get(path);
        if let Some(id) = id {
            req = req.header(REQUEST_ID_HEADER, id);
        }
        let response = app()
            .oneshot(req.body(Body::empty()).expect("a request"))
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["cache-control"], "no-store");
        let id = headers[REQUEST_ID_HEADER]
            .to_str()
            .expect("a visible id")
            .to_owned();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, id, body)
    }

    #[tokio::test]
    async fn an_answer_carries_the_clients_request_id_or_a_new_one() {
        let (status, id, _) = call("/ok", Some("req-7")).await;
        assert_eq!((status, id.as_str()), (StatusCode::OK, "req-7"));
        let (_, id, _) = call("/ok", Some("has a space")).await;
        assert_eq!(id.len(), 36, "a new UUID instead of {id:?}");
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_with_a_500_problem_naming_the_request() {
        for path in ["/panics", "/panics-in-call"] {
            let (status, id, body) = call(path, Some("req-panic")).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
            assert_eq!(body["code"], "internal_error", "{path}: {body}");
            assert_eq!(body["requestId"], "req-panic", "{path}: {body}");
            assert_eq!(id, "req-panic");
        }
    }

    #[tokio::test]
    async fn a_request_over_the_time_limit_is_answered_with_a_503_problem() {
        let (status, id, body) = call("/never", None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["code"], "request_timeout", "{body}");
        assert_eq!(body["requestId"], id.as_str(), "{body}");
    }

    /// `REQUEST_TIMEOUT_MS` takes any number of milliseconds; one that cannot be added to a
    /// clock reading must not fail the request.
    #[tokio::test]
    async fn a_time_limit_beyond_the_clocks_range_is_no_limit_in_practice() {
        let response = app_with(Duration::from_millis(u64::MAX))
            .oneshot(Request::get("/ok").body(Body::empty()).expect("a request"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }
}
