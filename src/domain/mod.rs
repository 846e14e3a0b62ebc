//! Validated domain types. Every constructor checks its input, so a value of these types is valid.

mod event;
mod ids;
mod json;
mod lifecycle;
mod order;
mod redact;
pub mod search;
mod session;
pub mod stats;
mod timestamp;
pub mod webhook;

pub use event::{Event, EventType, MAX_BATCH_EVENTS, NewEvent, NewEvents};
pub use ids::{EventId, Language, SessionId};
pub use json::{
    JsonObject, List, MAX_JSON_DEPTH, MAX_OBJECT_KEYS, Malformed, Member, Members, TextError,
    merge_patch, read_object,
};
pub use lifecycle::{Deadline, EndReason, MAX_TIMER_SECONDS, Timers, deadline};
pub use order::Order;
pub use redact::{PiiKind, Redact, Redacted, redact_payload};
pub use session::{NewSession, Session, SessionVersion, Status, TerminalStatus};
pub use timestamp::Timestamp;

/// Whether `key` can name a top-level metadata key in a query (`metadata.KEY` filters and
/// groupings): 1–64 characters of `A-Z a-z 0-9 _ -`.
pub fn is_metadata_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Why a value was refused; the API turns these into `errors: [{field, message}]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
