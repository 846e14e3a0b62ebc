//! A session's `redact` (the kinds of personal data its payloads are redacted of, when the call
//! chose them at create): stored and read back as given, and checked by every append before
//! anything else, so that no event is stored redacted under other rules than its session's.

use serde_json::json;
use session_service::domain::{NewEvents, PiiKind, Redact};
use session_service::repo::BatchAppended;

use super::*;

fn cards() -> Option<Redact> {
    Some(Redact::from_kinds([PiiKind::Card]))
}

async fn created_redacting(repos: &Repositories, id: &str, redact: Option<Redact>) {
    let new = NewSession {
        redact,
        ..new_session(id)
    };
    let outcome = repos.sessions.create_or_get(new).await.unwrap();
    assert!(outcome.created);
    assert_eq!(outcome.session.redact, redact);
}

/// An event whose payload was redacted under `redact`.
fn under(session: &str, event: &str, redact: Option<Redact>) -> NewEvent {
    NewEvent {
        redact,
        ..new_event(session, event, json!({"text": "[REDACTED:card]"}))
    }
}

fn batch_under(session: &str, ids: &[&str], redact: Option<Redact>) -> NewEvents {
    NewEvents::new(ids.iter().map(|id| under(session, id, redact)).collect()).unwrap()
}

backend_test! { async fn a_sessions_redact_is_stored_and_read_back_as_given(s: StoreCtx) {
    created_redacting(&s.repos, "cards", cards()).await;
    created_redacting(&s.repos, "nothing", Some(Redact::NONE)).await;
    created_redacting(&s.repos, "default", None).await;
    for (id, redact) in [("cards", cards()), ("nothing", Some(Redact::NONE)), ("default", None)] {
        assert_eq!(s.repos.sessions.get(&sid(id)).await.unwrap().redact, redact, "{id}");
    }
    // A create of a taken id returns the stored session, its redact unchanged.
    let again = s.repos.sessions.create_or_get(new_session("cards")).await.unwrap();
    assert_eq!((again.created, again.session.redact), (false, cards()));
}}

backend_test! { async fn an_event_redacted_under_other_rules_is_refused_with_the_sessions(s: StoreCtx) {
    created_redacting(&s.repos, "c", cards()).await;
    let wrong = s.repos.events.append(under("c", "e1", None)).await.unwrap();
    assert_eq!(wrong, Appended::RedactionChanged(cards()));
    let empty = s.repos.events.append(under("c", "e1", Some(Redact::NONE))).await.unwrap();
    assert_eq!(empty, Appended::RedactionChanged(cards()));
    assert_eq!(event_count(&s.repos, "c").await, 0);
    assert!(matches!(get_event(&s.repos, "c", "e1").await, Err(RepoError::NotFound)));

    let stored = s.repos.events.append(under("c", "e1", cards())).await.unwrap();
    assert!(matches!(&stored, Appended::New(e) if e.seq == 1), "{stored:?}");
    // Checked before the replay: the stored payload is compared in the session's redacted form.
    let replay = s.repos.events.append(under("c", "e1", None)).await.unwrap();
    assert_eq!(replay, Appended::RedactionChanged(cards()));
    let replay = s.repos.events.append(under("c", "e1", cards())).await.unwrap();
    assert!(matches!(&replay, Appended::Existing(e) if e.seq == 1), "{replay:?}");

    // A session that chose nothing takes only events redacted under the service's rules.
    created(&s.repos, "d").await;
    let wrong = s.repos.events.append(under("d", "e1", cards())).await.unwrap();
    assert_eq!(wrong, Appended::RedactionChanged(None));
    let stored = s.repos.events.append(under("d", "e1", None)).await.unwrap();
    assert!(matches!(stored, Appended::New(_)), "{stored:?}");
}}

backend_test! { async fn an_ended_session_is_checked_for_its_redaction_first(s: StoreCtx) {
    created_redacting(&s.repos, "x", cards()).await;
    let at = Timestamp::from_millis(1_766_331_017_000).unwrap();
    s.repos.sessions.end(&sid("x"), end_as(TerminalStatus::Completed, at)).await.unwrap();
    let wrong = s.repos.events.append(under("x", "e1", None)).await.unwrap();
    assert_eq!(wrong, Appended::RedactionChanged(cards()));
    let right = s.repos.events.append(under("x", "e1", cards())).await.unwrap();
    assert_eq!(right, Appended::SessionEnded(Status::Completed));
}}

backend_test! { async fn a_batch_redacted_under_other_rules_is_refused_whole(s: StoreCtx) {
    created_redacting(&s.repos, "b", cards()).await;
    let wrong = s.repos.events.append_batch(batch_under("b", &["e1", "e2"], None)).await.unwrap();
    assert_eq!(wrong, BatchAppended::RedactionChanged(cards()));
    assert_eq!(event_count(&s.repos, "b").await, 0);
    let stored =
        s.repos.events.append_batch(batch_under("b", &["e1", "e2"], cards())).await.unwrap();
    let BatchAppended::Stored(items) = &stored else { panic!("{stored:?}") };
    assert_eq!(items.iter().map(|i| i.event().seq).collect::<Vec<_>>(), [1, 2]);
    // All replays, under the wrong rules: still refused, not answered as stored.
    let replay = s.repos.events.append_batch(batch_under("b", &["e1", "e2"], None)).await.unwrap();
    assert_eq!(replay, BatchAppended::RedactionChanged(cards()));
}}

backend_test! { async fn an_id_created_again_after_its_tombstone_went_has_its_new_redact(s: StoreCtx) {
    // What the service's hints cannot know on another instance: the id erased, its tombstone
    // purged, and the call created again with other rules.
    created_redacting(&s.repos, "again", cards()).await;
    append_new_under(&s.repos, "again", "e1", cards()).await;
    let deleted_at = Timestamp::from_millis(1_766_331_020_000).unwrap();
    s.repos.sessions.delete(&sid("again"), deleted_at).await.unwrap();
    let after = Timestamp::from_millis(deleted_at.millis() + 1).unwrap();
    for call in 0.. {
        assert!(call < 100, "purge never finished");
        if !s.repos.sessions.purge(100, after).await.unwrap().more {
            break;
        }
    }
    created_redacting(&s.repos, "again", Some(Redact::all())).await;
    let stale = s.repos.events.append(under("again", "e2", cards())).await.unwrap();
    assert_eq!(stale, Appended::RedactionChanged(Some(Redact::all())));
    let stored = s.repos.events.append(under("again", "e2", Some(Redact::all()))).await.unwrap();
    assert!(matches!(&stored, Appended::New(e) if e.seq == 1), "{stored:?}");
}}

async fn append_new_under(
    repos: &Repositories,
    session: &str,
    event: &str,
    redact: Option<Redact>,
) {
    let stored = repos
        .events
        .append(under(session, event, redact))
        .await
        .unwrap();
    assert!(matches!(stored, Appended::New(_)), "{stored:?}");
}
