//! The rules of the service: idempotency outcomes, state transitions, timers, listing, erasure
//! and pagination. Handlers call these with validated domain types; atomicity itself lives in the
//! repositories.

mod cursor;
mod error;
pub mod live;
mod maintenance;

use std::sync::Arc;

use crate::domain::{
    EndReason, Event, EventId, NewEvent, NewEvents, NewSession, Order, Session, SessionId, Status,
    TerminalStatus, Timers, Timestamp,
};
use crate::repo::{
    Appended, BatchAppended, BatchItem, EndRequest, EventRange, RepoError, Repositories,
    SessionScan, Start,
};

pub use cursor::{Cursor, SessionCursor};
pub use error::ServiceError;
pub use maintenance::Maintenance;

/// Page sizes accepted by the read endpoints.
pub const MAX_PAGE_LIMIT: u32 = 100;
pub const DEFAULT_PAGE_LIMIT: u32 = 20;
/// The most sessions one list request examines; with selective filters a page may come back
/// short, with `has_more` and a cursor to go on.
pub const MAX_LIST_CANDIDATES: usize = 5_000;

/// The lifecycle settings the service runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    /// The timers of a session created without its own.
    pub default_timers: Timers,
    /// How long a deleted session's tombstone keeps its id taken, in seconds.
    pub tombstone_retention_seconds: u64,
    /// Ended sessions older than this are erased; `0` keeps them forever.
    pub retention_seconds: u64,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            default_timers: Timers {
                inactivity_seconds: 3600,
                max_duration_seconds: 0,
            },
            tombstone_retention_seconds: 30 * 24 * 3600,
            retention_seconds: 0,
        }
    }
}

/// The service: cheap to clone (one reference count), as every request's handler takes a copy.
#[derive(Clone)]
pub struct SessionService(Arc<Shared>);

pub struct Shared {
    repos: Repositories,
    lifecycle: Lifecycle,
    /// Live streams' announcements: every write through this service is announced here.
    hub: live::Hub,
    counters: Counters,
}

/// The unlabelled counters of every append, looked up in the recorder once (when the service is
/// made, after the recorder is installed), not on every event.
struct Counters {
    events_stored: metrics::Counter,
    event_replays: metrics::Counter,
}

impl Counters {
    fn new() -> Self {
        Self {
            events_stored: metrics::counter!("events_stored_total"),
            event_replays: metrics::counter!("event_replays_total"),
        }
    }
}

impl std::ops::Deref for SessionService {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Whether a write stored something new or found it already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Existing,
}

/// How the client asked to page: by page number or after a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageMode {
    Page(u64),
    After(Cursor),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub order: Order,
    pub mode: PageMode,
}

/// A session with one page of its events, and what the client needs to go on.
#[derive(Debug, Clone)]
pub struct SessionPage {
    pub session: Session,
    pub events: Vec<Event>,
    pub limit: u32,
    /// `None` in cursor mode.
    pub page: Option<u64>,
    pub total_pages: u64,
    pub has_more: bool,
    pub next_cursor: Option<Cursor>,
}

/// Which sessions to list (`GET /sessions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// Empty: every status.
    pub statuses: Vec<Status>,
    pub started_from: Option<Timestamp>,
    pub started_before: Option<Timestamp>,
    pub ended_reason: Option<EndReason>,
    /// Top-level metadata keys that must equal these strings.
    pub metadata: Vec<(String, String)>,
    pub order: Order,
    pub limit: u32,
    pub after: Option<SessionCursor>,
}

/// One page of sessions.
#[derive(Debug, Clone)]
pub struct SessionList {
    pub sessions: Vec<Session>,
    pub limit: u32,
    pub has_more: bool,
    pub next_cursor: Option<SessionCursor>,
}

/// Records the timer end of `id` if its deadline has come by `now` (a conditional write, so one
/// of several callers records it), counts it and tells its live streams; whether this call
/// recorded it. The sweeper and a live stream at its session's deadline both end sessions so.
async fn expire(
    repos: &Repositories,
    hub: &live::Hub,
    id: &SessionId,
    now: Timestamp,
) -> Result<bool, RepoError> {
    let outcome = repos.sessions.expire(id, now).await?;
    if outcome.ended_now {
        count_end(&outcome.session);
        hub.poke(id);
    }
    Ok(outcome.ended_now)
}

