//! The query string of `GET /sessions`: filters, order, limit and cursor.

use utoipa::IntoParams;

use super::error::{AppError, FieldError};
use super::query::SortOrder;
use crate::domain::{EndReason, Order, Status, Timestamp};
use crate::service::{DEFAULT_PAGE_LIMIT, ListRequest, MAX_PAGE_LIMIT, SessionCursor};

/// At most this many `metadata.KEY=VALUE` filters per request.
pub const MAX_METADATA_FILTERS: usize = 5;

/// The list parameters. `metadata.KEY=VALUE` filters (up to 5; KEY 1–64 characters of
/// `A-Z a-z 0-9 _ -`) match sessions whose top-level metadata key equals that string.
/// (Only the description of the parameters, for the OpenAPI document: [`list_request`] reads
/// them.)
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ListQuery {
    /// Comma-separated statuses, e.g. `active,initiated` (default: all)
    #[param(value_type = Option<String>, pattern = "^(initiated|active|completed|failed)(,(initiated|active|completed|failed))*$")]
    pub status: Option<Vec<Status>>,
    /// Sessions started at or after this RFC 3339 time
    #[param(value_type = Option<String>, format = DateTime)]
    pub started_from: Option<Timestamp>,
    /// Sessions started before this RFC 3339 time
    #[param(value_type = Option<String>, format = DateTime)]
    pub started_before: Option<Timestamp>,
    /// Sessions that ended with this reason
    #[param(value_type = Option<String>, pattern = "^[a-z0-9_]{1,64}$")]
    pub ended_reason: Option<EndReason>,
    /// `desc` (default, newest first) or `asc`, by `startedAt` then `sessionId`
    pub order: Option<SortOrder>,
    /// Sessions per page (default 20)
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// A `nextCursor` from a previous page read in the same order
    #[param(value_type = Option<String>)]
    pub after: Option<SessionCursor>,
}

/// The session filters `GET /sessions` and `GET /search` share: `status`, `startedFrom`,
/// `startedBefore` and `metadata.KEY`.
#[derive(Debug, Default)]
pub struct SessionFilters {
    /// Sorted, without repeats.
    pub statuses: Vec<Status>,
    pub started_from: Option<Timestamp>,
    pub started_before: Option<Timestamp>,
    pub metadata: Vec<(String, String)>,
}

impl SessionFilters {
    /// Takes `key=value` if it is one of these filters: `None` if it is not, else whether its
    /// value was valid (and why not).
    pub fn take(&mut self, key: &str, value: &str) -> Option<Result<(), String>> {
        let taken = match key {
            "status" => value
                .split(',')
                .map(str::parse::<Status>)
                .collect::<Result<Vec<Status>, _>>()
                .map(|mut statuses| {
                    statuses.sort_by_key(|s| s.as_str());
                    statuses.dedup();
                    self.statuses = statuses;
                })
                .map_err(|_| {
                    "must be a comma-separated list of initiated, active, completed, failed".into()
                }),
            "startedFrom" => Timestamp::parse(value)
                .map(|t| self.started_from = Some(t))
                .map_err(|e| e.0),
            "startedBefore" => Timestamp::parse(value)
                .map(|t| self.started_before = Some(t))
                .map_err(|e| e.0),
            other => match other.strip_prefix("metadata.") {
                Some(meta_key) if crate::domain::is_metadata_key(meta_key) => {
                    self.metadata.push((meta_key.to_owned(), value.to_owned()));
                    Ok(())
                }
                Some(_) => {
                    Err("the metadata key must be 1 to 64 characters of A-Z a-z 0-9 _ -".into())
                }
                None => return None,
            },
        };
        Some(taken)
    }

    /// What is wrong with the filters together.
    pub fn check(&self, errors: &mut Vec<FieldError>) {
        if self.metadata.len() > MAX_METADATA_FILTERS {
            errors.push(FieldError::new(
                "metadata",
                format!("at most {MAX_METADATA_FILTERS} metadata filters"),
            ));
        }
        if let (Some(from), Some(before)) = (self.started_from, self.started_before)
            && from >= before
        {
            errors.push(FieldError::new(
                "startedBefore",
                "must be later than startedFrom",
            ));
        }
    }
}

/// Why an `after` is refused.
pub fn not_a_cursor() -> String {
    "is not a cursor this service issued; pass a nextCursor value unchanged".into()
}

/// A page size: a whole number from 1 to [`MAX_PAGE_LIMIT`], digits only.
pub fn page_limit(value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) && value.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(n)
        }
        _ => Err(format!("must be a whole number from 1 to {MAX_PAGE_LIMIT}")),
    }
}

/// Reads the list parameters, reporting every problem at once.
pub fn list_request(raw: Option<&str>) -> Result<ListRequest, AppError> {
    let mut errors = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut filters = SessionFilters::default();
    let (mut ended_reason, mut order, mut limit, mut after) = (None, None, None, None);
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let (key, value) = (key.into_owned(), value.into_owned());
        if seen.contains(&key) {
            errors.push(FieldError::new(key, "is given more than once"));
            continue;
        }
        seen.push(key.clone());
        let taken = match key.as_str() {
            "endedReason" => EndReason::parse(value)
                .map(|r| ended_reason = Some(r))
                .map_err(|e| e.0),
            "order" => match value.as_str() {
                "asc" => Ok(Order::Asc),
                "desc" => Ok(Order::Desc),
                _ => Err("must be \"asc\" or \"desc\"".into()),
            }
            .map(|o| order = Some(o)),
            "limit" => page_limit(&value).map(|n| limit = Some(n)),
            "after" => SessionCursor::decode(&value)
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
    filters.check(&mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    Ok(ListRequest {
        statuses: filters.statuses,
        started_from: filters.started_from,
        started_before: filters.started_before,
        ended_reason,
        metadata: filters.metadata,
        order: order.unwrap_or(Order::Desc),
        limit: limit.unwrap_or(DEFAULT_PAGE_LIMIT),
        after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_default_to_newest_first() {
        let r = list_request(Some(
            "status=active,initiated&metadata.user=u-17&startedFrom=2026-01-01T00:00:00Z",
        ))
        .unwrap();
        assert_eq!(r.order, Order::Desc);
        assert_eq!(r.statuses, [Status::Active, Status::Initiated]);
        assert_eq!(r.metadata, [("user".to_owned(), "u-17".to_owned())]);
        assert_eq!(r.limit, 20);
    }

    #[test]
    fn every_bad_parameter_is_reported_at_once() {
        let Err(AppError::Validation(errors)) = list_request(Some(
            "status=gone&limit=0&metadata.a%20b=1&bogus=1&order=up&order=asc&endedReason=X",
        )) else {
            panic!("expected a validation error");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "status",
                "limit",
                "metadata.a b",
                "bogus",
                "order",
                "order",
                "endedReason"
            ]
        );
    }

    #[test]
    fn more_than_five_metadata_filters_are_refused() {
        let q = (0..6)
            .map(|i| format!("metadata.k{i}=v"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(list_request(Some(&q)).is_err());
    }
}
