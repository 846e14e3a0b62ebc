//! Storage seams. Services see only these traits and types; each backend maps its own errors into
//! [`RepoError`], and no driver type crosses them.

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{
    Event, EventId, NewEvent, NewSession, Order, Session, SessionId, Status, TerminalStatus,
};

mod instrumented;
pub mod mongo;
pub mod sqlite;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The session (or event) does not exist.
    #[error("not found")]
    NotFound,
    /// The store cannot be reached or is not answering in time; the request may be retried.
    #[error("storage unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else the store reported.
    #[error("storage error")]
    Backend(#[source] BoxError),
}

/// The outcome of [`SessionRepository::create_or_get`].
#[derive(Debug, Clone, PartialEq)]
pub struct CreateOutcome {
    pub session: Session,
    /// `true` for exactly one caller per session id, however many race.
    pub created: bool,
}

/// The outcome of [`SessionRepository::end`].
#[derive(Debug, Clone, PartialEq)]
pub struct EndOutcome {
    pub session: Session,
    /// `true` for the one call that ended the session.
    pub ended_now: bool,
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

#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Creates the session if no session has its id; otherwise returns the stored one untouched.
    /// Atomic: among concurrent callers with the same id exactly one sees `created: true`, and all
    /// see the same stored session.
    async fn create_or_get(&self, new: NewSession) -> Result<CreateOutcome, RepoError>;

    /// The session, or `NotFound`.
    async fn get(&self, id: &SessionId) -> Result<Session, RepoError>;

    /// Ends a session that has not ended: sets `status` and `ended_at` in one conditional write.
    /// If it has already ended, returns it as stored (whatever status it ended with), so
    /// concurrent callers all see one `ended_at`; exactly one of them sees `ended_now`.
    /// `NotFound` if there is no such session.
    async fn end(
        &self,
        id: &SessionId,
        status: TerminalStatus,
        ended_at: crate::domain::Timestamp,
    ) -> Result<EndOutcome, RepoError>;

    /// Answers when the store can serve requests.
    async fn ping(&self) -> Result<(), RepoError>;
}

#[async_trait]
pub trait EventRepository: Send + Sync {
    /// Stores the event unless its `(session_id, event_id)` is already stored. Atomic with the
    /// session: the new event gets `seq = event_count + 1` (so `seq` runs 1, 2, 3… without gaps in
    /// the order events were accepted), `event_count` grows by one, and an `initiated` session
    /// becomes `active`. A second append with the same ids returns `Existing` with the stored event,
    /// also when the two race. `NotFound` if the session does not exist.
    async fn append(&self, new: NewEvent) -> Result<Appended, RepoError>;

    /// One event, or `NotFound` (also when the session does not exist).
    async fn get(&self, session_id: &SessionId, event_id: &EventId) -> Result<Event, RepoError>;

    /// The session and up to `range.limit` of its events in `range.order` by `seq`, starting as
    /// `range.start` says. Costs about the same on any page (a range scan on `(session_id, seq)`).
    /// `NotFound` if the session does not exist.
    async fn page(&self, session_id: &SessionId, range: EventRange)
    -> Result<EventPage, RepoError>;
}

/// The repositories the service runs on, all backed by one store.
#[derive(Clone)]
pub struct Repositories {
    pub sessions: Arc<dyn SessionRepository>,
    pub events: Arc<dyn EventRepository>,
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
