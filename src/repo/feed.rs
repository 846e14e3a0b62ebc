//! The public change feed (`GET /changes`): every change to every call, in commit order, read
//! from a position. Positions are the backend's own (SQLite: the row of its change log; MongoDB:
//! a change stream's resume token), opaque to everything above; each backend makes and reads
//! its own and refuses the other's.

use std::time::Duration;

use async_trait::async_trait;

use super::RepoError;
use crate::domain::{Event, Session, SessionId, Timestamp};

/// What happened to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The session was created; its data is the session as created.
    SessionCreated,
    /// An event was stored (one per new event of a batch; replays give none).
    EventAppended,
    /// Its metadata was patched; its data is the session after the patch.
    SessionUpdated,
    /// It ended, by `complete`, by its timer (an append or the sweeper), whoever recorded it.
    SessionEnded,
    /// It was erased (`DELETE` or retention); no data but its id.
    SessionDeleted,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 5] = [
        ChangeKind::SessionCreated,
        ChangeKind::EventAppended,
        ChangeKind::SessionUpdated,
        ChangeKind::SessionEnded,
        ChangeKind::SessionDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::SessionCreated => "session.created",
            ChangeKind::EventAppended => "event.appended",
            ChangeKind::SessionUpdated => "session.updated",
            ChangeKind::SessionEnded => "session.ended",
            ChangeKind::SessionDeleted => "session.deleted",
        }
    }

    pub fn parse(raw: &str) -> Option<ChangeKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of kinds (the `types` filter); `all()` when none was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeKinds(u8);

impl ChangeKinds {
    pub fn all() -> Self {
        Self::of(ChangeKind::ALL)
    }

    pub fn of(kinds: impl IntoIterator<Item = ChangeKind>) -> Self {
        Self(kinds.into_iter().fold(0, |bits, k| bits | k.bit()))
    }

    pub fn contains(self, kind: ChangeKind) -> bool {
        self.0 & kind.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = ChangeKind> {
        ChangeKind::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }
}

/// What a change carries.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeData {
    /// The session (created, updated or ended), without its events.
    Session(Box<Session>),
    /// The event as stored.
    Event(Event),
    /// Nothing but the session's id (an erasure).
    None,
}

/// One change, with the position right after it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedChange {
    /// Where a reader that has this change goes on from (the backend's text).
    pub position: String,
    pub kind: ChangeKind,
    /// The server time of the change.
    pub at: Timestamp,
    pub session_id: SessionId,
    pub data: ChangeData,
}

/// Where a read starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedStart {
    /// From the oldest change still retained.
    Oldest,
    /// After this position (the backend's text).
    After(String),
}

/// A read of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRead {
    /// In commit order; a session's in the order of its seqs.
    pub changes: Vec<FeedChange>,
    /// Where to read on from: after the last change here, or past everything read when none.
    pub next: String,
    /// Whether more changes were there already.
    pub has_more: bool,
}

/// Why a read was refused.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The position is not one this store made.
    #[error("not a position of this store's feed")]
    InvalidPosition,
    /// The position is older than the oldest change retained; `earliest` is the oldest
    /// position a reader can start from now.
    #[error("the position is older than the changes retained")]
    Expired { earliest: String },
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// The store's change feed. Every change is there once its write is acknowledged, in commit
/// order, so a reader that goes on from each `next` sees each change exactly once; an erased
/// session's changes carry no data but its id from the moment its erasure is acknowledged.
#[async_trait]
pub trait FeedRepository: Send + Sync {
    /// Up to `limit` changes of `kinds` after `start`; when there are none yet, waits up to
    /// `wait` for one. Changes from before `retained_since` are not served (`Expired` for a
    /// position before it; `Oldest` starts no earlier).
    async fn read(
        &self,
        start: FeedStart,
        limit: u32,
        kinds: ChangeKinds,
        wait: Duration,
        retained_since: Timestamp,
    ) -> Result<FeedRead, FeedError>;

    /// The position of the newest change now (`after=now` reads on from it).
    async fn head(&self) -> Result<String, RepoError>;

    /// Whether the change at `position` came after `head` (a [`Self::head`] answer); `false`
    /// for positions this store did not make.
    fn beyond(&self, position: &str, head: &str) -> bool;

    /// Removes changes older than `before`, at most `max` of them; how many it removed. None the
    /// search index has yet to follow (see [`super::search::SearchRepository::index_pending`]).
    async fn trim(&self, before: Timestamp, max: u32) -> Result<u64, RepoError>;

    /// When the oldest change retained happened, if any is.
    async fn oldest_at(&self) -> Result<Option<Timestamp>, RepoError>;
}