/// A repository error, with `NotFound` and `Deleted` meaning the session `id`.
fn session_error(id: &SessionId) -> impl FnOnce(RepoError) -> ServiceError + '_ {
    move |e| match e {
        RepoError::NotFound => ServiceError::SessionNotFound(id.clone()),
        RepoError::Deleted => ServiceError::SessionDeleted(id.clone()),
        other => ServiceError::Storage(other),
    }
}

fn count_end(session: &Session) {
    metrics::counter!("sessions_ended_total", "status" => session.status.as_str()).increment(1);
    let reason = session
        .ended_reason
        .as_ref()
        .map_or("none".to_owned(), |r| r.as_str().to_owned());
    metrics::counter!("sessions_ended_by_reason_total", "reason" => reason).increment(1);
}

impl SessionService {
    pub fn new(repos: Repositories, lifecycle: Lifecycle) -> Self {
        Self(Arc::new(Shared {
            repos,
            lifecycle,
            hub: live::Hub::new(live::LiveSettings::default()),
            counters: Counters::new(),
        }))
    }

    /// The same service with live streams run by `settings`.
    pub fn with_live(self, settings: live::LiveSettings) -> Self {
        Self(Arc::new(Shared {
            repos: self.repos.clone(),
            lifecycle: self.lifecycle,
            hub: live::Hub::new(settings),
            counters: Counters::new(),
        }))
    }

    /// The hub of this service's live streams.
    pub fn hub(&self) -> &live::Hub {
        &self.hub
    }

    /// Starts what tells the live streams of other writers' changes (stopped when dropped).
    pub fn watch_changes(&self) -> live::Watchers {
        live::Watchers::start(self.hub.clone(), self.repos.clone())
    }

    /// Opens a live stream of the session's events from `start` on: stored ones, then new ones as
    /// they are stored by anyone, then its end. Refused when too many streams are open, when the
    /// session does not exist or was erased, and when `start` is past its last event.
    pub async fn follow(
        &self,
        id: &SessionId,
        start: live::Start,
    ) -> Result<live::Follow, ServiceError> {
        self.hub.follow(&self.repos, id, start).await
    }

    pub fn repositories(&self) -> &Repositories {
        &self.repos
    }

    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// Creates the session, or returns the stored one unchanged if its id is taken.
    pub async fn create(&self, new: NewSession) -> Result<(Session, Written), ServiceError> {
        let id = new.session_id.clone();
        let outcome = self
            .repos
            .sessions
            .create_or_get(new)
            .await
            .map_err(|e| match e {
                RepoError::NotFound => ServiceError::contract_broken("create returned not found"),
                RepoError::Deleted => ServiceError::SessionIdDeleted(id),
                other => ServiceError::Storage(other),
            })?;
        let written = if outcome.created {
            metrics::counter!("sessions_created_total").increment(1);
            Written::Created
        } else {
            Written::Existing
        };
        Ok((outcome.session.as_of(Timestamp::now()), written))
    }

    /// Adds an event. A retry with the same content gets the stored event; the same `eventId` with
    /// other content is a conflict, and so is a new event for a session that has ended (also by
    /// its timer).
    pub async fn add_event(&self, new: NewEvent) -> Result<(Event, Written), ServiceError> {
        let appended = self
            .repos
            .events
            .append(new.clone())
            .await
            .map_err(session_error(&new.session_id))?;
        let (refused, reason) = match appended {
            Appended::New(event) => {
                self.counters.events_stored.increment(1);
                self.hub.publish(&event);
                return Ok((event, Written::Created));
            }
            Appended::Existing(event) if new.matches(&event) => {
                self.counters.event_replays.increment(1);
                return Ok((event, Written::Existing));
            }
            Appended::Existing(_) => (
                ServiceError::EventIdConflict {
                    session_id: new.session_id,
                    event_id: new.event_id,
                },
                "event_id_conflict",
            ),
            Appended::Expired(session) => {
                count_end(&session);
                self.hub.poke(&session.session_id);
                (
                    ServiceError::SessionEnded {
                        session_id: new.session_id,
                        status: session.status,
                    },
                    "session_ended",
                )
            }
            Appended::SessionEnded(status) => (
                ServiceError::SessionEnded {
                    session_id: new.session_id,
                    status,
                },
                "session_ended",
            ),
        };
        metrics::counter!("event_conflicts_total", "reason" => reason).increment(1);
        Err(refused)
    }

