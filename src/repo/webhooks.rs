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
    /// The last time it was disabled, and when it was enabled again (none: still disabled).
    #[serde(default)]
    pub paused: Option<(i64, Option<i64>)>,
    pub secret: Secret,
    /// The secret before the last rotation, and until when messages are also signed with it.
    pub previous_secret: Option<(Secret, i64)>,
    /// Since when every attempt has failed (none: the last one succeeded, or none was made).
    pub failing_since: Option<i64>,
    pub created_at: i64,
    /// Counts every change: a replace is conditional on it.
    pub revision: u64,
}

impl Endpoint {
    /// Enables or disables it at `now` (a disable with the service's reason, if any).
    pub fn set_enabled(&mut self, enabled: bool, reason: Option<String>, now: Timestamp) {
        if enabled == self.enabled {
            return;
        }
        self.enabled = enabled;
        self.disabled_reason = reason.filter(|_| !enabled);
        self.paused = match (enabled, self.paused) {
            (false, _) => Some((now.millis(), None)),
            (true, Some((since, None))) => Some((since, Some(now.millis()))),
            (true, other) => other,
        };
        if enabled {
            self.failing_since = None;
        }
    }

    /// Whether it receives a change of `kind` made at `at`: one of its types, made after it was
    /// created and not while it was disabled (the fan-out may come to a change late, after the
    /// endpoint was disabled or enabled again: the change's time decides, not the fan-out's).
    pub fn receives(&self, kind: &str, at: Timestamp) -> bool {
        let at = at.millis();
        let paused = self
            .paused
            .is_some_and(|(from, to)| from <= at && to.is_none_or(|to| at < to));
        self.types.iter().any(|t| t == kind) && self.created_at <= at && !paused
    }
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

impl AfterAttempt {
    /// The delivery's status after the attempt, and when it is due next (Unix milliseconds;
    /// none once it is finished).
    pub fn leaves(self) -> (DeliveryStatus, Option<i64>) {
        match self {
            AfterAttempt::Succeeded => (DeliveryStatus::Succeeded, None),
            AfterAttempt::Failed => (DeliveryStatus::Failed, None),
            AfterAttempt::RetryAt(at) => (DeliveryStatus::Pending, Some(at.millis())),
        }
    }
}

/// An attempt that ended, to be logged on its delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub key: DeliveryKey,
    pub attempt: Attempt,
    pub after: AfterAttempt,
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

/// A message as stored, without its body (what an erasure rewrites).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub order: u64,
    pub kind: String,
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
    /// Stores a new endpoint unless `max` endpoints are stored already (then `false`). The count
    /// and the insert are one step, also among concurrent creates on several instances.
    async fn create_endpoint(&self, endpoint: &Endpoint, max: usize) -> Result<bool, RepoError>;

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

    /// Queues `messages` (their orders from `expected.next_order` on, rising) for their
    /// endpoints and moves the fan-out to `position` with `next_order` past the last message's
    /// order, all at once, if the stored state is still `expected`; whether it was. Of two
    /// instances that make a batch from the same state, one queues it and the other nothing.
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

    /// Logs the attempts that `ended` (each as [`record`](Self::record) would; whether this
    /// instance still held it), then claims `keys` (as [`claim`](Self::claim)). One write where
    /// the store can: the delivery loop logs what ended and claims what starts next (a call's next
    /// message, in the transaction that logs the one before) at once.
    async fn settle(
        &self,
        ended: &[Ended],
        keys: &[DeliveryKey],
        token: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<(Vec<bool>, Vec<Claimed>), RepoError> {
        // Side by side: each is its own delivery's.
        let logs = ended
            .iter()
            .map(|e| self.record(&e.key, token, &e.attempt, e.after));
        let held = futures_util::future::join_all(logs)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let claimed = if keys.is_empty() {
            Vec::new()
        } else {
            self.claim(keys, token, now, until).await?
        };
        Ok((held, claimed))
    }

    /// Lets go of the leases `token` holds on `keys` without logging an attempt (an instance
    /// stopping with attempts unfinished), so they are due again at once instead of when the
    /// lease ends; how many it held.
    async fn release(&self, keys: &[DeliveryKey], token: &str) -> Result<u64, RepoError>;

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
    /// endpoint made at or after `since` that is not pending, as not yet attempted (so that a
    /// call's messages start again in change order); how many.
    async fn requeue(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, RepoError>;

    /// The messages of a session, in order.
    async fn messages_of(&self, session_id: &str) -> Result<Vec<StoredMessage>, RepoError>;

    /// Gives these messages (by order) these bodies: an erased session's, emptied of its data.
    async fn replace_bodies(&self, bodies: Vec<(u64, String)>) -> Result<(), RepoError>;

    /// How many deliveries are pending, and since when the oldest.
    async fn backlog(&self) -> Result<Backlog, RepoError>;

    /// Removes up to `max` deliveries made before `before` that are not pending, and messages
    /// no delivery names any more; how many deliveries it removed.
    async fn trim(&self, before: Timestamp, max: u32) -> Result<u64, RepoError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint {
            id: EndpointId::generate(),
            url: "https://example.com/".into(),
            types: vec!["session.created".into()],
            description: None,
            metadata_filter: Map::new(),
            enabled: true,
            disabled_reason: None,
            paused: None,
            secret: Secret::generate().unwrap(),
            previous_secret: None,
            failing_since: None,
            created_at: 1_000,
            revision: 0,
        }
    }

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_millis(millis).unwrap()
    }

    #[test]
    fn an_endpoint_receives_its_types_made_after_it_and_not_while_disabled() {
        let mut e = endpoint();
        assert!(e.receives("session.created", at(1_000)));
        assert!(
            !e.receives("session.created", at(999)),
            "before it was made"
        );
        assert!(
            !e.receives("session.ended", at(2_000)),
            "not one of its types"
        );
        e.set_enabled(false, Some("410".into()), at(5_000));
        assert_eq!(
            (e.enabled, e.disabled_reason.as_deref()),
            (false, Some("410"))
        );
        assert!(
            e.receives("session.created", at(4_999)),
            "made before the disable"
        );
        assert!(!e.receives("session.created", at(5_000)));
        e.failing_since = Some(4_000);
        e.set_enabled(true, None, at(9_000));
        assert_eq!(
            (e.enabled, e.disabled_reason.clone(), e.failing_since),
            (true, None, None)
        );
        assert!(
            !e.receives("session.created", at(8_999)),
            "made while disabled"
        );
        assert!(e.receives("session.created", at(9_000)));
        e.set_enabled(true, None, at(10_000));
        assert_eq!(
            e.paused,
            Some((5_000, Some(9_000))),
            "enabling again changes nothing"
        );
    }
}
