use std::fmt;
use std::str::FromStr;

use super::{
    Deadline, EndReason, Invalid, JsonObject, Language, Redact, SessionId, Timers, Timestamp,
};

/// Where a session is in its life: `initiated` → `active` (first event) → `completed` | `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Initiated,
    Active,
    Completed,
    Failed,
}

impl Status {
    /// Every status a stored session can have.
    pub const ALL: [Status; 4] = [
        Status::Initiated,
        Status::Active,
        Status::Completed,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Initiated => "initiated",
            Status::Active => "active",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "initiated" => Ok(Status::Initiated),
            "active" => Ok(Status::Active),
            "completed" => Ok(Status::Completed),
            "failed" => Ok(Status::Failed),
            _ => Err(Invalid::new(format!("unknown status {s:?}"))),
        }
    }
}

/// The status a session can be ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TerminalStatus {
    #[default]
    Completed,
    Failed,
}

impl TerminalStatus {
    pub fn status(self) -> Status {
        match self {
            TerminalStatus::Completed => Status::Completed,
            TerminalStatus::Failed => Status::Failed,
        }
    }
}

/// A validated request to create a session.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    pub session_id: SessionId,
    pub language: Language,
    pub metadata: JsonObject,
    pub started_at: Timestamp,
    /// The effective timers: the client's, or the server's defaults.
    pub timers: Timers,
    /// The kinds of personal data redacted from this call's event payloads, when the call
    /// chose them at create; `None`: the service's `REDACT`.
    pub redact: Option<Redact>,
}

/// A stored session. `event_count` is exact and equals the highest `seq` handed out.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub session_id: SessionId,
    pub status: Status,
    pub language: Language,
    pub metadata: JsonObject,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub event_count: u64,
    /// Why it ended; `None` while open, or if it was ended without a reason.
    pub ended_reason: Option<EndReason>,
    /// When the last event was accepted (server time).
    pub last_event_at: Option<Timestamp>,
    pub timers: Timers,
    /// Where the timers count from: `started_at`, or for a session older than timers, the
    /// upgrade that gave it the server's defaults.
    pub timers_since: Timestamp,
    /// How many times its metadata was changed after the create (`PATCH`).
    pub revision: u64,
    /// What its events' payloads are redacted of, if the call chose it at create; `None`: the
    /// service's `REDACT`. Never changes after the create.
    pub redact: Option<Redact>,
}

/// Which state of a session an answer showed: every change to a session moves one of these (a
/// metadata change its revision, an event its count, an end its status; the other fields change
/// only with these). The API's `ETag` is made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionVersion {
    pub revision: u64,
    pub event_count: u64,
    pub status: Status,
}

impl std::fmt::Display for SessionVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}.{}",
            self.revision,
            self.event_count,
            self.status.as_str()
        )
    }
}

impl NewSession {
    /// The session as stored by a create that won.
    pub fn into_session(self) -> Session {
        Session {
            session_id: self.session_id,
            status: Status::Initiated,
            language: self.language,
            metadata: self.metadata,
            started_at: self.started_at,
            ended_at: None,
            event_count: 0,
            ended_reason: None,
            last_event_at: None,
            timers: self.timers,
            timers_since: self.started_at,
            revision: 0,
            redact: self.redact,
        }
    }
}

impl Session {
    /// When and why this session ends by itself if nothing more happens; `None` once ended or
    /// when no timer applies.
    pub fn deadline(&self) -> Option<Deadline> {
        if self.status.is_terminal() {
            return None;
        }
        super::deadline(self.timers, self.timers_since, self.last_event_at)
    }

    /// Whether its deadline has come at `now`: from then on it is ended, noticed or not.
    pub fn expired_at(&self, now: Timestamp) -> Option<Deadline> {
        self.deadline().filter(|d| d.at <= now)
    }

    /// Records the end its timer gave it: `failed`, ended at the deadline itself.
    pub fn end_by(&mut self, deadline: Deadline) {
        self.status = Status::Failed;
        self.ended_at = Some(deadline.at);
        self.ended_reason = Some(deadline.reason);
    }

    /// The session as it is at `now`: ended by its timer if the deadline has passed, whether or
    /// not storage has recorded that yet.
    /// Its version (see [`SessionVersion`]).
    pub fn version(&self) -> SessionVersion {
        SessionVersion {
            revision: self.revision,
            event_count: self.event_count,
            status: self.status,
        }
    }

    pub fn as_of(mut self, now: Timestamp) -> Self {
        if let Some(deadline) = self.expired_at(now) {
            self.end_by(deadline);
        }
        self
    }
}
