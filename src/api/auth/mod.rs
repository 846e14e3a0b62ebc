//! Optional API keys: when configured, the session routes (and `/metrics`, unless told otherwise)
//! need `Authorization: Bearer <key>`, and the key's scope must allow the method: `read` every
//! GET, `write` also POST, `admin` also DELETE. Keys are compared in constant time and never
//! logged. The key set can be replaced while the service runs (SIGHUP re-reads API_KEYS_FILE).

pub mod keys;

use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::api::error::AppError;
pub use keys::{ApiKeys, Scope};

#[derive(Clone)]
pub struct AuthPolicy {
    keys: Arc<RwLock<Arc<ApiKeys>>>,
    pub protect_metrics: bool,
}

impl AuthPolicy {
    pub fn new(keys: ApiKeys, protect_metrics: bool) -> Self {
        Self {
            keys: Arc::new(RwLock::new(Arc::new(keys))),
            protect_metrics,
        }
    }

    /// The keys in force now.
    pub fn keys(&self) -> Arc<ApiKeys> {
        match self.keys.read() {
            Ok(keys) => Arc::clone(&keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts `keys` in force for every request that starts from now on.
    pub fn replace(&self, keys: ApiKeys) {
        let keys = Arc::new(keys);
        match self.keys.write() {
            Ok(mut current) => *current = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
    }

    /// The scope of the configured key that `presented` matches, if any. Every key is compared,
    /// each in constant time, and the scope is picked without a branch, so the answer's timing
    /// does not depend on which key (or how much of one) matched.
    fn scope_of(&self, presented: &[u8]) -> Option<Scope> {
        let keys = self.keys();
        let found = keys.exposed().fold(0u8, |found, (scope, key)| {
            u8::conditional_select(&found, &scope.as_u8(), key.ct_eq(presented))
        });
        Scope::from_u8(found)
    }
}

/// The scope a request needs: reading is `read`, erasing `admin`, any other change `write`;
/// anything about webhooks (which hold secrets and send data out) `admin`.
fn needed(method: &Method, path: &str) -> Scope {
    if path == "/webhooks" || path.starts_with("/webhooks/") {
        return Scope::Admin;
    }
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => Scope::Read,
        Method::DELETE => Scope::Admin,
        _ => Scope::Write,
    }
}

/// Middleware for the routes that need a key (`api::router` puts it on them with `route_layer`).
pub async fn require_api_key(
    State(policy): State<AuthPolicy>,
    mut req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme's name is case-insensitive (RFC 9110, 11.1).
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    let Some(presented) = presented else {
        return AppError::Unauthorized("this route needs Authorization: Bearer <API key>")
            .into_response();
    };
    let scope = policy.scope_of(presented.as_bytes());
    let client = crate::api::limit::AuthenticatedKey::of(presented.as_bytes());
    match scope {
        None => AppError::Unauthorized("the API key is not valid").into_response(),
        Some(scope) if scope >= needed(req.method(), req.uri().path()) => {
            // The rate limit counts the request against its key (a hash of it, never the key).
            req.extensions_mut().insert(client);
            next.run(req).await
        }
        Some(_) => match needed(req.method(), req.uri().path()) {
            Scope::Admin => AppError::Forbidden("this request needs a key with the admin scope"),
            _ => AppError::Forbidden("this request needs a key with the write scope"),
        }
        .into_response(),
    }
}
