//! Storage seams. Services see only these traits and types; each backend maps its own errors into
//! [`RepoError`], and no driver type crosses them.

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::Stream;

use crate::domain::{
    EndReason, Event, EventId, NewEvent, NewEvents, NewSession, Order, Redact, Session, SessionId,
    Status, TerminalStatus, Timers, Timestamp,
};

pub mod decide;
pub mod feed;
mod instrumented;
pub mod mongo;
pub mod search;
pub mod sqlite;
pub mod stats;
pub mod webhooks;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The session (or event) does not exist.
    #[error("not found")]
    NotFound,
    /// The session was erased; only its tombstone (id and deletion time) is left.
    #[error("deleted")]
    Deleted,
    /// The store cannot be reached or is not answering in time; the request may be retried.
    #[error("storage unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else the store reported.
    #[error("storage error")]
    Backend(#[source] BoxError),
}

/// The source of a [`RepoError::Unavailable`] when the store is out of space (SQLite's
/// `SQLITE_FULL`, MongoDB's `OutOfDiskSpace`): writes fail until space is freed; reads still
/// work. Carried inside `Unavailable` (a retry may help once space is freed), so it needs no
/// match arm of its own; `AppError::from_repo` answers it with 503 `storage_full`.
#[derive(Debug, thiserror::Error)]
#[error("storage is full")]
pub struct StorageFull(#[source] pub BoxError);

impl RepoError {
    /// The store is out of space.
    pub fn full(source: impl Into<BoxError>) -> RepoError {
        RepoError::Unavailable(Box::new(StorageFull(source.into())))
    }

    /// Whether this is the store being out of space.
    pub fn is_full(&self) -> bool {
        matches!(self, RepoError::Unavailable(source) if source.is::<StorageFull>())
    }
}

/// The outcome of [`SessionRepository::create_or_get`].
#[derive(Debug, Clone, PartialEq)]
pub struct CreateOutcome {
    pub session: Session,
    /// `true` for exactly one caller per session id, however many race.
    pub created: bool,
}

/// A change to a session's metadata (`PATCH`): a JSON Merge Patch, applied only if the session
/// is at one of the `if_match` versions (their [`crate::domain::SessionVersion`] text, as the
/// session is answered now), when given.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataPatch {
    pub patch: serde_json::Map<String, serde_json::Value>,
    pub if_match: Option<Vec<String>>,
    /// Now: the instant timers are checked at, for the version compared.
    pub at: Timestamp,
}

/// The outcome of [`SessionRepository::patch_metadata`].
#[derive(Debug, Clone, PartialEq)]
pub enum Patched {
    /// The session with the patch applied (stored now, or nothing to change): as answered now.
    Done(Session),
    /// The session is at another version than `if_match` names; nothing changed.
    PreconditionFailed(Session),
    /// The metadata the patch would make breaks the rules; nothing changed.
    Invalid(crate::domain::Invalid),
}

/// The outcome of [`SessionRepository::end`].
#[derive(Debug, Clone, PartialEq)]
pub struct EndOutcome {
    pub session: Session,
    /// `true` for the one call that ended the session.
    pub ended_now: bool,
}

impl EndOutcome {
    /// The session as this call ended it, or the status another call ended it with.
    pub fn ended_by_this(self) -> Result<Session, Status> {
        if self.ended_now {
            Ok(self.session)
        } else {
            Err(self.session.status)
        }
    }
}

/// The outcome of [`EventRepository::append`].
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// Stored now, with the next `seq`; the session counted it and became `active` if it was `initiated`.
    New(Event),
    /// An event with this `eventId` was already stored (possibly with other content); nothing changed.
    Existing(Event),
    /// The event id is new but the session has ended with this status; nothing changed.
    SessionEnded(Status),
    /// The event id is new and arrived at or after the session's deadline: this call recorded
    /// the timer's end (the session as now stored); the event was not stored.
    Expired(Session),
    /// The event id is new, the session is open, and its last seq is this one, not the
    /// `expected_seq` the request named; nothing changed.
    SeqMismatch(u64),
    /// The session's `redact` is this one, not the event's [`NewEvent::redact`]: its payload
    /// was redacted under other rules; nothing was looked at or changed.
    RedactionChanged(Option<Redact>),
}

/// One event of a batch that was stored, in the batch's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchItem {
    /// Stored by this batch.
    New(Event),
    /// Already stored with the same content (a replay): returned as stored.
    Replay(Event),
}

