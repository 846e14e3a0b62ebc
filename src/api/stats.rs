//! `GET /stats`: calls counted per hour or day of a time zone, with duration percentiles.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{AppError, FieldError, Problem};
use super::{AppState, openapi};
use crate::domain::Timestamp;
use crate::domain::stats::{GroupBy, Percentiles, Step, Summary, Zone};
use crate::service::{StatsAnswer, StatsRequest};

/// The range `GET /stats` covers when `from` is not given: this long before `to`.
const DEFAULT_RANGE_SECONDS: u64 = 7 * 24 * 3600;

/// Durations of the ended calls, in whole seconds (each call's `endedAt − startedAt`,
/// truncated): exact nearest-rank percentiles of those whole seconds.
#[derive(Serialize, ToSchema)]
#[schema(as = DurationSeconds)]
pub struct DurationsBody {
    #[schema(example = 61)]
    p50: u64,
    #[schema(example = 180)]
    p90: u64,
    #[schema(example = 301)]
    p99: u64,
    #[schema(example = 301)]
    max: u64,
}

impl From<Percentiles> for DurationsBody {
    fn from(p: Percentiles) -> Self {
        DurationsBody {
            p50: p.p50,
            p90: p.p90,
            p99: p.p99,
            max: p.max,
        }
    }
}

/// The events stored in the calls.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = StatsEvents)]
pub struct EventsBody {
    #[schema(example = 140)]
    total: u64,
    /// `total / calls`, rounded to two decimals; 0 without calls.
    #[schema(example = 11.67)]
    per_call: f64,
}

/// The figures of a set of calls.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = StatsFigures)]
pub struct FiguresBody {
    /// Calls started (erased calls are not counted).
    #[schema(example = 12)]
    calls: u64,
    /// Of those, the calls that have ended (`completed` or `failed`).
    #[schema(example = 11)]
    ended: u64,
    /// `null` when no call ended.
    duration_seconds: Option<DurationsBody>,
    events: EventsBody,
}

impl From<&Summary> for FiguresBody {
    fn from(s: &Summary) -> Self {
        FiguresBody {
            calls: s.calls,
            ended: s.ended,
            duration_seconds: s.durations.map(DurationsBody::from),
            events: EventsBody {
                total: s.events,
                per_call: s.events_per_call,
            },
        }
    }
}

/// The calls of one time step (and one group).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = StatsBucket)]
pub struct BucketBody<'a> {
    /// The step's start, with the zone's UTC offset at that instant. The first and last steps
    /// count only the calls started within `[from, to)`.
    #[schema(example = "2026-11-27T00:00:00+01:00")]
    start: &'a str,
    /// The group's value; `null` without `groupBy`, and for calls without one (an open call's
    /// `endedReason`, a metadata key absent or not a string).
    #[schema(example = "caller_hangup")]
    group: Option<&'a str>,
    #[serde(flatten)]
    figures: FiguresBody,
}

/// One group's figures over the whole range.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = StatsGroup)]
pub struct GroupBody<'a> {
    #[schema(example = "caller_hangup")]
    group: Option<&'a str>,
    #[serde(flatten)]
    figures: FiguresBody,
}

/// Calls per time step.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Stats)]
pub struct StatsBody<'a> {
    #[schema(value_type = String, format = DateTime, example = "2026-11-27T00:00:00.000Z")]
    from: Timestamp,
    #[schema(value_type = String, format = DateTime, example = "2026-12-04T00:00:00.000Z")]
    to: Timestamp,
    /// `hour` or `day`.
    #[schema(example = "day")]
    bucket: &'static str,
    /// The zone's canonical IANA name.
    #[schema(example = "Europe/Paris")]
    tz: &'a str,
    #[schema(example = "endedReason")]
    group_by: Option<String>,
    /// Every step from the one holding `from` to the one holding the last instant before `to`,
    /// steps without calls included; with `groupBy`, each step once per group seen in the range
    /// (groups by name, `null` last).
    buckets: Vec<BucketBody<'a>>,
    /// Every call of the range.
    totals: FiguresBody,
    /// Each group over the whole range, in the buckets' order (one `null` group without
    /// `groupBy`).
    groups: Vec<GroupBody<'a>>,
    /// Calls open now (`initiated` or `active` as recorded), whenever they started.
    #[schema(example = 3)]
    active_now: u64,
}