    /// Adds a batch of events to one session atomically: every new one is stored, with
    /// consecutive seqs in request order, or none is. Identical copies of one event in the batch
    /// are stored once. The answer holds the stored event for each of `events`, in order, and is
    /// `Created` if anything was stored, `Existing` if every event was a replay. Refused as a
    /// whole when any `eventId` is stored with other content, or when any event is new and the
    /// session has ended (also by its timer, which this then records).
    pub async fn add_events(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<(Vec<Event>, Written), ServiceError> {
        let (batch, positions) =
            NewEvents::folding_copies(events).map_err(ServiceError::InvalidBatch)?;
        let session_id = batch.session_id().clone();
        let ids: Vec<EventId> = batch.events().iter().map(|e| e.event_id.clone()).collect();
        metrics::histogram!("event_batch_size").record(positions.len() as f64);
        // The request positions of the batch's events at `at`.
        let requested = |at: &[usize]| -> Vec<usize> {
            (0..positions.len())
                .filter(|&i| at.contains(&positions[i]))
                .collect()
        };
        let appended = self
            .repos
            .events
            .append_batch(batch)
            .await
            .map_err(session_error(&session_id))?;
        let (refused, reason) = match appended {
            BatchAppended::Stored(items) => {
                let stored = items
                    .iter()
                    .filter(|i| matches!(i, BatchItem::New(_)))
                    .count() as u64;
                self.counters.events_stored.increment(stored);
                self.counters
                    .event_replays
                    .increment(items.len() as u64 - stored);
                let (outcome, written) = if stored > 0 {
                    ("stored", Written::Created)
                } else {
                    ("replayed", Written::Existing)
                };
                metrics::counter!("event_batches_total", "outcome" => outcome).increment(1);
                // The new events, in seq order, to the session's live streams.
                for item in &items {
                    if let BatchItem::New(event) = item {
                        self.hub.publish(event);
                    }
                }
                let events = positions
                    .iter()
                    .map(|&at| items.get(at).map(|i| i.event().clone()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| ServiceError::contract_broken("a batch answer lacks events"))?;
                return Ok((events, written));
            }
            BatchAppended::Conflicts(at) => (
                ServiceError::BatchConflicts {
                    items: requested(&at)
                        .into_iter()
                        .map(|i| (i, ids[positions[i]].clone()))
                        .collect(),
                    session_id,
                },
                "event_id_conflict",
            ),
            BatchAppended::SessionEnded { status, new } => (
                ServiceError::BatchSessionEnded {
                    session_id,
                    status,
                    items: requested(&new),
                },
                "session_ended",
            ),
            BatchAppended::Expired { session, new } => {
                count_end(&session);
                self.hub.poke(&session.session_id);
                (
                    ServiceError::BatchSessionEnded {
                        session_id,
                        status: session.status,
                        items: requested(&new),
                    },
                    "session_ended",
                )
            }
        };
        metrics::counter!("event_conflicts_total", "reason" => reason).increment(1);
        metrics::counter!("event_batches_total", "outcome" => "refused").increment(1);
        Err(refused)
    }

    /// Ends the session with `status` (and `reason`). Repeating it returns the same session;
    /// asking for the other terminal status than the stored one is a conflict. A session whose
    /// timer has run out has ended already: `failed`, with the timer's reason.
    pub async fn end(
        &self,
        id: &SessionId,
        status: TerminalStatus,
        reason: Option<EndReason>,
    ) -> Result<Session, ServiceError> {
        let request = EndRequest {
            status,
            at: Timestamp::now(),
            reason,
        };
        let outcome = self
            .repos
            .sessions
            .end(id, request)
            .await
            .map_err(session_error(id))?;
        let session = outcome.session;
        if outcome.ended_now {
            count_end(&session);
            self.hub.poke(id);
        }
        if session.status != status.status() {
            return Err(ServiceError::SessionAlreadyEnded {
                session_id: id.clone(),
                status: session.status,
            });
        }
        Ok(session)
    }

    /// Erases the session and its events. Repeating it is fine; an unknown id is not found.
    pub async fn delete(&self, id: &SessionId) -> Result<(), ServiceError> {
        let outcome = self
            .repos
            .sessions
            .delete(id, Timestamp::now())
            .await
            .map_err(|e| match e {
                RepoError::NotFound => ServiceError::SessionNotFound(id.clone()),
                other => ServiceError::Storage(other),
            })?;
        if outcome.deleted_now {
            metrics::counter!("sessions_erased_total", "cause" => "request").increment(1);
            self.hub.poke(id);
        }
        Ok(())
    }

    pub async fn event(
        &self,
        session_id: &SessionId,
        event_id: &EventId,
    ) -> Result<Event, ServiceError> {
        self.repos
            .events
            .get(session_id, event_id)
            .await
            .map_err(|e| match e {
                RepoError::NotFound => ServiceError::EventNotFound {
                    session_id: session_id.clone(),
                    event_id: event_id.clone(),
                },
                RepoError::Deleted => ServiceError::SessionDeleted(session_id.clone()),
                other => ServiceError::Storage(other),
            })
    }

    pub async fn page(
        &self,
        id: &SessionId,
        request: PageRequest,
    ) -> Result<SessionPage, ServiceError> {
        let start = match &request.mode {
            PageMode::Page(page) => Start::Offset(
                page.saturating_sub(1)
                    .saturating_mul(u64::from(request.limit)),
            ),
            PageMode::After(cursor) => {
                if cursor.order != request.order {
                    return Err(ServiceError::CursorOrderMismatch);
                }
                Start::AfterSeq(cursor.seq)
            }
        };
        let range = EventRange {
            order: request.order,
            start,
            limit: request.limit,
        };
        let page = self
            .repos
            .events
            .page(id, range)
            .await
            .map_err(session_error(id))?;
        let total = page.session.event_count;
        let next_cursor = match page.events.last() {
            Some(last) if page.has_more => Some(Cursor {
                order: request.order,
                seq: last.seq,
            }),
            _ => None,
        };
        Ok(SessionPage {
            total_pages: total.div_ceil(u64::from(request.limit)),
            page: match request.mode {
                PageMode::Page(p) => Some(p),
                PageMode::After(_) => None,
            },
            limit: request.limit,
            has_more: page.has_more,
            next_cursor,
            events: page.events,
            session: page.session.as_of(Timestamp::now()),
        })
    }

    /// Events from after `after_seq` to the last one stored when the export began, in `seq`
    /// order, `chunk` at a time: the caller streams each chunk out before asking for the next,
    /// so memory stays bounded however long the session is. `Ok(None)` once everything is sent.
    pub async fn export_chunk(
        &self,
        id: &SessionId,
        after_seq: u64,
        up_to_seq: Option<u64>,
        chunk: u32,
    ) -> Result<Option<(Vec<Event>, u64)>, ServiceError> {
        let range = EventRange {
            order: Order::Asc,
            start: Start::AfterSeq(after_seq),
            limit: chunk,
        };
        let page = self
            .repos
            .events
            .page(id, range)
            .await
            .map_err(session_error(id))?;
        let last = up_to_seq.unwrap_or(page.session.event_count);
        let events: Vec<Event> = page.events.into_iter().filter(|e| e.seq <= last).collect();
        if events.is_empty() {
            return Ok(None);
        }
        Ok(Some((events, last)))
    }

    /// Sessions matching `request`, examining at most [`MAX_LIST_CANDIDATES`] of them.
    pub async fn list(&self, request: ListRequest) -> Result<SessionList, ServiceError> {
        if let Some(cursor) = &request.after
            && cursor.order != request.order
        {
            return Err(ServiceError::CursorOrderMismatch);
        }
        let now = Timestamp::now();
        let filtered = request.ended_reason.is_some()
            || !request.metadata.is_empty()
            || !request.statuses.is_empty();
        let wanted = request.limit as usize + 1;
        let mut position = request
            .after
            .as_ref()
            .map(|c| (c.started_at, c.session_id.clone()));
        let mut matched: Vec<Session> = Vec::with_capacity(wanted);
        let mut examined = 0;
        let mut exhausted = false;
        while matched.len() < wanted && examined < MAX_LIST_CANDIDATES {
            let chunk = if filtered { 100 } else { wanted };
            let chunk = chunk.min(MAX_LIST_CANDIDATES - examined);
            let scan = SessionScan {
                statuses: request.statuses.clone(),
                started_from: request.started_from,
                started_before: request.started_before,
                order: request.order,
                after: position.clone(),
                limit: chunk as u32,
            };
            let batch = self
                .repos
                .sessions
                .list(&scan)
                .await
                .map_err(ServiceError::Storage)?;
            exhausted = batch.len() < chunk;
            for session in batch {
                examined += 1;
                position = Some((session.started_at, session.session_id.clone()));
                let session = session.as_of(now);
                if matches(&request, &session) {
                    matched.push(session);
                    if matched.len() == wanted {
                        break;
                    }
                }
            }
            if exhausted {
                break;
            }
        }
        let cursor_at = |s: &Session| SessionCursor {
            order: request.order,
            started_at: s.started_at,
            session_id: s.session_id.clone(),
        };
        let (has_more, next_cursor) = if matched.len() == wanted {
            matched.truncate(request.limit as usize);
            (true, matched.last().map(cursor_at))
        } else if exhausted {
            (false, None)
        } else {
            // The candidate budget ran out: go on from the last session examined.
            let cursor = position.map(|(started_at, session_id)| SessionCursor {
                order: request.order,
                started_at,
                session_id,
            });
            (true, cursor)
        };
        Ok(SessionList {
            sessions: matched,
            limit: request.limit,
            has_more,
            next_cursor,
        })
    }

    /// Records the end of up to `limit` sessions whose timers ran out by `now`; returns how many
    /// this call ended (others may have been ended by another instance meanwhile).
    pub async fn sweep(&self, now: Timestamp, limit: u32) -> Result<u64, ServiceError> {
        metrics::counter!("sweeper_runs_total").increment(1);
        let ids = self
            .repos
            .sessions
            .expired(now, limit)
            .await
            .map_err(ServiceError::Storage)?;
        let mut ended = 0;
        for id in ids {
            match expire(&self.repos, &self.hub, &id, now).await {
                Ok(true) => ended += 1,
                Ok(false) | Err(RepoError::NotFound | RepoError::Deleted) => {}
                Err(e) => return Err(ServiceError::Storage(e)),
            }
        }
        metrics::counter!("sweeper_sessions_ended_total").increment(ended);
        Ok(ended)
    }

    /// Erases up to `limit` sessions that ended more than the retention ago (if retention is
    /// on), then removes events of erased sessions (up to `max_events`) and expired tombstones.
    /// Returns whether more work is waiting.
    pub async fn maintain(
        &self,
        now: Timestamp,
        limit: u32,
        max_events: u64,
    ) -> Result<bool, ServiceError> {
        let mut more = false;
        if self.lifecycle.retention_seconds > 0 {
            let cutoff = now.minus_seconds(self.lifecycle.retention_seconds);
            let ids = self
                .repos
                .sessions
                .ended_before(cutoff, limit)
                .await
                .map_err(ServiceError::Storage)?;
            more |= ids.len() == limit as usize;
            for id in ids {
                match self.repos.sessions.delete(&id, now).await {
                    Ok(outcome) if outcome.deleted_now => {
                        metrics::counter!("sessions_erased_total", "cause" => "retention")
                            .increment(1);
                        self.hub.poke(&id);
                    }
                    Ok(_) | Err(RepoError::NotFound) => {}
                    Err(e) => return Err(ServiceError::Storage(e)),
                }
            }
        }
        let tombstones_before = now.minus_seconds(self.lifecycle.tombstone_retention_seconds);
        let purged = self
            .repos
            .sessions
            .purge(max_events, tombstones_before)
            .await
            .map_err(ServiceError::Storage)?;
        metrics::counter!("erased_events_removed_total").increment(purged.events_removed);
        Ok(more || purged.more)
    }

    /// Gives sessions from before timers the server's default timers, counted from now.
    pub async fn adopt_legacy_sessions(&self) -> Result<u64, ServiceError> {
        self.repos
            .sessions
            .adopt_legacy_sessions(self.lifecycle.default_timers, Timestamp::now())
            .await
            .map_err(ServiceError::Storage)
    }

    /// Whether storage answers.
    pub async fn ready(&self) -> Result<(), RepoError> {
        self.repos.sessions.ping().await
    }
}

/// The filters the index cannot apply: the status as of now (a timer may have ended it), the
/// end reason, and metadata values.
fn matches(request: &ListRequest, session: &Session) -> bool {
    (request.statuses.is_empty() || request.statuses.contains(&session.status))
        && request
            .ended_reason
            .as_ref()
            .is_none_or(|r| session.ended_reason.as_ref() == Some(r))
        && request.metadata.iter().all(|(key, value)| {
            session.metadata.as_map().get(key).and_then(|v| v.as_str()) == Some(value.as_str())
        })
}
