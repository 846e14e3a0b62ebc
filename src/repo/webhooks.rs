//! Webhooks' storage seam: endpoints, the messages made from the change feed, and each
//! endpoint's delivery of each message with its attempts. Both stores keep the same records; the
//! rules (who is due, what an answer means) are the service's (`service::webhooks`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::RepoError;
use crate::domain::Timestamp;
use crate::domain::webhook::{EndpointId, Secret};

/// The most attempts a delivery's log keeps (the oldest go first).
pub const MAX_LOGGED_ATTEMPTS: usize = 50;

/// An endpoint as stored. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub id: EndpointId,
    pub url: String,
    /// The change types it receives (`session.created`, …, `event.appended`).
    pub types: Vec<String>,
    pub description: Option<String>,
    /// `filter.metadata`: only sessions whose metadata has every pair.
    pub metadata_filter: Map<String, Value>,
    pub enabled: bool,
    /// Why the service disabled it (410, or failing too long); none when enabled or disabled by a client.
    pub disabled_reason: Option<String>,
    pub secret: Secret,
    /// The secret before the last rotation, and until when messages are also signed with it.
    pub previous_secret: Option<(Secret, i64)>,
    /// Since when every attempt has failed (none: the last one succeeded, or none was made).
    pub failing_since: Option<i64>,
    pub created_at: i64,
    /// Counts every change: a replace is conditional on it.
    pub revision: u64,
}

/// Where the fan-out of the change feed has got to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FanoutState {
    /// The feed position after the last change made into messages (none before the first run).
    pub position: Option<String>,
    /// The order the next message gets.
    pub next_order: u64,
}

/// A message to queue for some endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// `webhook-id`: the same for one change on every endpoint.
    pub id: String,
    /// Its place among all messages: a session's messages are ordered as its changes.
    pub order: u64,
    pub kind: String,
    pub session_id: Option<String>,
    /// The JSON body, as sent.
    pub body: String,
    pub created_at: Timestamp,
    /// When its first attempt is due.
    pub due_at: Timestamp,
    pub endpoints: Vec<EndpointId>,
}

/// One endpoint's delivery of one message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeliveryKey {
    pub endpoint: EndpointId,
    pub order: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// One attempt, as the log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// Unix milliseconds.
    pub at: i64,
    pub response_status: Option<u16>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

/// A pending delivery whose time has come, as [`WebhookRepository::due`] lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub key: DeliveryKey,
    pub session_id: Option<String>,
    /// Whether an attempt was ever made (a first attempt waits for the session's earlier ones).
    pub attempted: bool,
    /// Whether an instance holds it now (an attempt is in flight).
    pub leased: bool,
}

/// A delivery this instance claimed, with what it sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub key: DeliveryKey,
    pub message_id: String,
    pub body: String,
    /// Attempts made since it was (re)queued: where it is on the retry schedule.
    pub step: u32,
}

/// What an attempt leaves the delivery as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    Succeeded,
    Failed,
    RetryAt(Timestamp),
}

/// A delivery, as the log shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub order: u64,
    pub message_id: String,
    pub kind: String,
    pub session_id: Option<String>,
    pub status: DeliveryStatus,
    pub attempts: Vec<Attempt>,
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// Messages waiting to be delivered, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    pub pending: u64,
    pub oldest: Option<Timestamp>,
}

#[async_trait]
pub trait WebhookRepository: Send + Sync {
    /// Stores a new endpoint.
    async fn create_endpoint(&self, endpoint: &Endpoint) -> Result<(), RepoError>;

    /// One endpoint, or `NotFound`.
    async fn endpoint(&self, id: &EndpointId) -> Result<Endpoint, RepoError>;

    /// Every endpoint, oldest first.
    async fn endpoints(&self) -> Result<Vec<Endpoint>, RepoError>;

    /// Stores `endpoint` (with its revision one more than `revision`) if the stored one is
    /// still at `revision`; whether it was. `NotFound` if there is none.
    async fn replace_endpoint(&self, endpoint: &Endpoint, revision: u64)
    -> Result<bool, RepoError>;

    /// Removes the endpoint and its deliveries; whether there was one.
    async fn delete_endpoint(&self, id: &EndpointId) -> Result<bool, RepoError>;

    /// Where the fan-out has got to.
    async fn fanout_state(&self) -> Result<FanoutState, RepoError>;

    /// Queues `messages` for their endpoints and moves the fan-out to `position` with
    /// `next_order` past the last message's order, if the stored state is still `expected`;
    /// whether it was. Idempotent: a message already queued for an endpoint (same order) is left
    /// as it is, so two instances that make the same messages from the same state queue each once.
    async fn enqueue(
        &self,
        expected: &FanoutState,
        position: Option<String>,
        messages: Vec<NewMessage>,
    ) -> Result<bool, RepoError>;

    /// Up to `limit` pending deliveries to the `enabled` endpoints due by `now`, in order,
    /// including those an instance holds.
    async fn due(
        &self,
        now: Timestamp,
        enabled: &[EndpointId],
        limit: u32,
    ) -> Result<Vec<Due>, RepoError>;

    /// Takes those of `keys` still pending and unheld for this instance until `until`, marking
    /// them with `token`; the ones it took.
    async fn claim(
        &self,
        keys: &[DeliveryKey],
        token: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<Claimed>, RepoError>;

    /// Logs an attempt on a delivery this instance holds with `token` and releases it; whether
    /// it still held it.
    async fn record(
        &self,
        key: &DeliveryKey,
        token: &str,
        attempt: &Attempt,
        after: AfterAttempt,
    ) -> Result<bool, RepoError>;

    /// Up to `limit` of an endpoint's deliveries, newest first, of `status` when given, older
    /// than order `before` when given.
    async fn deliveries(
        &self,
        endpoint: &EndpointId,
        status: Option<DeliveryStatus>,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Delivery>, RepoError>;

    /// Queues again, due at `now` and from the start of the schedule, every delivery of the
    /// endpoint made at or after `since` that is not pending; how many.
    async fn requeue(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, RepoError>;

    /// How many deliveries are pending, and since when the oldest.
    async fn backlog(&self) -> Result<Backlog, RepoError>;

    /// Removes up to `max` deliveries made before `before` that are not pending, and messages
    /// no delivery names any more; how many deliveries it removed.
    async fn trim(&self, before: Timestamp, max: u32) -> Result<u64, RepoError>;
}
