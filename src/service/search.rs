//! Transcript search (`GET /search`): the store's index finds candidates; here each is checked
//! against the query and the session filters, and its highlights are found.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::read::metadata_matches;
use super::{ServiceError, SessionService};
use crate::domain::search::{TextQuery, searchable_text, terms};
use crate::domain::{Event, EventType, Language, Session, SessionId, Status, Timestamp};
use crate::repo::search::{SearchAfter, SearchOrder, SearchScan};

/// The most candidates one search request examines; with selective filters a page may come
/// back short, with a cursor to go on.
pub const MAX_SEARCH_CANDIDATES: usize = 2_000;
/// Candidates read from the store at a time when filters may leave some out.
const CHUNK: u32 = 100;

/// What to find (`GET /search`).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub query: TextQuery,
    pub event_type: Option<EventType>,
    pub session_id: Option<SessionId>,
    /// Empty: every status (as of now: a timer may have ended a call).
    pub statuses: Vec<Status>,
    pub language: Option<Language>,
    /// Sessions started at or after this.
    pub started_from: Option<Timestamp>,
    /// Sessions started before this.
    pub started_before: Option<Timestamp>,
    /// Top-level metadata keys that must equal these strings.
    pub metadata: Vec<(String, String)>,
    pub order: SearchOrder,
    pub limit: u32,
    pub after: Option<SearchCursor>,
}

impl SearchRequest {
    fn accepts(&self, session: &Session) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&session.status))
            && self
                .language
                .as_ref()
                .is_none_or(|l| *l == session.language)
            && self.started_from.is_none_or(|t| session.started_at >= t)
            && self.started_before.is_none_or(|t| session.started_at < t)
            && metadata_matches(&self.metadata, session)
    }
}

/// One event that matched: its text and where the query matched in it (`[start, end)` in
/// UTF-16 code units).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub event: Event,
    pub text: String,
    pub highlights: Vec<[u32; 2]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    /// Where the next page starts; `None` once every hit was returned.
    pub next_cursor: Option<SearchCursor>,
}

/// An opaque position in a search's results: the last candidate examined, and which search it
/// belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchCursor {
    pub order: SearchOrder,
    pub after: SearchAfter,
    /// [`SearchRequest::fingerprint`] of the search that made it: a relevance offset means
    /// nothing to another query, so a cursor is refused by any other search.
    pub search: u32,
}

impl SearchCursor {
    pub fn encode(&self) -> String {
        let search = self.search;
        let text = match self.after {
            SearchAfter::Position(p) => format!("q3.{search:08x}.n.{p}"),
            SearchAfter::Offset(n) => format!("q3.{search:08x}.r.{n}"),
        };
        URL_SAFE_NO_PAD.encode(text)
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        // Older cursors (`q1` before search rows were numbered by change position, `q2` before
        // cursors named their search) are refused, not misread.
        let rest = text.strip_prefix("q3.")?;
        let (search, rest) = rest.split_once('.')?;
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if search.len() != 8 || !search.bytes().all(lower_hex) {
            return None;
        }
        let search = u32::from_str_radix(search, 16).ok()?;
        let (code, number) = rest.split_once('.')?;
        // Only the canonical spelling of the number, so each position has one cursor.
        let canonical = |n: &str| !n.is_empty() && (n == "0" || !n.starts_with('0'));
        if !canonical(number) || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (order, after) = match code {
            "n" => (
                SearchOrder::Newest,
                SearchAfter::Position(number.parse().ok()?),
            ),
            "r" => (
                SearchOrder::Relevance,
                SearchAfter::Offset(number.parse().ok()?),
            ),
            _ => return None,
        };
        Some(SearchCursor {
            order,
            after,
            search,
        })
    }
}

impl SearchRequest {
    /// Names this search: every parameter but `limit` and `after` (the first four bytes of a
    /// SHA-256 of their debug form, which is the same in every instance of one build).
    fn fingerprint(&self) -> u32 {
        use sha2::{Digest, Sha256};
        let named = SearchRequest {
            limit: 0,
            after: None,
            ..self.clone()
        };
        let digest = Sha256::digest(format!("{named:?}").as_bytes());
        u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
    }
}

