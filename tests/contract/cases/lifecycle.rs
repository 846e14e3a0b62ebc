//! Timers and their expiry in the repository: `expire`, `append` after the deadline, `end` after
//! the deadline, `expired`, and ends with a reason. Sessions start in the past with small timers,
//! and every call is given its own `now`, so nothing here sleeps.

use std::collections::HashSet;

use serde_json::json;
use session_service::domain::{EndReason, NewEvents};
use session_service::repo::{BatchAppended, EndOutcome};

use super::*;

/// When the sessions of this file start.
const T0: i64 = 1_766_331_000_000;

fn at(ms_after_start: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms_after_start).unwrap()
}

fn timed_session(id: &str, inactivity: u32, max_duration: u32) -> NewSession {
    let mut new = new_session(id);
    new.started_at = at(0);
    new.timers = Timers {
        inactivity_seconds: inactivity,
        max_duration_seconds: max_duration,
    };
    new
}

/// `expire` of session `id` at `now`, which must succeed.
async fn expire(repos: &Repositories, id: &str, now: Timestamp) -> EndOutcome {
    repos.sessions.expire(&sid(id), now).await.unwrap()
}

async fn create_timed(repos: &Repositories, id: &str, inactivity: u32, max_duration: u32) {
    let outcome = repos
        .sessions
        .create_or_get(timed_session(id, inactivity, max_duration))
        .await
        .unwrap();
    assert!(outcome.created);
}

fn event_at(session: &str, event: &str, received: Timestamp) -> NewEvent {
    let mut new = new_event(session, event, json!({"text": event}));
    new.received_at = received;
    new
}

/// `append` of [`event_at`], which must not fail.
async fn append_at(
    repos: &Repositories,
    session: &str,
    event: &str,
    received: Timestamp,
) -> Appended {
    repos
        .events
        .append(event_at(session, event, received))
        .await
        .unwrap()
}

fn end_with(status: TerminalStatus, when: Timestamp, reason: &str) -> EndRequest {
    EndRequest {
        status,
        at: when,
        reason: Some(EndReason::parse(reason).unwrap()),
    }
}

fn reason_of(outcome: &EndOutcome) -> Option<&str> {
    outcome.session.ended_reason.as_ref().map(EndReason::as_str)
}

/// Asserts that this call ended the session, with `status` and `reason` at `ended_at`.
#[track_caller]
fn assert_ended_now(outcome: &EndOutcome, status: Status, reason: &str, ended_at: Timestamp) {
    assert!(outcome.ended_now);
    assert_eq!(outcome.session.status, status);
    assert_eq!(reason_of(outcome), Some(reason));
    assert_eq!(outcome.session.ended_at, Some(ended_at));
}

/// Asserts that this call found the session as `first` had ended it, and changed nothing.
#[track_caller]
fn assert_already_ended(outcome: &EndOutcome, first: &EndOutcome) {
    assert!(!outcome.ended_now);
    assert_eq!(outcome.session, first.session);
}

backend_test! { async fn a_session_keeps_its_timers_and_counts_them_from_its_start(s: StoreCtx) {
    create_timed(&s.repos, "c", 10, 600).await;
    let stored = s.repos.sessions.get(&sid("c")).await.unwrap();
    assert_eq!(
        stored.timers,
        Timers {
            inactivity_seconds: 10,
            max_duration_seconds: 600
        }
    );
    assert_eq!(stored.timers_since, at(0));
    assert_eq!(
        (stored.last_event_at, stored.ended_reason.clone()),
        (None, None)
    );
    assert_eq!(stored.deadline().unwrap().at, at(10_000));

    // A second create with other timers changes nothing.
    let again = s
        .repos
        .sessions
        .create_or_get(timed_session("c", 1, 1))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.session, stored);
}}

