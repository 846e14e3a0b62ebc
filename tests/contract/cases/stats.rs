//! Call analytics' counts: for any steps (on the 15-minute grid or off it) and any grouping, a
//! store counts exactly the calls a plain model of them counts, open and ended, after ends,
//! timer ends and erasures; erased calls are never counted.

use session_service::domain::stats::{
    Cells, Dims, Figures, GroupBy, Tally, duration_seconds, figures, step_of,
};
use session_service::domain::{EndReason, Redact};
use session_service::repo::stats::StatsScan;

use super::*;

/// The calls' start: on the 15-minute grid.
const T0: i64 = 1_766_331_000_000;
const MINUTE: i64 = 60_000;

fn at(millis: i64) -> Timestamp {
    Timestamp::from_millis(millis).unwrap()
}

/// One call as the test made it.
struct Call {
    id: String,
    started_at: Timestamp,
    language: &'static str,
    team: Option<&'static str>,
    events: u64,
    /// `(status, reason, ended_at)` once ended.
    end: Option<(Status, Option<&'static str>, Timestamp)>,
    erased: bool,
}

const REASONS: [Option<&str>; 4] = [
    Some("caller_hangup"),
    Some("transferred"),
    None,
    Some("error"),
];

/// Makes 40 calls over three hours, a few events each; ends 30 of them with various reasons
/// and durations (one before it started: a clock skew of the caller's `at`).
async fn calls(repos: &Repositories) -> Vec<Call> {
    let mut made = Vec::new();
    for i in 0..40_i64 {
        let started_at = at(T0 + i * 4 * MINUTE + (i * 7919 % 60_000));
        let language = if i % 3 == 0 { "de-DE" } else { "en-US" };
        let team = match i % 4 {
            0 => Some("a"),
            1 => Some("<b>"),
            2 => None,
            _ => Some("a"),
        };
        let metadata = match (i % 4, team) {
            (3, _) => json!({"team": 5}),
            (_, Some(t)) => json!({"team": t}),
            _ => json!({}),
        };
        let id = format!("call-{i:02}");
        let new = NewSession {
            session_id: sid(&id),
            language: Language::parse(language).unwrap(),
            metadata: JsonObject::parse(metadata).unwrap(),
            started_at,
            timers: Timers::default(),
            redact: None::<Redact>,
        };
        assert!(repos.sessions.create_or_get(new).await.unwrap().created);
        let events = (i % 4) as u64;
        for e in 0..events {
            let mut event = new_event(&id, &format!("e{e}"), json!({"text": "hello"}));
            event.received_at = started_at;
            assert!(matches!(
                repos.events.append(event).await.unwrap(),
                Appended::New(_)
            ));
        }
        let team = if i % 4 == 3 { None } else { team };
        made.push(Call {
            id,
            started_at,
            language,
            team,
            events,
            end: None,
            erased: false,
        });
    }
    for (i, call) in made.iter_mut().enumerate().take(30) {
        let status = if i % 5 == 0 {
            TerminalStatus::Failed
        } else {
            TerminalStatus::Completed
        };
        let reason = REASONS[i % 4];
        let seconds = [61_500, 5_000, 1_800_999, 61_000, 0][i % 5];
        let ended_at = if i == 7 {
            at(call.started_at.millis() - 1_000)
        } else {
            at(call.started_at.millis() + seconds)
        };
        let request = EndRequest {
            status,
            at: ended_at,
            reason: reason.map(|r| EndReason::parse(r).unwrap()),
        };
        let outcome = repos.sessions.end(&sid(&call.id), request).await.unwrap();
        assert!(outcome.ended_now);
        call.end = Some((outcome.session.status, reason, ended_at));
    }
    made
}

/// What the steps hold, counted from the calls themselves.
fn model(calls: &[Call], bounds: &[Timestamp], group_by: Option<&GroupBy>) -> Figures {
    let mut cells = Cells::new(group_by, bounds.len() - 1);
    for call in calls.iter().filter(|c| !c.erased) {
        let Some(step) = step_of(bounds, call.started_at) else {
            continue;
        };
        let (status, reason, tally) = match call.end {
            Some((status, reason, ended_at)) => (
                status,
                reason,
                Tally::ended(duration_seconds(call.started_at, ended_at), 1, call.events),
            ),
            None if call.events > 0 => (Status::Active, None, Tally::open(1, call.events)),
            None => (Status::Initiated, None, Tally::open(1, 0)),
        };
        let dims = Dims {
            status,
            ended_reason: reason.map(str::to_owned),
            language: call.language.to_owned(),
            metadata: match group_by {
                Some(GroupBy::Metadata(_)) => call.team.map(str::to_owned),
                _ => None,
            },
        };
        cells.add(step, &dims, &tally);
    }
    figures(bounds.len() - 1, &cells.into_vec()).unwrap()
}

fn groupings() -> Vec<Option<GroupBy>> {
    vec![
        None,
        Some(GroupBy::Status),
        Some(GroupBy::EndedReason),
        Some(GroupBy::Language),
        Some(GroupBy::Metadata("team".into())),
    ]
}

/// Steps on the grid (hours), off it (edges 7 and 50 minutes in, one at half a second), and
/// one step holding every call.
fn step_sets() -> Vec<Vec<Timestamp>> {
    let hour = 60 * MINUTE;
    vec![
        (0..=3).map(|h| at(T0 + h * hour)).collect(),
        vec![
            at(T0 + 7 * MINUTE),
            at(T0 + 50 * MINUTE),
            at(T0 + 2 * hour + 3 * MINUTE + 500),
            at(T0 + 3 * hour),
        ],
        vec![at(T0 - hour), at(T0 + 4 * hour)],
    ]
}

async fn assert_counts_match(repos: &Repositories, calls: &[Call]) {
    for bounds in step_sets() {
        for group_by in groupings() {
            let scan = StatsScan {
                bounds: bounds.clone(),
                group_by: group_by.clone(),
            };
            let cells = repos.stats.tally(&scan).await.unwrap();
            let counted = figures(bounds.len() - 1, &cells).unwrap();
            assert_eq!(
                counted,
                model(calls, &bounds, group_by.as_ref()),
                "steps {bounds:?}, grouped by {group_by:?}"
            );
        }
    }
}

backend_test! { async fn every_step_and_grouping_counts_exactly_the_calls(s: StoreCtx) {
    let calls = calls(&s.repos).await;
    assert_counts_match(&s.repos, &calls).await;
    let all = step_sets().pop().unwrap();
    let whole = figures(1, &s.repos.stats.tally(&StatsScan { bounds: all, group_by: None })
        .await.unwrap()).unwrap();
    assert_eq!((whole.totals.calls, whole.totals.ended), (40, 30));
    assert_eq!(whole.totals.events, (0..40).map(|i| i % 4).sum::<u64>());
    assert_eq!(s.repos.stats.active_now().await.unwrap(), 10);
}}

backend_test! { async fn erased_calls_are_not_counted_whether_ended_or_open(s: StoreCtx) {
    let mut calls = calls(&s.repos).await;
    let now = at(T0 + 10 * 60 * MINUTE);
    for i in [0, 3, 7, 12, 31, 38] {
        let outcome = s.repos.sessions.delete(&sid(&calls[i].id), now).await.unwrap();
        assert!(outcome.deleted_now);
        calls[i].erased = true;
    }
    assert_counts_match(&s.repos, &calls).await;
    assert_eq!(s.repos.stats.active_now().await.unwrap(), 8);
    // Ending an erased call, or ending a call again, counts nothing.
    let again = s.repos.sessions.end(&sid(&calls[1].id), end_as(TerminalStatus::Failed, now)).await.unwrap();
    assert!(!again.ended_now);
    assert_counts_match(&s.repos, &calls).await;
}}

backend_test! { async fn a_timer_end_is_counted_like_any_other(s: StoreCtx) {
    let started_at = at(T0);
    let new = NewSession {
        started_at,
        timers: Timers { inactivity_seconds: 0, max_duration_seconds: 90 },
        ..new_session("timed")
    };
    s.repos.sessions.create_or_get(new).await.unwrap();
    let ended = s.repos.sessions.expire(&sid("timed"), at(T0 + 10 * MINUTE)).await.unwrap();
    assert!(ended.ended_now);
    let bounds = vec![at(T0), at(T0 + 60 * MINUTE)];
    let cells = s.repos.stats.tally(&StatsScan { bounds, group_by: Some(GroupBy::EndedReason) })
        .await.unwrap();
    let f = figures(1, &cells).unwrap();
    assert_eq!(f.groups.len(), 1);
    assert_eq!(f.groups[0].0.as_deref(), Some("max_duration_exceeded"));
    let durations = f.totals.durations.unwrap();
    assert_eq!((f.totals.ended, durations.max), (1, 90));
    assert_eq!(s.repos.stats.active_now().await.unwrap(), 0);
}}