impl SessionService {
    /// Events whose text matches `request`, examining at most [`MAX_SEARCH_CANDIDATES`].
    pub async fn search(&self, request: SearchRequest) -> Result<SearchResults, ServiceError> {
        let search = request.fingerprint();
        if let Some(cursor) = &request.after {
            if cursor.order != request.order {
                return Err(ServiceError::CursorOrderMismatch);
            }
            if cursor.search != search {
                return Err(ServiceError::CursorSearchMismatch);
            }
        }
        let now = Timestamp::now();
        let wanted = request.limit as usize + 1;
        let mut after = request.after.map(|c| c.after);
        let mut hits: Vec<(SearchHit, SearchAfter)> = Vec::with_capacity(wanted);
        let mut examined = 0;
        let mut exhausted = false;
        while hits.len() < wanted && examined < MAX_SEARCH_CANDIDATES {
            let chunk = (wanted as u32)
                .max(CHUNK)
                .min((MAX_SEARCH_CANDIDATES - examined) as u32);
            let scan = SearchScan {
                query: request.query.clone(),
                event_type: request.event_type,
                session_id: request.session_id.clone(),
                order: request.order,
                after,
                limit: chunk,
            };
            let candidates = self.repos.search.search(&scan).await?;
            exhausted = candidates.len() < chunk as usize;
            for candidate in candidates {
                examined += 1;
                let here = match (request.order, after) {
                    (SearchOrder::Newest, _) => SearchAfter::Position(candidate.position),
                    (SearchOrder::Relevance, Some(SearchAfter::Offset(n))) => {
                        SearchAfter::Offset(n + 1)
                    }
                    (SearchOrder::Relevance, _) => SearchAfter::Offset(1),
                };
                after = Some(here);
                if !request.accepts(&candidate.session.as_of(now)) {
                    continue;
                }
                let Some(hit) = hit(&request.query, candidate.event) else {
                    continue;
                };
                hits.push((hit, here));
                if hits.len() == wanted {
                    break;
                }
            }
            if exhausted {
                break;
            }
        }
        let cursor = |after| SearchCursor {
            order: request.order,
            after,
            search,
        };
        let next_cursor = if hits.len() == wanted {
            hits.truncate(request.limit as usize);
            hits.last().map(|(_, here)| cursor(*here))
        } else if exhausted {
            None
        } else {
            // The candidate budget ran out: go on from the last candidate examined.
            after.map(cursor)
        };
        Ok(SearchResults {
            hits: hits.into_iter().map(|(hit, _)| hit).collect(),
            next_cursor,
        })
    }
}

/// The hit `event` makes for `query`, if its text matches.
fn hit(query: &TextQuery, event: Event) -> Option<SearchHit> {
    let text = searchable_text(event.event_type, &event.payload)?;
    let found = terms(&text);
    if !query.matches(&found) {
        return None;
    }
    Some(SearchHit {
        highlights: query.highlights(&found),
        event,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_cursors_round_trip_and_refuse_foreign_strings() {
        for cursor in [
            SearchCursor {
                order: SearchOrder::Newest,
                after: SearchAfter::Position(u128::MAX),
                search: u32::MAX,
            },
            SearchCursor {
                order: SearchOrder::Relevance,
                after: SearchAfter::Offset(0),
                search: 0,
            },
        ] {
            assert_eq!(SearchCursor::decode(&cursor.encode()), Some(cursor));
        }
        for raw in [
            "q3.0000000a.n.01",
            "q3.0000000a.x.1",
            "q3.0000000a.r.",
            "q3.0000000A.r.1",
            "q3.000000a.r.1",
            "q3.+000000a.r.1",
            "q3.r.1",
            "q2.n.5",
            "q2.r.1",
            "q2.n.01",
            "q2.x.1",
            "q2.r.",
            "q2.r.-1",
            "v1.a.1",
            "q2.r.99999999999",
            "q1.n.5",
            "q1.r.1",
        ] {
            let encoded = URL_SAFE_NO_PAD.encode(raw);
            assert_eq!(SearchCursor::decode(&encoded), None, "{raw}");
        }
        assert_eq!(SearchCursor::decode("!!"), None);
    }
}