impl BatchItem {
    pub fn event(&self) -> &Event {
        match self {
            BatchItem::New(e) | BatchItem::Replay(e) => e,
        }
    }
}

/// The outcome of [`EventRepository::append_batch`]. Every refusal changed nothing but, for
/// `Expired`, the session's recorded end. Positions index the batch's events.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchAppended {
    /// Every new event was stored, with consecutive seqs in batch order; one item per event of
    /// the batch, in its order.
    Stored(Vec<BatchItem>),
    /// These events' `eventId`s are stored with other content (see [`NewEvent::matches`]).
    Conflicts(Vec<usize>),
    /// The session has ended with this status, and these events are new.
    SessionEnded { status: Status, new: Vec<usize> },
    /// The batch arrived at or after the session's deadline with these new events: this call
    /// recorded the timer's end (the session as now stored).
    Expired {
        session: Box<Session>,
        new: Vec<usize>,
    },
    /// Some events are new, the session is open, and its last seq is `current`, not the batch's
    /// `expected_seq`.
    SeqMismatch { current: u64 },
    /// The session's `redact` is this one, not the batch's (see [`Appended::RedactionChanged`]).
    RedactionChanged(Option<Redact>),
}

/// Where a page of events starts, counted in the page's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Skip this many events from the start (page mode).
    Offset(u64),
    /// Only events whose `seq` comes strictly after this one (cursor mode).
    AfterSeq(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRange {
    pub order: Order,
    pub start: Start,
    pub limit: u32,
}

/// A session with one page of its events, read consistently: the events are those stored when
/// `session.event_count` was read, never more.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub session: Session,
    pub events: Vec<Event>,
    /// Whether events beyond this page existed at that moment.
    pub has_more: bool,
}

impl EventPage {
    /// The page from up to `limit + 1` events read in the page's order: the one past `limit`
    /// only says that there are more.
    pub fn from_one_more(session: Session, mut events: Vec<Event>, limit: u32) -> Self {
        let has_more = events.len() > limit as usize;
        events.truncate(limit as usize);
        EventPage {
            session,
            events,
            has_more,
        }
    }
}

/// A request to end a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndRequest {
    pub status: TerminalStatus,
    /// When it was asked: the `ended_at` it gets, and the instant its timers are checked at.
    pub at: Timestamp,
    pub reason: Option<EndReason>,
}

/// The outcome of [`SessionRepository::delete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// `true` for the one call that erased the session; `false` if it was already a tombstone.
    pub deleted_now: bool,
}

/// Which sessions [`SessionRepository::list`] returns: an index-backed keyset range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionScan {
    /// Stored statuses to include; empty means all four.
    pub statuses: Vec<Status>,
    /// `started_at >= started_from`.
    pub started_from: Option<Timestamp>,
    /// `started_at < started_before`.
    pub started_before: Option<Timestamp>,
    /// By `(started_at, session_id)`, ascending or descending.
    pub order: Order,
    /// Only sessions strictly after this `(started_at, session_id)` in `order`.
    pub after: Option<(Timestamp, SessionId)>,
    pub limit: u32,
}

impl SessionScan {
    /// The first `limit` of `found` in the scan's order: how a backend that reads one range per
    /// status merges them.
    pub fn first_in_order(&self, mut found: Vec<Session>) -> Vec<Session> {
        let key = |s: &Session| (s.started_at, s.session_id.clone());
        match self.order {
            Order::Asc => found.sort_by_key(key),
            Order::Desc => found.sort_by_key(|s| std::cmp::Reverse(key(s))),
        }
        found.truncate(self.limit as usize);
        found
    }
}

/// What one [`SessionRepository::purge`] call removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeOutcome {
    /// Events of erased sessions removed by this call.
    pub events_removed: u64,
    /// Tombstones older than the cutoff removed (their ids are free again).
    pub tombstones_removed: u64,
    /// Whether more is left to remove; call again.
    pub more: bool,
}

