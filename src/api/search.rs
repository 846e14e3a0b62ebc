//! `GET /search`: find events by what was said.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::dto::EventKind;
use super::error::{AppError, FieldError, Problem};
use super::list_query::{SessionFilters, not_a_cursor, page_limit};
use super::{AppState, openapi};
use crate::domain::search::TextQuery;
use crate::domain::{EventType, Language, SessionId, Timestamp};
use crate::repo::search::SearchOrder;
use crate::service::{DEFAULT_PAGE_LIMIT, SearchCursor, SearchRequest, SearchResults};

/// One event whose text matched.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SearchHit)]
pub struct HitBody<'a> {
    #[schema(example = "call-42")]
    session_id: &'a str,
    #[schema(example = "utt-7")]
    event_id: &'a str,
    #[schema(minimum = 1)]
    seq: u64,
    #[serde(rename = "type")]
    event_type: EventKind,
    #[schema(value_type = String, format = DateTime, example = "2025-12-21T15:30:15.123Z")]
    timestamp: Timestamp,
    /// The event's `payload.text`, as stored.
    #[schema(example = "I would like a refund, please")]
    text: &'a str,
    /// Where the query matched in `text`: `[start, end)` pairs of offsets in UTF-16 code units
    /// (JavaScript's `text.slice(start, end)`), in order, not overlapping.
    #[schema(value_type = Vec<Vec<u32>>, example = json!([[15, 21]]))]
    highlights: &'a [[u32; 2]],
}

/// One page of hits.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SearchResults)]
pub struct ResultsBody<'a> {
    hits: Vec<HitBody<'a>>,
    /// Pass as `after` (with the same query, filters and `order`) for the next page; `null` once every
    /// hit was returned.
    next_cursor: Option<String>,
}

impl<'a> From<&'a SearchResults> for ResultsBody<'a> {
    fn from(results: &'a SearchResults) -> Self {
        ResultsBody {
            hits: results
                .hits
                .iter()
                .map(|hit| HitBody {
                    session_id: hit.event.session_id.as_str(),
                    event_id: hit.event.event_id.as_str(),
                    seq: hit.event.seq,
                    event_type: hit.event.event_type.into(),
                    timestamp: hit.event.timestamp,
                    text: &hit.text,
                    highlights: &hit.highlights,
                })
                .collect(),
            next_cursor: results.next_cursor.map(|c| c.encode()),
        }
    }
}

