//! Metadata patches: merged as RFC 7396 says, counted in the revision (a patch that changes
//! nothing is not), conditional on a version when asked, refused beyond the metadata rules, and
//! never lost when many race.

use serde_json::{Map, Value, json};
use session_service::domain::Session;
use session_service::repo::{MetadataPatch, Patched};

use super::*;

fn patch(value: Value) -> MetadataPatch {
    let Value::Object(patch) = value else {
        panic!("a patch is an object")
    };
    MetadataPatch {
        patch,
        if_match: None,
        at: Timestamp::from_millis(1_766_331_017_000).unwrap(),
    }
}

async fn patched(repos: &Repositories, id: &str, p: MetadataPatch) -> Session {
    match repos.sessions.patch_metadata(&sid(id), p).await.unwrap() {
        Patched::Done(session) => session,
        other => panic!("expected the patch done, got {other:?}"),
    }
}

fn metadata(session: &Session) -> Value {
    Value::Object(session.metadata.as_map().clone())
}

backend_test! { async fn a_patch_sets_and_removes_keys_and_counts_the_change(s: StoreCtx) {
    created(&s.repos, "p").await;
    // new_session's metadata: {"caller": "+15550100", "tags": ["a", "b"]}
    let p1 = patch(json!({"summaryId": "sum-1", "tags": null, "crm": {"ticket": 7}}));
    let once = patched(&s.repos, "p", p1.clone()).await;
    let want = json!({"caller": "+15550100", "summaryId": "sum-1", "crm": {"ticket": 7}});
    assert_eq!(metadata(&once), want);
    assert_eq!(once.revision, 1);
    let stored = s.repos.sessions.get(&sid("p")).await.unwrap();
    assert_eq!((metadata(&stored), stored.revision), (want.clone(), 1));
    // The same patch again changes nothing, and is not counted.
    let twice = patched(&s.repos, "p", p1).await;
    assert_eq!((metadata(&twice), twice.revision), (want, 1));
    let nested = patched(&s.repos, "p", patch(json!({"crm": {"ticket": null, "stage": "won"}}))).await;
    assert_eq!(metadata(&nested)["crm"], json!({"stage": "won"}));
    assert_eq!(nested.revision, 2);
}}

backend_test! { async fn an_ended_session_takes_patches_and_an_erased_one_does_not(s: StoreCtx) {
    created(&s.repos, "e").await;
    let at = Timestamp::from_millis(1_766_331_017_000).unwrap();
    s.repos.sessions.end(&sid("e"), end_as(TerminalStatus::Completed, at)).await.unwrap();
    let done = patched(&s.repos, "e", patch(json!({"disposition": "sale"}))).await;
    assert_eq!((done.status, metadata(&done)["disposition"].clone()), (Status::Completed, json!("sale")));
    s.repos.sessions.delete(&sid("e"), at).await.unwrap();
    let r = s.repos.sessions.patch_metadata(&sid("e"), patch(json!({"a": 1}))).await;
    assert!(matches!(r, Err(RepoError::Deleted)), "{r:?}");
    let r = s.repos.sessions.patch_metadata(&sid("nobody"), patch(json!({"a": 1}))).await;
    assert!(matches!(r, Err(RepoError::NotFound)), "{r:?}");
}}

backend_test! { async fn a_patch_at_another_version_changes_nothing(s: StoreCtx) {
    created(&s.repos, "v").await;
    let before = s.repos.sessions.get(&sid("v")).await.unwrap();
    let seen = before.version().to_string();
    append_new(&s.repos, "v", "e1").await;
    let mut stale = patch(json!({"a": 1}));
    stale.if_match = Some(vec![seen]);
    let r = s.repos.sessions.patch_metadata(&sid("v"), stale).await.unwrap();
    let Patched::PreconditionFailed(now) = r else { panic!("{r:?}") };
    assert_eq!(now.event_count, 1);
    assert_eq!(s.repos.sessions.get(&sid("v")).await.unwrap().metadata, before.metadata);
    let mut fresh = patch(json!({"a": 1}));
    fresh.if_match = Some(vec!["nope".into(), now.version().to_string()]);
    assert_eq!(metadata(&patched(&s.repos, "v", fresh).await)["a"], 1);
    let mut any = patch(json!({"b": 2}));
    any.if_match = Some(vec!["*".into()]);
    assert_eq!(patched(&s.repos, "v", any).await.revision, 2);
}}

backend_test! { async fn a_patch_beyond_the_metadata_rules_is_refused(s: StoreCtx) {
    created(&s.repos, "big").await;
    let keys: Map<String, Value> = (0..1_001).map(|i| (format!("k{i}"), json!(i))).collect();
    let r = s.repos.sessions.patch_metadata(&sid("big"), patch(Value::Object(keys))).await.unwrap();
    assert!(matches!(r, Patched::Invalid(_)), "{r:?}");
    assert_eq!(s.repos.sessions.get(&sid("big")).await.unwrap().revision, 0);
}}

backend_test! { async fn concurrent_patches_each_land(s: StoreCtx) {
    created(&s.repos, "race").await;
    let outcomes = concurrently(&s.repos, 0..16, |repos, i| async move {
        let p = patch(json!({ format!("client{i}"): i }));
        repos.sessions.patch_metadata(&sid("race"), p).await.unwrap()
    })
    .await;
    assert!(outcomes.iter().all(|o| matches!(o, Patched::Done(_))), "{outcomes:?}");
    let stored = s.repos.sessions.get(&sid("race")).await.unwrap();
    for i in 0..16 {
        assert_eq!(metadata(&stored)[format!("client{i}")], i, "client {i}'s key");
    }
    assert_eq!(stored.revision, 16);
}}