#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Creates the session if no session has its id; otherwise returns the stored one untouched.
    /// Atomic: among concurrent callers with the same id exactly one sees `created: true`, and all
    /// see the same stored session. `Deleted` if the id is a tombstone.
    async fn create_or_get(&self, new: NewSession) -> Result<CreateOutcome, RepoError>;

    /// The session as recorded (a timer end not yet recorded is the service's to apply, with
    /// [`Session::as_of`]); `NotFound`, or `Deleted` for a tombstone.
    async fn get(&self, id: &SessionId) -> Result<Session, RepoError>;

    /// Ends a session that has not ended, in one conditional write: with `request`'s status,
    /// reason and `ended_at = request.at` — unless its deadline had come by `request.at`, in which
    /// case the timer's end is recorded instead (`failed`, its reason, `ended_at` = the deadline).
    /// If it has already ended, returns it as stored (whatever status it ended with), so
    /// concurrent callers all see one `ended_at`; exactly one of them sees `ended_now`.
    /// `NotFound` if there is no such session, `Deleted` for a tombstone.
    async fn end(&self, id: &SessionId, request: EndRequest) -> Result<EndOutcome, RepoError>;

    /// Records the timer end of a session whose deadline has come by `now` (conditional on it
    /// still being open and its deadline unchanged, so concurrent sweepers record one end with one
    /// `ended_at`; exactly one sees `ended_now`). A session not expired, or already ended, is
    /// returned as stored with `ended_now: false`.
    async fn expire(&self, id: &SessionId, now: Timestamp) -> Result<EndOutcome, RepoError>;

    /// Up to `limit` open sessions whose deadline is at or before `now`, found through an index
    /// on the deadline, earliest first (on SQLite, by the deadline as last stored, which may lag
    /// the true one by up to a minute).
    async fn expired(&self, now: Timestamp, limit: u32) -> Result<Vec<SessionId>, RepoError>;

    /// Up to `scan.limit` sessions (never tombstones) in `scan.order` by `(started_at,
    /// session_id)`, served by an index on both backends.
    async fn list(&self, scan: &SessionScan) -> Result<Vec<Session>, RepoError>;

    /// Erases the session: from the moment this returns it is a tombstone holding only its id and
    /// `at`, and its events are unreachable. Events may be removed later by [`Self::purge`], in
    /// bounded chunks, which resumes after a crash. Repeating it is `deleted_now: false`;
    /// `NotFound` if there never was such a session (or its tombstone expired).
    async fn delete(&self, id: &SessionId, at: Timestamp) -> Result<DeleteOutcome, RepoError>;

    /// Applies a metadata patch, open or ended alike, as [`decide::plan_patch`] decides: one
    /// conditional write that also counts the change in the session's `revision`, so concurrent
    /// patches each land (none is lost) and an `if_match` is checked against what is written over.
    /// A patch that changes nothing writes nothing. `NotFound`, or `Deleted` for a tombstone.
    async fn patch_metadata(
        &self,
        id: &SessionId,
        patch: MetadataPatch,
    ) -> Result<Patched, RepoError>;

    /// Removes up to about `max_events` events of erased sessions, then the tombstones deleted
    /// before `tombstones_before` whose events are all gone.
    async fn purge(
        &self,
        max_events: u64,
        tombstones_before: Timestamp,
    ) -> Result<PurgeOutcome, RepoError>;

    /// Up to `limit` sessions that ended before `cutoff` (for retention), through an index.
    async fn ended_before(
        &self,
        cutoff: Timestamp,
        limit: u32,
    ) -> Result<Vec<SessionId>, RepoError>;

    /// Gives sessions stored before timers existed the `defaults`, counted from `now`; returns how
    /// many it changed. Idempotent: a session that has timers is never touched.
    async fn adopt_legacy_sessions(
        &self,
        defaults: Timers,
        now: Timestamp,
    ) -> Result<u64, RepoError>;

    /// Answers when the store can serve requests.
    async fn ping(&self) -> Result<(), RepoError>;
}

#[async_trait]
pub trait EventRepository: Send + Sync {
    /// Stores the event unless its `(session_id, event_id)` is already stored. Atomic with the
    /// session: the new event gets `seq = event_count + 1` (so `seq` runs 1, 2, 3… without gaps in
    /// the order events were accepted), `event_count` grows by one, and an `initiated` session
    /// becomes `active`. A second append with the same ids returns `Existing` with the stored event,
    /// also when the two race. A new event arriving at or after the session's deadline
    /// (`new.received_at`) records the timer's end and is `Expired` (for the one call that
    /// recorded it; later ones see `SessionEnded(Failed)`). Each stored
    /// event sets the session's `last_event_at` to `new.received_at`. With `new.expected_seq`, a
    /// new event for an open session whose `event_count` is another number is `SeqMismatch`, and
    /// nothing changes (a replay is still `Existing`). `NotFound` if the session does not exist,
    /// `Deleted` for a tombstone.
    async fn append(&self, new: NewEvent) -> Result<Appended, RepoError>;

