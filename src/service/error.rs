//! What can go wrong in the domain, as the service reports it. No HTTP here: the API decides what
//! each variant looks like on the wire (`api::error`).

use crate::domain::{EventId, SessionId, Status};
use crate::repo::RepoError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("no session with id {:?}", .0.as_str())]
    SessionNotFound(SessionId),
    #[error("no event {:?} in session {:?}", .event_id.as_str(), .session_id.as_str())]
    EventNotFound {
        session_id: SessionId,
        event_id: EventId,
    },
    /// The `eventId` is stored with other content: an idempotency key reused for another event.
    #[error(
        "event {:?} already exists in session {:?} with different content",
        .event_id.as_str(),
        .session_id.as_str()
    )]
    EventIdConflict {
        session_id: SessionId,
        event_id: EventId,
    },
    /// Events of a batch whose `eventId`s are stored with other content (their positions in the
    /// request, with their ids); nothing of the batch was stored.
    #[error(
        "{} event(s) of the batch already exist in session {:?} with different content; nothing was stored",
        .items.len(),
        .session_id.as_str()
    )]
    BatchConflicts {
        session_id: SessionId,
        items: Vec<(usize, EventId)>,
    },
    /// New events of a batch (their positions in the request) for a session that has ended;
    /// nothing of the batch was stored.
    #[error(
        "session {:?} has ended ({status}) and accepts no new events; nothing of the batch was stored",
        .session_id.as_str()
    )]
    BatchSessionEnded {
        session_id: SessionId,
        status: Status,
        items: Vec<usize>,
    },
    /// An event's payload (`at`: the event's position in a batch request) breaks the payload
    /// rules once redacted (a replacement is longer than what it replaced).
    #[error("the payload, redacted, {invalid}")]
    InvalidPayload {
        at: Option<usize>,
        invalid: crate::domain::Invalid,
    },
    /// A `GET /stats` request whose range, steps or groups break the rules of
    /// [`crate::domain::stats`]: `field` names the parameter to change.
    #[error("{invalid}")]
    InvalidStats {
        field: &'static str,
        invalid: crate::domain::Invalid,
    },
    /// A batch that breaks the rules [`crate::domain::NewEvents`] states.
    #[error("invalid batch: {0}")]
    InvalidBatch(crate::domain::Invalid),
    /// A new event for a session that has ended.
    #[error("session {:?} has ended ({status}) and accepts no new events", .session_id.as_str())]
    SessionEnded {
        session_id: SessionId,
        status: Status,
    },
    /// A new event (or batch) whose writer expected the session's last seq to be another one
    /// (`Expected-Seq`); nothing was stored.
    #[error(
        "session {:?} has {current} events, not the {expected} this write expected; nothing was stored",
        .session_id.as_str()
    )]
    SeqMismatch {
        session_id: SessionId,
        expected: u64,
        current: u64,
    },
    /// A metadata patch whose writer named other versions of the session (`If-Match`) than the
    /// one stored; nothing changed.
    #[error(
        "session {:?} has changed: it is at version \"{current}\", not one this request names; nothing was changed",
        .session_id.as_str()
    )]
    VersionMismatch {
        session_id: SessionId,
        current: String,
    },
    /// The metadata a patch would make breaks the rules metadata obeys at create.
    #[error("the patched metadata {0}")]
    InvalidMetadata(crate::domain::Invalid),
    /// Asked to end a session with the other terminal status than the one it ended with.
    #[error("session {:?} already ended as {status}", .session_id.as_str())]
    SessionAlreadyEnded {
        session_id: SessionId,
        status: Status,
    },
    /// The session was erased; every route for its id answers so until the tombstone expires.
    #[error("session {:?} was deleted", .0.as_str())]
    SessionDeleted(SessionId),
    /// A create for an id whose session was erased: a late retry must not bring the call back.
    #[error(
        "session {:?} was deleted; its id cannot be used again until the tombstone expires",
        .0.as_str()
    )]
    SessionIdDeleted(SessionId),
    /// A cursor used with the other order than the page it came from.
    #[error(
        "this cursor was made for the other order; pass the same order as the page it came from"
    )]
    CursorOrderMismatch,
    /// A search cursor used with another search than the page it came from.
    #[error(
        "this cursor was made for another search; pass the same parameters (all but limit and after) as the page it came from"
    )]
    CursorSearchMismatch,
    /// `MAX_STREAMS` live streams are open already.
    #[error("{0} live streams are open, the most this instance serves; retry shortly")]
    TooManyStreams(usize),
    /// A live stream asked to start after a seq the session has not reached.
    #[error("the session has {last} events; there is no event {requested} to resume after")]
    StartAfterLastEvent { requested: u64, last: u64 },
    /// A change-feed cursor that no answer of this service gave.
    #[error("the cursor is not one this service gave out")]
    InvalidCursor,
    /// A change-feed cursor older than the changes retained (`CHANGES_RETENTION_SECONDS`).
    #[error("the cursor is older than the changes retained; start again from earliestCursor")]
    CursorExpired { earliest: String },
    /// Storage failed; whether a retry can help is the [`RepoError`]'s to say.
    #[error(transparent)]
    Storage(#[from] RepoError),
}

impl ServiceError {
    /// A storage answer that breaks the repository contract (a bug, not a client's fault).
    pub(crate) fn contract_broken(what: &'static str) -> Self {
        ServiceError::Storage(RepoError::Backend(what.into()))
    }
}