impl<'a> From<&'a StatsAnswer> for StatsBody<'a> {
    fn from(answer: &'a StatsAnswer) -> Self {
        let request = &answer.request;
        StatsBody {
            from: request.from,
            to: request.to,
            bucket: request.step.as_str(),
            tz: request.zone.name(),
            group_by: request.group_by.as_ref().map(GroupBy::text),
            buckets: answer
                .figures
                .buckets
                .iter()
                .map(|b| BucketBody {
                    start: &answer.steps[b.step].start,
                    group: b.group.as_deref(),
                    figures: FiguresBody::from(&b.summary),
                })
                .collect(),
            totals: FiguresBody::from(&answer.figures.totals),
            groups: answer
                .figures
                .groups
                .iter()
                .map(|(group, summary)| GroupBody {
                    group: group.as_deref(),
                    figures: FiguresBody::from(summary),
                })
                .collect(),
            active_now: answer.active_now,
        }
    }
}

#[utoipa::path(
    get,
    path = "/stats",
    tag = "stats",
    summary = "Count calls per hour or day, with duration percentiles",
    description = "The calls started in `[from, to)`, counted per hour or day of the time zone `tz` (its own calendar: a day is 23 or 25 hours when its clocks change), optionally per group. Erased calls are not counted. Counts are exact; duration percentiles are exact over whole seconds. At most 1,000 buckets (time steps × groups) per answer.",
    params(
        ("from" = Option<String>, Query, format = DateTime, description = "Calls started at or after this RFC 3339 time (default: 7 days before `to`)", example = "2026-11-27T00:00:00Z"),
        ("to" = Option<String>, Query, format = DateTime, description = "Calls started before this RFC 3339 time (default: now)", example = "2026-12-04T00:00:00Z"),
        ("bucket" = Option<String>, Query, description = "`day` (default) or `hour`, of the zone's calendar"),
        ("tz" = Option<String>, Query, description = "An IANA time zone name (default `UTC`)", example = "Europe/Paris"),
        ("groupBy" = Option<String>, Query, description = "`status`, `endedReason`, `language` or `metadata.KEY` (KEY: 1–64 characters of `A-Z a-z 0-9 _ -`; a string value is the group, any other value or none is `null`)"),
    ),
    responses(
        (status = 200, description = "The calls per step", body = StatsBody),
        (status = 400, description = "An invalid parameter, `from` not before `to`, or more than 1,000 buckets (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
pub async fn stats(
    State(state): State<AppState>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, AppError> {
    let request = stats_request(raw_query.as_deref(), Timestamp::now())?;
    let answer = state.service.stats(request).await?;
    Ok(Json(StatsBody::from(&answer)).into_response())
}

/// Reads the parameters, reporting every problem at once; `now` is `to`'s default.
fn stats_request(raw: Option<&str>, now: Timestamp) -> Result<StatsRequest, AppError> {
    let mut errors = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let (mut from, mut to, mut step, mut zone, mut group_by) = (None, None, None, None, None);
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let (key, value) = (key.into_owned(), value.into_owned());
        if seen.contains(&key) {
            errors.push(FieldError::new(key, "is given more than once"));
            continue;
        }
        seen.push(key.clone());
        let taken = match key.as_str() {
            "from" => Timestamp::parse(&value).map(|t| from = Some(t)),
            "to" => Timestamp::parse(&value).map(|t| to = Some(t)),
            "bucket" => Step::parse(&value).map(|s| step = Some(s)),
            "tz" => Zone::parse(&value).map(|z| zone = Some(z)),
            "groupBy" => GroupBy::parse(&value).map(|g| group_by = Some(g)),
            _ => Err(crate::domain::Invalid::new(
                "is not a known query parameter",
            )),
        };
        if let Err(invalid) = taken {
            errors.push(FieldError::new(key, invalid.0));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let to = to.unwrap_or(now);
    Ok(StatsRequest {
        from: from.unwrap_or_else(|| to.minus_seconds(DEFAULT_RANGE_SECONDS)),
        to,
        step: step.unwrap_or(Step::Day),
        zone: zone.unwrap_or_else(Zone::utc),
        group_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse("2026-12-04T12:00:00Z").unwrap()
    }

    fn fields(raw: &str) -> Vec<String> {
        match stats_request(Some(raw), now()) {
            Err(AppError::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn every_bad_parameter_is_named_at_once() {
        assert_eq!(
            fields("from=yesterday&to=2026-01-01&bucket=week&tz=Mars%2FBase&groupBy=colour&x=1"),
            ["from", "to", "bucket", "tz", "groupBy", "x"]
        );
        assert_eq!(fields("tz=UTC&tz=UTC"), ["tz"]);
    }

    #[test]
    fn defaults_are_the_last_seven_days_by_utc_day() {
        let Ok(request) = stats_request(None, now()) else {
            panic!("refused");
        };
        assert_eq!(request.to, now());
        assert_eq!(
            request.from,
            Timestamp::parse("2026-11-27T12:00:00Z").unwrap()
        );
        assert_eq!((request.step, request.zone.name()), (Step::Day, "UTC"));
        assert_eq!(request.group_by, None);
    }
}