backend_test! { async fn each_stored_event_moves_the_inactivity_deadline(s: StoreCtx) {
    create_timed(&s.repos, "c", 10, 0).await;
    let r = append_at(&s.repos, "c", "e1", at(4_000)).await;
    assert!(matches!(r, Appended::New(_)), "{r:?}");
    let stored = s.repos.sessions.get(&sid("c")).await.unwrap();
    assert_eq!(stored.last_event_at, Some(at(4_000)));
    assert_eq!(stored.deadline().unwrap().at, at(14_000));
    // Not expired at 12 s: it would have been without the event.
    let early = expire(&s.repos, "c", at(12_000)).await;
    assert!(!early.ended_now);
    assert_eq!(early.session.status, Status::Active);
}}

backend_test! { async fn expire_records_the_timer_end_once_with_the_deadline_as_ended_at(s: StoreCtx) {
    create_timed(&s.repos, "c", 10, 0).await;
    let before = expire(&s.repos, "c", at(9_999)).await;
    assert!(!before.ended_now);
    assert_eq!(before.session.status, Status::Initiated);
    assert_eq!(before.session.ended_at, None);

    let ended = expire(&s.repos, "c", at(25_000)).await;
    assert_ended_now(&ended, Status::Failed, "inactivity_timeout", at(10_000));
    assert_eq!(
        s.repos.sessions.get(&sid("c")).await.unwrap(),
        ended.session
    );

    let again = expire(&s.repos, "c", at(99_000)).await;
    assert_already_ended(&again, &ended);
}}

backend_test! { async fn the_maximum_duration_ends_a_busy_session(s: StoreCtx) {
    create_timed(&s.repos, "c", 60, 30).await;
    for (i, second) in [5, 15, 25].into_iter().enumerate() {
        let e = event_at("c", &format!("e{i}"), at(second * 1_000));
        assert!(matches!(
            s.repos.events.append(e).await.unwrap(),
            Appended::New(_)
        ));
    }
    let ended = expire(&s.repos, "c", at(31_000)).await;
    assert!(ended.ended_now);
    assert_eq!(reason_of(&ended), Some("max_duration_exceeded"));
    assert_eq!(ended.session.ended_at, Some(at(30_000)));
    assert_eq!(ended.session.event_count, 3);
}}

backend_test! { async fn sixteen_concurrent_expires_record_exactly_one_end(s: StoreCtx) {
    create_timed(&s.repos, "c", 10, 0).await;
    let outcomes = concurrently(&s.repos, 0..16, |repos, i| async move {
        expire(&repos, "c", at(20_000 + i)).await
    })
    .await;
    assert_eq!(outcomes.iter().filter(|o| o.ended_now).count(), 1);
    let ended_at: HashSet<_> = outcomes.iter().map(|o| o.session.ended_at).collect();
    assert_eq!(ended_at, HashSet::from([Some(at(10_000))]));
    assert!(outcomes.iter().all(|o| o.session.status == Status::Failed));
}}

backend_test! { async fn an_append_after_the_deadline_records_the_expiry_and_is_not_stored(s: StoreCtx) {
    create_timed(&s.repos, "c", 10, 0).await;
    let r = append_at(&s.repos, "c", "e1", at(2_000)).await;
    assert!(matches!(r, Appended::New(_)), "{r:?}");

    // Its deadline is 2 s + 10 s; the event comes a second later.
    let late = append_at(&s.repos, "c", "e2", at(13_000)).await;
    let Appended::Expired(session) = late else {
        panic!("expected the expiry to be recorded, got {late:?}");
    };
    assert_eq!(session.status, Status::Failed);
    assert_eq!(session.ended_at, Some(at(12_000)));
    assert_eq!(session.last_event_at, Some(at(2_000)));
    assert_eq!(session.ended_reason, Some(EndReason::inactivity_timeout()));
    assert_eq!(session.event_count, 1);
    assert_eq!(s.repos.sessions.get(&sid("c")).await.unwrap(), session);

    let later = append_at(&s.repos, "c", "e3", at(13_000)).await;
    assert_eq!(later, Appended::SessionEnded(Status::Failed));
    // The refused event was not stored; a retry of the stored one still finds it.
    assert!(matches!(
        get_event(&s.repos, "c", "e2").await,
        Err(RepoError::NotFound)
    ));
    let retry = append_at(&s.repos, "c", "e1", at(14_000)).await;
    assert!(
        matches!(retry, Appended::Existing(ref e) if e.seq == 1),
        "{retry:?}"
    );
}}