#[utoipa::path(
    get,
    path = "/search",
    tag = "search",
    summary = "Find events by what was said",
    description = "Events whose text matches `q`. What is searched: the `text` string of `user_speech` and `bot_speech` payloads (nothing else). `q`: words (all must match, any order), `\"an exact phrase\"`, `prefix*` (at least 2 characters before `*`), `-excluded` (a word or a phrase); case- and accent-insensitive; at most 256 characters and 16 words, phrases and prefixes. A word with punctuation inside (`don't`) is the phrase of its parts.\n\nOrder: `relevance` (default; the best 1,000 matches, then paging stops: use `newest` to walk every hit) or `newest` (most recently stored first). One request examines at most 2,000 candidates: when filters leave most out, a page may come back short, even empty, with a `nextCursor` to go on. An event is found as soon as its append answered; an erased session's events never are.",
    params(
        ("q" = String, Query, description = "What to find (see above)", example = "refund -\"thank you\""),
        ("type" = Option<String>, Query, description = "`user_speech` or `bot_speech`: only what the caller or the bot said"),
        ("sessionId" = Option<String>, Query, description = "Only this call"),
        ("status" = Option<String>, Query, description = "Comma-separated statuses of the call (as of now)"),
        ("language" = Option<String>, Query, description = "Only calls in this language", example = "en-US"),
        ("startedFrom" = Option<String>, Query, format = DateTime, description = "Calls started at or after this RFC 3339 time"),
        ("startedBefore" = Option<String>, Query, format = DateTime, description = "Calls started before this RFC 3339 time"),
        ("metadata.KEY" = Option<String>, Query, description = "Calls whose top-level metadata KEY equals this string (up to 5, as on GET /sessions)"),
        ("order" = Option<String>, Query, description = "`relevance` (default) or `newest`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Hits per page (default 20)"),
        ("after" = Option<String>, Query, description = "A `nextCursor` from a previous page of the same search (the same parameters but `limit`; from another search, 400)"),
    ),
    responses(
        (status = 200, description = "One page of hits", body = ResultsBody),
        (status = 400, description = "An empty, unparseable or too long query, or other invalid parameters (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
pub async fn search(
    State(state): State<AppState>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, AppError> {
    let request = search_request(raw_query.as_deref())?;
    let results = state.service.search(request).await?;
    Ok(Json(ResultsBody::from(&results)).into_response())
}

/// Reads the search parameters, reporting every problem at once.
fn search_request(raw: Option<&str>) -> Result<SearchRequest, AppError> {
    let mut errors = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut filters = SessionFilters::default();
    let mut query = None;
    let (mut event_type, mut session_id, mut language) = (None, None, None);
    let (mut order, mut limit, mut after) = (None, None, None);
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let (key, value) = (key.into_owned(), value.into_owned());
        if seen.contains(&key) {
            errors.push(FieldError::new(key, "is given more than once"));
            continue;
        }
        seen.push(key.clone());
        let taken: Result<(), String> = match key.as_str() {
            "q" => TextQuery::parse(&value)
                .map(|q| query = Some(q))
                .map_err(|e| e.0),
            "type" => EventType::parse(&value)
                .ok()
                .filter(|t| crate::domain::search::is_searched(*t))
                .map(|t| event_type = Some(t))
                .ok_or_else(|| "must be \"user_speech\" or \"bot_speech\"".into()),
            "sessionId" => SessionId::parse(value)
                .map(|id| session_id = Some(id))
                .map_err(|e| e.0),
            "language" => Language::parse(value)
                .map(|l| language = Some(l))
                .map_err(|e| e.0),
            "order" => match value.as_str() {
                "relevance" => Ok(SearchOrder::Relevance),
                "newest" => Ok(SearchOrder::Newest),
                _ => Err("must be \"relevance\" or \"newest\"".into()),
            }
            .map(|o| order = Some(o)),
            "limit" => page_limit(&value).map(|n| limit = Some(n)),
            "after" => SearchCursor::decode(&value)
                .map(|c| after = Some(c))
                .ok_or_else(not_a_cursor),
            other => filters
                .take(other, &value)
                .unwrap_or_else(|| Err("is not a known query parameter".into())),
        };
        if let Err(message) = taken {
            errors.push(FieldError::new(key, message));
        }
    }
    if !seen.iter().any(|k| k == "q") {
        errors.push(FieldError::new("q", "is required: what to find"));
    }
    filters.check(&mut errors);
    let Some(query) = query.filter(|_| errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    Ok(SearchRequest {
        query,
        event_type,
        session_id,
        statuses: filters.statuses,
        language,
        started_from: filters.started_from,
        started_before: filters.started_before,
        metadata: filters.metadata,
        order: order.unwrap_or(SearchOrder::Relevance),
        limit: limit.unwrap_or(DEFAULT_PAGE_LIMIT),
        after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(raw: &str) -> Vec<String> {
        match search_request(Some(raw)) {
            Err(AppError::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn every_bad_parameter_is_named_at_once() {
        assert_eq!(fields(""), ["q"]);
        assert_eq!(fields("q=%22open"), ["q"]);
        assert_eq!(
            fields("q=a&type=system&order=best&limit=0&after=x&language=&bogus=1&q=b"),
            ["type", "order", "limit", "after", "language", "bogus", "q"]
        );
        assert_eq!(
            fields("q=refund&startedFrom=2026-01-02T00:00:00Z&startedBefore=2026-01-01T00:00:00Z"),
            ["startedBefore"]
        );
    }

    #[test]
    fn a_good_request_defaults_to_relevance_and_twenty_hits() {
        let request = match search_request(Some("q=refund+-thanks&metadata.team=a&status=active")) {
            Ok(r) => r,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(request.order, SearchOrder::Relevance);
        assert_eq!(request.limit, DEFAULT_PAGE_LIMIT);
        assert_eq!(request.metadata, [("team".to_owned(), "a".to_owned())]);
        assert_eq!(request.query.excluded.len(), 1);
    }
}
