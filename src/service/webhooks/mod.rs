//! Webhooks: endpoints a platform registers, and the change feed pushed to them as signed
//! messages (Standard Webhooks), with retries, a delivery log and replay.
//!
//! Three parts, each safe with several instances on one store:
//! - the endpoints' management (this file), every change a compare-and-set on a revision;
//! - the fan-out ([`fanout`]): reads the change feed from where the store says the last batch
//!   ended and queues one message per change for the endpoints that want it, moving that
//!   position in the same write (so a batch is queued once, and survives `kill -9`);
//! - the delivery ([`deliver`]): claims due deliveries with a lease (one instance attempts
//!   each), sends them, and logs each attempt with what comes next.

mod attempt;
mod deliver;
mod fanout;
mod in_flight;
mod passes;
mod window;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::domain::webhook::{
    EndpointId, MAX_DESCRIPTION_CHARS, MAX_ENDPOINTS, RetrySchedule, Secret, WebhookUrl,
    forbidden_address, message_id, parse_metadata_filter,
};
use crate::domain::{Invalid, Timestamp};
use crate::repo::feed::{ChangeKind, FeedChange};
use crate::repo::webhooks::{Delivery, DeliveryStatus, Endpoint, NewMessage};
use crate::repo::{RepoError, Repositories};

pub use deliver::Delivering;

/// The type of the message `POST /webhooks/{id}/test` sends.
pub const TEST_TYPE: &str = "webhook.test";
/// Deliveries per page of the log.
pub const MAX_DELIVERIES_LIMIT: u32 = 100;
pub const DEFAULT_DELIVERIES_LIMIT: u32 = 20;

/// How webhooks are delivered (the `WEBHOOK_*` settings).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// How long an attempt waits for the receiver's answer.
    pub timeout: Duration,
    pub schedule: RetrySchedule,
    /// How long after a rotation the old secret still signs.
    pub secret_overlap_seconds: u64,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub disable_after_seconds: u64,
    /// Whether receivers on loopback and private networks may be dialled (tests, private setups).
    pub allow_private_networks: bool,
    /// Attempts in flight at once, on this instance.
    pub max_in_flight: usize,
    /// Attempts in flight at once to one endpoint, on this instance.
    pub per_endpoint: usize,
    /// How long delivered and failed messages stay in the log (and can be recovered).
    pub retention_seconds: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(15_000),
            schedule: RetrySchedule::parse("0,5,300,1800,7200,18000,36000,36000")
                .unwrap_or_else(|_| unreachable!("the default schedule parses")),
            secret_overlap_seconds: 24 * 3600,
            disable_after_seconds: 5 * 24 * 3600,
            allow_private_networks: false,
            max_in_flight: 64,
            per_endpoint: 8,
            retention_seconds: 7 * 24 * 3600,
        }
    }
}

/// Makes a message's JSON body from a change (the API's rendering, so data is as in the feed).
pub type Render = fn(&FeedChange) -> String;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no webhook endpoint with id {0:?}")]
    NotFound(String),
    /// Fields that break the rules, each with why.
    #[error("invalid webhook endpoint")]
    Invalid(Vec<(&'static str, String)>),
    #[error("{MAX_ENDPOINTS} webhook endpoints exist, the most a deployment holds")]
    TooMany,
    /// The endpoint kept changing under this request (retry it).
    #[error("the endpoint was changed concurrently; retry")]
    Contended,
    /// `test` or `recover` on a disabled endpoint: nothing would be sent until it is enabled.
    #[error("webhook endpoint {0:?} is disabled; enable it first (PATCH {{\"enabled\": true}})")]
    Disabled(String),
    #[error(transparent)]
    Storage(#[from] RepoError),
}

/// A new endpoint, as asked.
#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    /// Required: `None` is refused as missing.
    pub url: Option<String>,
    pub types: Option<Vec<String>>,
    pub description: Option<String>,
    pub metadata_filter: Option<Value>,
}

/// A change to an endpoint: each field given replaces the stored one.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub types: Option<Vec<String>>,
    /// `Some(None)`: remove the description.
    pub description: Option<Option<String>>,
    pub metadata_filter: Option<Value>,
    pub enabled: Option<bool>,
}

