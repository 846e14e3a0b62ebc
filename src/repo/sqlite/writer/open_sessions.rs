//! What appends need of the sessions being appended to, kept between commands so that an append
//! does not read its session row first; the cache owns every rule of when it is forgotten.

use std::collections::HashMap;

use super::super::rows;
use crate::domain::{Deadline, SessionId, Status, Timestamp};
use crate::repo::decide::Target;

/// What an append needs of its session, without reading (and parsing) its metadata.
#[derive(Clone)]
pub struct OpenState {
    pub event_count: u64,
    /// The deadline as stored (`expires_at`), in milliseconds.
    pub stored_deadline: Option<i64>,
    pub timing: rows::Timing,
    /// The session's `redact` (set at create, never changed).
    pub redact: Option<crate::domain::Redact>,
}

impl OpenState {
    pub fn status(&self) -> Status {
        self.timing.status
    }

    pub fn deadline(&self) -> Option<Deadline> {
        self.timing.deadline()
    }

    /// The session as an append arriving at `received_at`, expecting `expected_seq`, finds it.
    pub fn target(&self, received_at: Timestamp, expected_seq: Option<u64>) -> Target {
        Target {
            status: self.status(),
            expired: self.deadline().is_some_and(|d| d.at <= received_at),
            event_count: self.event_count,
            expected_seq,
            redact: self.redact,
        }
    }
}

/// The sessions' [`OpenState`]s, in two layers. `committed` holds only states this writer has
/// committed (or read in a transaction that committed); `staged` holds what the open transaction
/// wrote, and becomes committed only by [`OpenSessions::committed`], called after a successful
/// COMMIT. So a transaction that fails in any way (a failed statement, a failed COMMIT that
/// SQLite rolled back by itself, a rollback) leaves nothing of itself behind.
///
/// Forgotten, all of it:
/// - when another connection (another instance on the same file) has committed since the last
///   transaction began (`PRAGMA data_version`, read under the write lock, see [`Self::begin`]);
/// - when a command that may change sessions other than by appending runs ([`Self::forget_all`]);
/// - on any rollback, of a savepoint or of a transaction ([`Self::rolled_back`]);
/// - past [`OpenSessions::MAX`] sessions, when it starts over.
///
/// One session is forgotten when an append records its timer's end ([`Self::forget`]).
#[derive(Default)]
pub struct OpenSessions {
    committed: HashMap<SessionId, OpenState>,
    staged: HashMap<SessionId, OpenState>,
    /// `data_version` when the last transaction began.
    version: Option<i64>,
}

impl OpenSessions {
    pub const MAX: usize = 4096;

    /// A transaction began, and `data_version` read in it says whether another connection has
    /// committed since the last one. What was staged and never committed is dropped.
    pub fn begin(&mut self, data_version: i64) {
        self.staged.clear();
        if self.version != Some(data_version) {
            self.committed.clear();
            self.version = Some(data_version);
        }
    }

    pub fn get(&self, id: &SessionId) -> Option<&OpenState> {
        self.staged.get(id).or_else(|| self.committed.get(id))
    }

    /// What the open transaction made of the session.
    pub fn stage(&mut self, id: &SessionId, state: OpenState) {
        self.staged.insert(id.clone(), state);
    }

    /// The transaction committed: what it staged is now what is stored.
    pub fn committed(&mut self) {
        if self.committed.len() + self.staged.len() > Self::MAX {
            self.committed.clear();
        }
        self.committed.extend(self.staged.drain());
    }

    /// Something was rolled back (a savepoint or the transaction), or a COMMIT failed.
    pub fn rolled_back(&mut self) {
        self.forget_all();
    }

    /// A command may change sessions in ways this does not follow (end, erase, purge, adopt).
    pub fn forget_all(&mut self) {
        self.staged.clear();
        self.committed.clear();
    }

    /// The session's state changes in a way this does not follow (its timer's end).
    pub fn forget(&mut self, id: &SessionId) {
        self.staged.remove(id);
        self.committed.remove(id);
    }
}
