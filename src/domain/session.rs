use std::fmt;
use std::str::FromStr;

use super::{Invalid, JsonObject, Language, SessionId, Timestamp};

/// Where a session is in its life: `initiated` → `active` (first event) → `completed` | `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Initiated,
    Active,
    Completed,
    Failed,
}

impl Status {
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
}