backend_test! { async fn an_append_exactly_at_the_deadline_is_too_late(s: StoreCtx) {
    create_timed(&s.repos, "c", 10, 0).await;
    let r = append_at(&s.repos, "c", "e1", at(10_000)).await;
    assert!(
        matches!(r, Appended::Expired(ref session) if session.ended_at == Some(at(10_000))),
        "{r:?}"
    );
}}

backend_test! { async fn concurrent_late_appends_record_one_expiry(s: StoreCtx) {
    create_timed(&s.repos, "c", 10, 0).await;
    let outcomes = concurrently(&s.repos, 0..16, |repos, i| async move {
        let e = event_at("c", &format!("late{i}"), at(20_000 + i));
        repos.events.append(e).await.unwrap()
    })
    .await;
    let expired = outcomes
        .iter()
        .filter(|o| matches!(o, Appended::Expired(_)))
        .count();
    assert_eq!(expired, 1, "{outcomes:?}");
    for o in &outcomes {
        assert!(
            matches!(
                o,
                Appended::Expired(_) | Appended::SessionEnded(Status::Failed)
            ),
            "{o:?}"
        );
    }
    assert_eq!(event_count(&s.repos, "c").await, 0);
    let stored = s.repos.sessions.get(&sid("c")).await.unwrap();
    assert_eq!(stored.ended_at, Some(at(10_000)));
}}

backend_test! { async fn end_after_the_deadline_records_the_timer_end_instead(s: StoreCtx) {
    create_timed(&s.repos, "c", 10, 0).await;
    let request = end_with(TerminalStatus::Completed, at(15_000), "caller_hangup");
    let outcome = s.repos.sessions.end(&sid("c"), request).await.unwrap();
    assert_ended_now(&outcome, Status::Failed, "inactivity_timeout", at(10_000));
    // The sweeper coming later finds it ended.
    let swept = expire(&s.repos, "c", at(16_000)).await;
    assert_already_ended(&swept, &outcome);
}}

backend_test! { async fn end_before_the_deadline_keeps_the_first_reason(s: StoreCtx) {
    create_timed(&s.repos, "c", 10, 0).await;
    let first = end_with(TerminalStatus::Completed, at(5_000), "caller_hangup");
    let outcome = s.repos.sessions.end(&sid("c"), first).await.unwrap();
    assert_ended_now(&outcome, Status::Completed, "caller_hangup", at(5_000));
    assert_eq!(outcome.session.deadline(), None);

    let second = end_with(TerminalStatus::Completed, at(6_000), "transferred");
    let again = s.repos.sessions.end(&sid("c"), second).await.unwrap();
    assert_already_ended(&again, &outcome);
    // Its old deadline passing changes nothing.
    let swept = expire(&s.repos, "c", at(60_000)).await;
    assert_already_ended(&swept, &outcome);
}}

