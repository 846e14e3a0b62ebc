//! Reads: one event, a session with a page of its events, an export's chunks, and listing with
//! the filters storage cannot apply.

use super::{
    Cursor, MAX_LIST_CANDIDATES, ServiceError, SessionCursor, SessionService, session_error,
};
use crate::domain::{EndReason, Event, EventId, Order, Session, SessionId, Status, Timestamp};
use crate::repo::{EventPage, EventRange, RepoError, SessionScan, Start};

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

impl SessionService {
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
        let page = self.events_page(id, range).await?;
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
        let page = self.events_page(id, range).await?;
        let last = up_to_seq.unwrap_or(page.session.event_count);
        let events: Vec<Event> = page.events.into_iter().filter(|e| e.seq <= last).collect();
        if events.is_empty() {
            return Ok(None);
        }
        Ok(Some((events, last)))
    }

    /// One page of the session's events, with the session.
    async fn events_page(
        &self,
        id: &SessionId,
        range: EventRange,
    ) -> Result<EventPage, ServiceError> {
        self.repos
            .events
            .page(id, range)
            .await
            .map_err(session_error(id))
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
}

/// The filters the index cannot apply: the status as of now (a timer may have ended it), the
/// end reason, and metadata values.
fn matches(request: &ListRequest, session: &Session) -> bool {
    (request.statuses.is_empty() || request.statuses.contains(&session.status))
        && request
            .ended_reason
            .as_ref()
            .is_none_or(|r| session.ended_reason.as_ref() == Some(r))
        && metadata_matches(&request.metadata, session)
}

/// Whether each of the session's top-level metadata `keys` is the string given (what
/// `metadata.KEY=VALUE` filters ask, in listing and in search).
pub(super) fn metadata_matches(wanted: &[(String, String)], session: &Session) -> bool {
    wanted.iter().all(|(key, value)| {
        session.metadata.as_map().get(key).and_then(|v| v.as_str()) == Some(value.as_str())
    })
}