/// The webhooks of one instance: cheap to clone.
#[derive(Clone)]
pub struct Webhooks(Arc<Inner>);

struct Inner {
    repos: Repositories,
    settings: WebhookSettings,
    render: Render,
    /// Told when the fan-out queued messages, so the delivery loop looks at once.
    queued: tokio::sync::Notify,
    /// Moved whenever this instance changes an endpoint, requeues deliveries or queues a test
    /// message: the delivery loop then reads its window again (`window.rs`).
    revision: std::sync::atomic::AtomicU64,
    /// Told with every move of `revision` (an endpoint created or changed here, a requeue, a
    /// test), so a fan-out idle for want of endpoints starts at once.
    endpoints_changed: tokio::sync::Notify,
}

/// The types an endpoint receives when it names none: every `session.*` type.
fn default_types() -> Vec<String> {
    ChangeKind::ALL
        .into_iter()
        .filter(|k| *k != ChangeKind::EventAppended)
        .map(|k| k.as_str().to_owned())
        .collect()
}

fn parse_types(types: &[String]) -> Result<Vec<String>, String> {
    if types.is_empty() {
        return Err("must name at least one type".into());
    }
    let mut parsed: Vec<String> = Vec::new();
    for t in types {
        let kind = ChangeKind::parse(t).ok_or_else(|| {
            let names: Vec<&str> = ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("{t:?} is not a type; types are {}", names.join(", "))
        })?;
        if !parsed.iter().any(|p| p == kind.as_str()) {
            parsed.push(kind.as_str().to_owned());
        }
    }
    Ok(parsed)
}

fn check_description(description: &str) -> Result<(), String> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!(
            "must be at most {MAX_DESCRIPTION_CHARS} characters"
        ));
    }
    Ok(())
}

impl Webhooks {
    pub fn new(repos: Repositories, settings: WebhookSettings, render: Render) -> Self {
        Self(Arc::new(Inner {
            repos,
            settings,
            render,
            queued: tokio::sync::Notify::new(),
            revision: std::sync::atomic::AtomicU64::new(0),
            endpoints_changed: tokio::sync::Notify::new(),
        }))
    }