backend_test! { async fn expired_returns_exactly_the_open_sessions_past_their_deadline(s: StoreCtx) {
    create_timed(&s.repos, "first", 10, 0).await;
    create_timed(&s.repos, "second", 0, 20).await;
    create_timed(&s.repos, "later", 100, 0).await;
    create_timed(&s.repos, "no-timers", 0, 0).await;
    create_timed(&s.repos, "ended", 5, 0).await;
    create_timed(&s.repos, "busy", 10, 0).await;
    s.repos
        .sessions
        .end(&sid("ended"), end_as(TerminalStatus::Completed, at(1_000)))
        .await
        .unwrap();
    // An event at 9 s puts busy's deadline at 19 s.
    append_at(&s.repos, "busy", "e1", at(9_000)).await;

    let ids = |v: Vec<SessionId>| v.iter().map(|i| i.as_str().to_owned()).collect::<Vec<_>>();
    assert!(
        s.repos
            .sessions
            .expired(at(9_999), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(s.repos.sessions.expired(at(10_000), 100).await.unwrap()),
        ["first"]
    );
    assert_eq!(
        ids(s.repos.sessions.expired(at(50_000), 100).await.unwrap()),
        ["first", "busy", "second"]
    );
    assert_eq!(
        ids(s.repos.sessions.expired(at(50_000), 2).await.unwrap()),
        ["first", "busy"]
    );

    // Once recorded, an expired session is not returned again.
    expire(&s.repos, "first", at(50_000)).await;
    assert_eq!(
        ids(s.repos.sessions.expired(at(50_000), 100).await.unwrap()),
        ["busy", "second"]
    );
}}

// A backend may keep the deadline its index is on behind the true one while a session is busy
// (SQLite rewrites it only once it lags by a minute), never ahead of it: `expired` answers by
// the true deadline, and spends its limit only on sessions whose true deadline has passed.
backend_test! { async fn expired_goes_by_the_true_deadline_of_a_busy_session(s: StoreCtx) {
    // Inactivity: an hour. Events every 10 s for 50 s (the last two as a batch), so the true
    // deadline is 50 s later than the one stored at the start.
    create_timed(&s.repos, "busy", 3600, 0).await;
    for i in 0..4 {
        append_at(&s.repos, "busy", &format!("e{i}"), at(i * 10_000)).await;
    }
    let mut batch = vec![
        event_at("busy", "b1", at(50_000)),
        event_at("busy", "b2", at(50_000)),
    ];
    for new in &mut batch {
        new.received_at = at(50_000);
    }
    let stored = s
        .repos
        .events
        .append_batch(NewEvents::new(batch).unwrap())
        .await
        .unwrap();
    assert!(matches!(stored, BatchAppended::Stored(_)));
    // Another session, whose deadline (an hour and 10 s) comes before busy's true one.
    create_timed(&s.repos, "idle", 3610, 0).await;
    let busy_deadline = 50_000 + 3_600_000;

    let ids = |v: Vec<SessionId>| v.iter().map(|i| i.as_str().to_owned()).collect::<Vec<_>>();
    for now in [3_600_000, 3_609_999] {
        let found = s.repos.sessions.expired(at(now), 100).await.unwrap();
        assert!(found.is_empty(), "at {now} ms: {found:?}");
    }
    // busy comes first by the stored deadline, but is not expired: the limit of 1 goes to idle.
    assert_eq!(
        ids(s.repos.sessions.expired(at(3_620_000), 1).await.unwrap()),
        ["idle"]
    );
    assert_eq!(
        ids(s.repos.sessions.expired(at(busy_deadline - 1), 100).await.unwrap()),
        ["idle"]
    );
    let both: HashSet<String> = ids(
        s.repos
            .sessions
            .expired(at(busy_deadline), 100)
            .await
            .unwrap(),
    )
    .into_iter()
    .collect();
    assert_eq!(both, HashSet::from(["idle".to_owned(), "busy".to_owned()]));
    let ended = expire(&s.repos, "busy", at(busy_deadline + 5_000)).await;
    assert!(ended.ended_now);
    assert_eq!(ended.session.ended_at, Some(at(busy_deadline)));
    assert_eq!(
        ids(s.repos.sessions.expired(at(busy_deadline + 5_000), 100).await.unwrap()),
        ["idle"]
    );
}}

backend_test! { async fn adopting_legacy_sessions_changes_nothing_on_a_fresh_store(s: StoreCtx) {
    create_timed(&s.repos, "c", 10, 0).await;
    let before = s.repos.sessions.get(&sid("c")).await.unwrap();
    let defaults = Timers {
        inactivity_seconds: 3600,
        max_duration_seconds: 0,
    };
    let adopted = s
        .repos
        .sessions
        .adopt_legacy_sessions(defaults, at(1_000))
        .await
        .unwrap();
    assert_eq!(adopted, 0);
    assert_eq!(s.repos.sessions.get(&sid("c")).await.unwrap(), before);
}}
