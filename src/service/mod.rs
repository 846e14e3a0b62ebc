//! The rules of the service: idempotency outcomes, state transitions and pagination. Handlers call
//! these with validated domain types; atomicity itself lives in the repositories.

mod cursor;
mod error;

use crate::domain::{
    Event, EventId, NewEvent, NewSession, Order, Session, SessionId, TerminalStatus, Timestamp,
};
use crate::repo::{Appended, EventRange, RepoError, Repositories, Start};

pub use cursor::Cursor;
pub use error::ServiceError;

/// Page sizes accepted by the read endpoint.
pub const MAX_PAGE_LIMIT: u32 = 100;
pub const DEFAULT_PAGE_LIMIT: u32 = 20;

#[derive(Clone)]
pub struct SessionService {
    repos: Repositories,
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

/// A repository error, with `NotFound` meaning the session `id` does not exist.
fn session_error(id: &SessionId) -> impl FnOnce(RepoError) -> ServiceError + '_ {
    move |e| match e {
        RepoError::NotFound => ServiceError::SessionNotFound(id.clone()),
        other => ServiceError::Storage(other),
    }
}

impl SessionService {
    pub fn new(repos: Repositories) -> Self {
        Self { repos }
    }

    pub fn repositories(&self) -> &Repositories {
        &self.repos
    }

    /// Creates the session, or returns the stored one unchanged if its id is taken.
    pub async fn create(&self, new: NewSession) -> Result<(Session, Written), ServiceError> {
        let outcome = self
            .repos
            .sessions
            .create_or_get(new)
            .await
            .map_err(|e| match e {
                RepoError::NotFound => ServiceError::contract_broken("create returned not found"),
                other => ServiceError::Storage(other),
            })?;
        let written = if outcome.created {
            metrics::counter!("sessions_created_total").increment(1);
            Written::Created
        } else {
            Written::Existing
        };
        Ok((outcome.session, written))
    }

    /// Adds an event. A retry with the same content gets the stored event; the same `eventId` with
    /// other content is a conflict, and so is a new event for a session that has ended.
    pub async fn add_event(&self, new: NewEvent) -> Result<(Event, Written), ServiceError> {
        let appended = self
            .repos
            .events
            .append(new.clone())
            .await
            .map_err(session_error(&new.session_id))?;
        let (refused, reason) = match appended {
            Appended::New(event) => {
                metrics::counter!("events_stored_total").increment(1);
                return Ok((event, Written::Created));
            }
            Appended::Existing(event) if new.matches(&event) => {
                metrics::counter!("event_replays_total").increment(1);
                return Ok((event, Written::Existing));
            }
            Appended::Existing(_) => (
                ServiceError::EventIdConflict {
                    session_id: new.session_id,
                    event_id: new.event_id,
                },
                "event_id_conflict",
            ),
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

    /// Ends the session with `status`. Repeating it returns the same session; asking for the other
    /// terminal status than the stored one is a conflict.
    pub async fn end(
        &self,
        id: &SessionId,
        status: TerminalStatus,
    ) -> Result<Session, ServiceError> {
        let outcome = self
            .repos
            .sessions
            .end(id, status, Timestamp::now())
            .await
            .map_err(session_error(id))?;
        let session = outcome.session;
        if outcome.ended_now {
            metrics::counter!("sessions_ended_total", "status" => session.status.as_str())
                .increment(1);
        }
        if session.status != status.status() {
            return Err(ServiceError::SessionAlreadyEnded {
                session_id: id.clone(),
                status: session.status,
            });
        }
        Ok(session)
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
            session: page.session,
        })
    }

    /// Whether storage answers.
    pub async fn ready(&self) -> Result<(), RepoError> {
        self.repos.sessions.ping().await
    }
}