    /// See `Inner::revision`.
    fn revision(&self) -> u64 {
        self.0.revision.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Something the delivery loop's window shows changed here; wakes the loops.
    fn changed(&self) {
        self.0
            .revision
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.0.queued.notify_one();
        self.0.endpoints_changed.notify_one();
    }

    pub fn settings(&self) -> &WebhookSettings {
        &self.0.settings
    }

    /// Whether `url`'s host may be dialled: every address it resolves to is public (or private
    /// networks are allowed). Checked at create and change, and again at every attempt.
    pub async fn check_host(&self, url: &WebhookUrl) -> Result<(), String> {
        if self.0.settings.allow_private_networks {
            return Ok(());
        }
        let addresses: Vec<IpAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, url.port()))
                .await
                .map_err(|_| format!("host {name:?} does not resolve"))?
                .map(|a| a.ip())
                .collect(),
            None => return Err("must name a host".into()),
        };
        match addresses.iter().find(|ip| forbidden_address(**ip)) {
            Some(ip) => Err(format!(
                "resolves to {ip}, a loopback, private, link-local or unspecified address; \
                 such receivers are refused unless WEBHOOK_ALLOW_PRIVATE_NETWORKS=true"
            )),
            None => Ok(()),
        }
    }

    async fn check_url(&self, raw: &str) -> Result<String, String> {
        let url = WebhookUrl::parse(raw).map_err(|Invalid(m)| m)?;
        self.check_host(&url).await?;
        Ok(url.as_str().to_owned())
    }

    /// Registers an endpoint with a new secret.
    pub async fn create(&self, new: NewEndpoint) -> Result<Endpoint, WebhookError> {
        let mut errors = Vec::new();
        let url = match &new.url {
            Some(url) => self.check_url(url).await,
            None => Err("is required".to_owned()),
        }
        .map_err(|m| errors.push(("url", m)));
        let types = match &new.types {
            Some(types) => parse_types(types).map_err(|m| errors.push(("types", m))),
            None => Ok(default_types()),
        };
        if let Some(Err(m)) = new.description.as_deref().map(check_description) {
            errors.push(("description", m));
        }
        let filter = match &new.metadata_filter {
            Some(f) => {
                parse_metadata_filter(f).map_err(|Invalid(m)| errors.push(("filter.metadata", m)))
            }
            None => Ok(Map::new()),
        };
        let (Ok(url), Ok(types), Ok(metadata_filter), true) =
            (url, types, filter, errors.is_empty())
        else {
            return Err(WebhookError::Invalid(errors));
        };
        let secret = Secret::generate().map_err(|e| RepoError::Backend(Box::new(e)))?;
        let endpoint = Endpoint {
            id: EndpointId::generate(),
            url,
            types,
            description: new.description,
            metadata_filter,
            enabled: true,
            disabled_reason: None,
            paused: None,
            secret,
            previous_secret: None,
            failing_since: None,
            created_at: Timestamp::now().millis(),
            revision: 0,
        };
        if !self
            .0
            .repos
            .webhooks
            .create_endpoint(&endpoint, MAX_ENDPOINTS)
            .await?
        {
            return Err(WebhookError::TooMany);
        }
        self.changed();
        tracing::info!(endpoint = endpoint.id.as_str(), url = %endpoint.url, "webhook endpoint created");
        Ok(endpoint)
    }

    pub async fn get(&self, id: &str) -> Result<Endpoint, WebhookError> {
        let parsed = EndpointId::parse(id).map_err(|_| WebhookError::NotFound(id.to_owned()))?;
        self.0
            .repos
            .webhooks
            .endpoint(&parsed)
            .await
            .map_err(|e| match e {
                RepoError::NotFound => WebhookError::NotFound(id.to_owned()),
                other => WebhookError::Storage(other),
            })
    }

    pub async fn list(&self) -> Result<Vec<Endpoint>, WebhookError> {
        Ok(self.0.repos.webhooks.endpoints().await?)
    }

    /// Reads, changes and writes back the endpoint, again if another write came in between.
    async fn change(
        &self,
        id: &str,
        mut edit: impl FnMut(&mut Endpoint),
    ) -> Result<Endpoint, WebhookError> {
        for _ in 0..8 {
            let mut endpoint = self.get(id).await?;
            let revision = endpoint.revision;
            let before = endpoint.clone();
            edit(&mut endpoint);
            if endpoint == before {
                // Nothing to write (a health update another attempt made already, say).
                return Ok(endpoint);
            }
            if self
                .0
                .repos
                .webhooks
                .replace_endpoint(&endpoint, revision)
                .await?
            {
                endpoint.revision = revision + 1;
                self.changed();
                return Ok(endpoint);
            }
        }
        Err(WebhookError::Contended)
    }

    /// Applies a patch; every field is checked before anything changes.
    pub async fn update(&self, id: &str, patch: EndpointPatch) -> Result<Endpoint, WebhookError> {
        self.get(id).await?;
        let mut errors = Vec::new();
        let mut url = None;
        if let Some(raw) = &patch.url {
            url = self
                .check_url(raw)
                .await
                .map_err(|m| errors.push(("url", m)))
                .ok();
        }
        let types = match &patch.types {
            Some(t) => parse_types(t).map_err(|m| errors.push(("types", m))).ok(),
            None => None,
        };
        if let Some(Some(Err(m))) = patch
            .description
            .as_ref()
            .map(|d| d.as_deref().map(check_description))
        {
            errors.push(("description", m));
        }
        let filter = match &patch.metadata_filter {
            Some(f) => parse_metadata_filter(f)
                .map_err(|Invalid(m)| errors.push(("filter.metadata", m)))
                .ok(),
            None => None,
        };
        if !errors.is_empty() {
            return Err(WebhookError::Invalid(errors));
        }
        let now = Timestamp::now();
        self.change(id, |e| {
            if let Some(url) = &url {
                e.url.clone_from(url);
            }
            if let Some(types) = &types {
                e.types.clone_from(types);
            }
            if let Some(description) = &patch.description {
                e.description.clone_from(description);
            }
            if let Some(filter) = &filter {
                e.metadata_filter.clone_from(filter);
            }
            if let Some(enabled) = patch.enabled {
                e.set_enabled(enabled, None, now);
            }
        })
        .await
    }

    pub async fn delete(&self, id: &str) -> Result<(), WebhookError> {
        let parsed = EndpointId::parse(id).map_err(|_| WebhookError::NotFound(id.to_owned()))?;
        if self.0.repos.webhooks.delete_endpoint(&parsed).await? {
            self.changed();
            Ok(())
        } else {
            Err(WebhookError::NotFound(id.to_owned()))
        }
    }

    /// A new secret; the old one still signs for `secret_overlap_seconds`.
    pub async fn rotate(&self, id: &str) -> Result<Endpoint, WebhookError> {
        let secret = Secret::generate().map_err(|e| RepoError::Backend(Box::new(e)))?;
        let until = Timestamp::now()
            .plus_seconds(u32::try_from(self.0.settings.secret_overlap_seconds).unwrap_or(u32::MAX))
            .millis();
        self.change(id, |e| {
            let old = std::mem::replace(&mut e.secret, secret.clone());
            e.previous_secret = Some((old, until));
        })
        .await
    }

    /// The endpoint's log, newest first.
    pub async fn deliveries(
        &self,
        id: &str,
        status: Option<DeliveryStatus>,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Delivery>, WebhookError> {
        let endpoint = self.get(id).await?;
        Ok(self
            .0
            .repos
            .webhooks
            .deliveries(&endpoint.id, status, before, limit)
            .await?)
    }

    /// The endpoint, if it is enabled: what is queued for a disabled one would wait unseen.
    async fn enabled(&self, id: &str) -> Result<Endpoint, WebhookError> {
        let endpoint = self.get(id).await?;
        if !endpoint.enabled {
            return Err(WebhookError::Disabled(id.to_owned()));
        }
        Ok(endpoint)
    }

    /// Queues again every message for the endpoint since `since`; how many.
    pub async fn recover(&self, id: &str, since: Timestamp) -> Result<u64, WebhookError> {
        let endpoint = self.enabled(id).await?;
        let requeued = self
            .0
            .repos
            .webhooks
            .requeue(&endpoint.id, since, Timestamp::now())
            .await?;
        self.changed();
        Ok(requeued)
    }

    /// Queues a `webhook.test` message for the endpoint; its message id.
    pub async fn send_test(&self, id: &str) -> Result<String, WebhookError> {
        let endpoint = self.enabled(id).await?;
        let now = Timestamp::now();
        let message = message_id(&format!("test.{}", uuid::Uuid::new_v4()));
        let body = serde_json::json!({
            "type": TEST_TYPE,
            "timestamp": String::from_utf8_lossy(&now.rfc3339()),
            "data": { "endpointId": endpoint.id.as_str() },
        })
        .to_string();
        for _ in 0..16 {
            let state = self.0.repos.webhooks.fanout_state().await?;
            let queued = NewMessage {
                id: message.clone(),
                order: state.next_order,
                kind: TEST_TYPE.to_owned(),
                session_id: None,
                body: body.clone(),
                created_at: now,
                due_at: now,
                endpoints: vec![endpoint.id.clone()],
            };
            let position = state.position.clone();
            if self
                .0
                .repos
                .webhooks
                .enqueue(&state, position, vec![queued])
                .await?
            {
                self.changed();
                return Ok(message);
            }
        }
        Err(WebhookError::Contended)
    }

    /// Starts the fan-out and the delivery loops of this instance (stopped when dropped).
    pub fn start(&self) -> Delivering {
        Delivering::start(self.clone())
    }
}