    /// Appends a batch atomically: either every event of `batch` whose `eventId` is not stored
    /// yet is stored, with consecutive seqs `event_count + 1 ..` in batch order (and the session
    /// counts them, becomes `active`, and takes `batch.received_at()` as `last_event_at`, as
    /// [`Self::append`] does), or nothing is. Events already stored with the same content are
    /// replays, returned as stored; if every event is one, nothing is written (also on an ended
    /// session). Nothing is stored, in this order of precedence, when any `eventId` is stored
    /// with other content (`Conflicts`), when the session has ended and any event is new
    /// (`SessionEnded`), or when any event is new and the batch arrived at or after the
    /// session's deadline: then the timer's end is recorded (`Expired` for the one call that
    /// recorded it; later ones see `SessionEnded(Failed)`), or when any event is new, the session
    /// is open and its `event_count` is not `batch.expected_seq()` (`SeqMismatch`, when one is
    /// given). Concurrent batches and appends with
    /// the same ids store each event once; the store's unique `(session_id, event_id)` decides.
    /// `NotFound` if the session does not exist, `Deleted` for a tombstone.
    async fn append_batch(&self, batch: NewEvents) -> Result<BatchAppended, RepoError>;

    /// One event, or `NotFound` (also when the session does not exist); `Deleted` for a tombstone.
    async fn get(&self, session_id: &SessionId, event_id: &EventId) -> Result<Event, RepoError>;

    /// The session and up to `range.limit` of its events in `range.order` by `seq`, starting as
    /// `range.start` says. Costs about the same on any page (a range scan on `(session_id, seq)`).
    /// `NotFound` if the session does not exist, `Deleted` for a tombstone.
    async fn page(&self, session_id: &SessionId, range: EventRange)
    -> Result<EventPage, RepoError>;
}

/// A change committed to the store by anyone (this process or another), as a [`ChangeFeed`]
/// reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// An event was stored.
    Event(Event),
    /// The session ended or was erased; read it to learn which.
    SessionEnded(SessionId),
}

/// Changes in commit order, until the store ends the feed (an `Err`, or the stream ending).
pub type ChangeStream = Pin<Box<dyn Stream<Item = Result<Change, RepoError>> + Send>>;

/// A feed of every change committed to the store, whoever wrote it: what lets one process learn of
/// another's writes without polling (MongoDB change streams). A backend without one has
/// `Repositories::changes` set to `None`.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Opens the feed. Once this returns, every change committed afterwards is reported. A later
    /// call resumes right after the last change the previous stream delivered when the store
    /// still holds it, or starts from now when it does not: callers that must miss nothing
    /// re-read what they follow after every open.
    async fn open(&self) -> Result<ChangeStream, RepoError>;
}

/// The repositories the service runs on, all backed by one store.
#[derive(Clone)]
pub struct Repositories {
    pub sessions: Arc<dyn SessionRepository>,
    pub events: Arc<dyn EventRepository>,
    /// Changes by any writer, if the store can report them.
    pub changes: Option<Arc<dyn ChangeFeed>>,
    /// The public change feed (`GET /changes`).
    pub feed: Arc<dyn feed::FeedRepository>,
    /// Transcript search (`GET /search`).
    pub search: Arc<dyn search::SearchRepository>,
    /// Call analytics (`GET /stats`).
    pub stats: Arc<dyn stats::StatsRepository>,
    /// Webhook endpoints, messages and deliveries.
    pub webhooks: Arc<dyn webhooks::WebhookRepository>,
}

/// The window of seqs a page reads from, for a session holding `count` events. Seqs are dense
/// (`1..=count`), so an offset turns into a seq bound and every page is a range scan.
pub fn seq_bounds(range: &EventRange, count: u64) -> SeqBounds {
    let (low_excl, high_incl) = match (range.order, range.start) {
        (Order::Asc, Start::Offset(skip)) => (skip, count),
        (Order::Asc, Start::AfterSeq(seq)) => (seq, count),
        (Order::Desc, Start::Offset(skip)) => (0, count.saturating_sub(skip)),
        (Order::Desc, Start::AfterSeq(seq)) => (0, seq.saturating_sub(1).min(count)),
    };
    SeqBounds {
        low_excl,
        high_incl,
    }
}

/// Events with `low_excl < seq <= high_incl`, read in the page's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqBounds {
    pub low_excl: u64,
    pub high_incl: u64,
}
