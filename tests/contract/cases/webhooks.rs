//! Webhooks' storage (`WebhookRepository`): endpoints replaced only from the revision read; the
//! fan-out moved only from the state read, each delivery queued once however often its batch is
//! made; what is due, claimed by one instance at a time until its lease passes, and moved on only
//! by its holder; the log of deliveries and attempts, paged; recovery, backlog and retention.

use std::collections::HashSet;

use serde_json::Map;
use session_service::domain::webhook::{EndpointId, Secret};
use session_service::repo::webhooks::{
    AfterAttempt, Attempt, Backlog, Claimed, Delivery, DeliveryKey, DeliveryStatus, Endpoint,
    FanoutState, MAX_LOGGED_ATTEMPTS, NewMessage, StoredMessage,
};

use super::*;

mod settle;

/// The first message's time; every other time is an offset from it, in milliseconds.
const T0: i64 = 1_766_331_015_123;
const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
/// How long a claim holds a delivery in these cases.
const LEASE: i64 = 30 * SECOND;

/// `T0` plus `offset` milliseconds.
fn at(offset: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset).unwrap()
}

/// The lease of a claim made at `now`.
fn lease_from(now: Timestamp) -> Timestamp {
    Timestamp::from_millis(now.millis() + LEASE).unwrap()
}

/// An endpoint as the API makes one, created `offset` milliseconds after `T0`.
fn endpoint(offset: i64) -> Endpoint {
    let mut filter = Map::new();
    filter.insert("tier".to_owned(), json!("gold"));
    Endpoint {
        id: EndpointId::generate(),
        url: "https://hooks.example.com/sessions".to_owned(),
        types: vec!["session.created".to_owned(), "event.appended".to_owned()],
        description: Some("CRM sync".to_owned()),
        metadata_filter: filter,
        enabled: true,
        disabled_reason: None,
        paused: Some((T0 - 5_000, Some(T0 - 1_000))),
        secret: Secret::generate().unwrap(),
        previous_secret: None,
        failing_since: None,
        created_at: T0 + offset,
        revision: 0,
    }
}

/// Stores a new endpoint created `offset` milliseconds after `T0`; its id.
async fn new_endpoint(repos: &Repositories, offset: i64) -> EndpointId {
    let e = endpoint(offset);
    assert!(repos.webhooks.create_endpoint(&e, 100).await.unwrap());
    e.id
}

fn message_id_of(order: u64) -> String {
    format!("msg_{order:032x}")
}

fn body_of(order: u64, kind: &str) -> String {
    json!({
        "type": kind,
        "timestamp": at(order as i64 * SECOND).to_string(),
        "data": {"sessionId": "s1", "order": order},
    })
    .to_string()
}

/// The message of a `session.created` of session `s1`, made `order` seconds after `T0` and due
/// then, for `endpoints`.
fn message(order: u64, endpoints: &[&EndpointId]) -> NewMessage {
    let created_at = at(order as i64 * SECOND);
    NewMessage {
        id: message_id_of(order),
        order,
        kind: "session.created".to_owned(),
        session_id: Some("s1".to_owned()),
        body: body_of(order, "session.created"),
        created_at,
        due_at: created_at,
        endpoints: endpoints.iter().map(|e| (*e).clone()).collect(),
    }
}

/// The test message `POST /webhooks/{id}/test` queues: no session.
fn test_message(order: u64, endpoint: &EndpointId) -> NewMessage {
    NewMessage {
        kind: "webhook.test".to_owned(),
        session_id: None,
        body: body_of(order, "webhook.test"),
        ..message(order, &[endpoint])
    }
}

fn key(endpoint: &EndpointId, order: u64) -> DeliveryKey {
    DeliveryKey {
        endpoint: endpoint.clone(),
        order,
    }
}

/// Queues `messages` from the stored fan-out state (which must still be it); the state after.
async fn queue(repos: &Repositories, messages: Vec<NewMessage>) -> FanoutState {
    let state = repos.webhooks.fanout_state().await.unwrap();
    let position = Some(format!("pos-{}", state.next_order + messages.len() as u64));
    assert!(
        repos
            .webhooks
            .enqueue(&state, position, messages)
            .await
            .unwrap(),
        "enqueue from the stored state"
    );
    repos.webhooks.fanout_state().await.unwrap()
}

/// The attempt an answer `status` at `now` is logged as.
fn attempt_at(now: Timestamp, status: u16, n: u64) -> Attempt {
    Attempt {
        at: now.millis(),
        response_status: Some(status),
        duration_ms: 100 + n,
        error: (status >= 300).then(|| format!("HTTP {status} (attempt {n})")),
    }
}

/// One whole attempt on `key` at `now`: claimed by a token of its own, logged, left as `after`.
/// The claim and the attempt.
async fn attempt_once(
    repos: &Repositories,
    key: &DeliveryKey,
    now: Timestamp,
    after: AfterAttempt,
) -> (Claimed, Attempt) {
    let claimed = repos
        .webhooks
        .claim(std::slice::from_ref(key), "attempter", now, lease_from(now))
        .await
        .unwrap();
    assert_eq!(
        claimed.len(),
        1,
        "{key:?} is claimable at {now}: {claimed:?}"
    );
    let status = match after {
        AfterAttempt::Succeeded => 204,
        AfterAttempt::Failed => 410,
        AfterAttempt::RetryAt(_) => 503,
    };
    let attempt = attempt_at(now, status, u64::from(claimed[0].step));
    assert!(
        repos
            .webhooks
            .record(key, "attempter", &attempt, after)
            .await
            .unwrap(),
        "the attempter still holds {key:?}"
    );
    (claimed.into_iter().next().unwrap(), attempt)
}

/// The orders of `endpoint`'s deliveries as [`WebhookRepository::deliveries`] lists them.
async fn listed(
    repos: &Repositories,
    endpoint: &EndpointId,
    status: Option<DeliveryStatus>,
    before: Option<u64>,
    limit: u32,
) -> Vec<u64> {
    repos
        .webhooks
        .deliveries(endpoint, status, before, limit)
        .await
        .unwrap()
        .iter()
        .map(|d| d.order)
        .collect()
}

/// The delivery `key`, as the log shows it.
async fn delivery(repos: &Repositories, key: &DeliveryKey) -> Delivery {
    let found = repos
        .webhooks
        .deliveries(&key.endpoint, None, Some(key.order + 1), 1)
        .await
        .unwrap();
    match found.into_iter().next() {
        Some(d) if d.order == key.order => d,
        other => panic!("no delivery {key:?}: {other:?}"),
    }
}

/// The keys [`WebhookRepository::due`] lists, with whether each is leased.
async fn due_keys(
    repos: &Repositories,
    now: Timestamp,
    enabled: &[&EndpointId],
    limit: u32,
) -> Vec<(DeliveryKey, bool)> {
    let enabled: Vec<EndpointId> = enabled.iter().map(|e| (*e).clone()).collect();
    repos
        .webhooks
        .due(now, &enabled, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.key, d.leased))
        .collect()
}

fn keys_of(claimed: &[Claimed]) -> HashSet<DeliveryKey> {
    claimed.iter().map(|c| c.key.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// Endpoints

backend_test! { async fn an_endpoint_is_read_back_whole_and_endpoints_are_listed_oldest_first(s: StoreCtx) {
    let w = &s.repos.webhooks;
    assert!(w.endpoints().await.unwrap().is_empty());

    let mut middle = endpoint(2 * SECOND);
    middle.previous_secret = Some((Secret::generate().unwrap(), T0 + MINUTE));
    middle.failing_since = Some(T0 + 5 * SECOND);
    middle.enabled = false;
    middle.disabled_reason = Some("the endpoint answered 410 Gone".to_owned());
    middle.description = None;
    middle.revision = 4;
    let oldest = endpoint(SECOND);
    let newest = endpoint(3 * SECOND);
    // Stored in another order than they were created in.
    for e in [&middle, &newest, &oldest] {
        assert!(w.create_endpoint(e, 100).await.unwrap());
    }

    assert_eq!(w.endpoint(&middle.id).await.unwrap(), middle);
    assert_eq!(w.endpoint(&oldest.id).await.unwrap(), oldest);
    assert_eq!(w.endpoints().await.unwrap(), vec![oldest, middle, newest]);
    assert!(matches!(w.endpoint(&EndpointId::generate()).await, Err(RepoError::NotFound)));
}}

backend_test! { async fn concurrent_creates_never_store_more_endpoints_than_the_limit(s: StoreCtx) {
    let w = s.repos.webhooks.clone();
    for i in 0..3 {
        assert!(w.create_endpoint(&endpoint(i), 5).await.unwrap());
    }
    let creates: Vec<_> = (0..8)
        .map(|i| {
            let w = w.clone();
            tokio::spawn(async move { w.create_endpoint(&endpoint(10 + i), 5).await.unwrap() })
        })
        .collect();
    let mut made = 0;
    for c in creates {
        made += usize::from(c.await.unwrap());
    }
    assert_eq!(made, 2, "two more fit under 5");
    assert_eq!(w.endpoints().await.unwrap().len(), 5);
    assert!(!w.create_endpoint(&endpoint(20), 5).await.unwrap());
}}

backend_test! { async fn replacing_an_endpoint_succeeds_only_from_its_stored_revision(s: StoreCtx) {
    let w = &s.repos.webhooks;
    let original = endpoint(0);
    assert!(w.create_endpoint(&original, 100).await.unwrap());

    let mut disabled = original.clone();
    disabled.enabled = false;
    disabled.failing_since = Some(T0 + MINUTE);
    assert!(w.replace_endpoint(&disabled, 0).await.unwrap());
    assert_eq!(w.endpoint(&original.id).await.unwrap(), Endpoint { revision: 1, ..disabled.clone() });

    // A writer that read revision 0 is too late: nothing changes.
    let mut stale = original.clone();
    stale.url = "https://stale.example.com/".to_owned();
    assert!(!w.replace_endpoint(&stale, 0).await.unwrap());
    assert!(!w.replace_endpoint(&stale, 7).await.unwrap());
    assert_eq!(w.endpoint(&original.id).await.unwrap(), Endpoint { revision: 1, ..disabled.clone() });

    // The stored revision is the one given plus one, whatever the record says.
    let mut rotated = disabled.clone();
    rotated.previous_secret = Some((rotated.secret.clone(), T0 + 2 * MINUTE));
    rotated.secret = Secret::generate().unwrap();
    rotated.revision = 99;
    assert!(w.replace_endpoint(&rotated, 1).await.unwrap());
    assert_eq!(w.endpoint(&original.id).await.unwrap(), Endpoint { revision: 2, ..rotated.clone() });

    // Two instances replacing from the same revision: one wins, whole.
    let other = s.reopen().await;
    let mut by_one = rotated.clone();
    by_one.url = "https://one.example.com/".to_owned();
    let mut by_two = rotated.clone();
    by_two.url = "https://two.example.com/".to_owned();
    let (one, two) = tokio::join!(
        w.replace_endpoint(&by_one, 2),
        other.webhooks.replace_endpoint(&by_two, 2),
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert!(one ^ two, "exactly one replace wins: {one} {two}");
    let winner = if one { by_one } else { by_two };
    assert_eq!(w.endpoint(&original.id).await.unwrap(), Endpoint { revision: 3, ..winner });

    let missing = endpoint(0);
    assert!(matches!(w.replace_endpoint(&missing, 0).await, Err(RepoError::NotFound)));
    assert!(matches!(w.endpoint(&missing.id).await, Err(RepoError::NotFound)));
    assert_eq!(w.endpoints().await.unwrap().len(), 1, "a failed replace creates nothing");
}}

backend_test! { async fn deleting_an_endpoint_removes_it_and_its_deliveries_once(s: StoreCtx) {
    let w = &s.repos.webhooks;
    let (a, b) = (new_endpoint(&s.repos, 0).await, new_endpoint(&s.repos, 1).await);
    queue(&s.repos, vec![message(0, &[&a, &b]), message(1, &[&a])]).await;

    assert!(w.delete_endpoint(&a).await.unwrap());
    assert!(!w.delete_endpoint(&a).await.unwrap(), "there is none any more");
    assert!(matches!(w.endpoint(&a).await, Err(RepoError::NotFound)));
    assert_eq!(w.endpoints().await.unwrap().iter().map(|e| e.id.clone()).collect::<Vec<_>>(), std::slice::from_ref(&b));

    assert!(listed(&s.repos, &a, None, None, 10).await.is_empty());
    assert_eq!(listed(&s.repos, &b, None, None, 10).await, [0]);
    assert_eq!(due_keys(&s.repos, at(MINUTE), &[&a, &b], 10).await, [(key(&b, 0), false)]);
    assert!(w.claim(&[key(&a, 0), key(&a, 1)], "t", at(MINUTE), lease_from(at(MINUTE))).await.unwrap().is_empty());
    assert_eq!(w.backlog().await.unwrap(), Backlog { pending: 1, oldest: Some(at(0)) });
    // The other endpoint's delivery of the shared message still carries it.
    let claimed = w.claim(&[key(&b, 0)], "t", at(MINUTE), lease_from(at(MINUTE))).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].message_id.as_str(), claimed[0].body.as_str()), (message_id_of(0).as_str(), body_of(0, "session.created").as_str()));
}}

// ---------------------------------------------------------------------------------------------
// Fan-out

backend_test! { async fn the_fanout_starts_empty_and_moves_only_from_the_expected_state(s: StoreCtx) {
    let w = &s.repos.webhooks;
    let other = s.reopen().await;
    let (a, b) = (new_endpoint(&s.repos, 0).await, new_endpoint(&s.repos, 1).await);
    assert_eq!(w.fanout_state().await.unwrap(), FanoutState::default());

    let first = vec![message(0, &[&a, &b]), message(1, &[&a])];
    assert!(w.enqueue(&FanoutState::default(), Some("p2".to_owned()), first.clone()).await.unwrap());
    let s1 = FanoutState { position: Some("p2".to_owned()), next_order: 2 };
    assert_eq!(w.fanout_state().await.unwrap(), s1);
    assert_eq!(other.webhooks.fanout_state().await.unwrap(), s1, "as another instance reads it");
    assert_eq!(listed(&s.repos, &a, None, None, 10).await, [1, 0]);
    assert_eq!(listed(&s.repos, &b, None, None, 10).await, [0]);

    // From the state before: refused, the state unchanged.
    assert!(!other.webhooks.enqueue(&FanoutState::default(), Some("p3".to_owned()), first).await.unwrap());
    assert_eq!(w.fanout_state().await.unwrap(), s1);

    // A batch of changes no endpoint wants moves the position only.
    assert!(w.enqueue(&s1, Some("p5".to_owned()), Vec::new()).await.unwrap());
    let s2 = FanoutState { position: Some("p5".to_owned()), next_order: 2 };
    assert_eq!(w.fanout_state().await.unwrap(), s2);
    assert!(!other.webhooks.enqueue(&s1, Some("p6".to_owned()), Vec::new()).await.unwrap());
    assert!(!other.webhooks.enqueue(&FanoutState { position: Some("p5".to_owned()), next_order: 1 }, None, Vec::new()).await.unwrap());
    assert_eq!(w.fanout_state().await.unwrap(), s2);

    // The next order is past the batch's last.
    assert!(other.webhooks.enqueue(&s2, Some("p9".to_owned()), vec![message(2, &[&b]), message(3, &[&a])]).await.unwrap());
    assert_eq!(w.fanout_state().await.unwrap(), FanoutState { position: Some("p9".to_owned()), next_order: 4 });
    assert_eq!(listed(&s.repos, &a, None, None, 10).await, [3, 1, 0]);
    assert_eq!(listed(&s.repos, &b, None, None, 10).await, [2, 0]);
    assert_eq!(w.backlog().await.unwrap(), Backlog { pending: 5, oldest: Some(at(0)) });
}}

backend_test! { async fn an_enqueue_from_a_stale_state_queues_nothing(s: StoreCtx) {
    let w = &s.repos.webhooks;
    let other = s.reopen().await;
    let (a, b) = (new_endpoint(&s.repos, 0).await, new_endpoint(&s.repos, 1).await);
    assert!(w.enqueue(&FanoutState::default(), Some("p2".to_owned()), vec![message(0, &[&a, &b]), message(1, &[&a])]).await.unwrap());
    let s1 = FanoutState { position: Some("p2".to_owned()), next_order: 2 };

    // Another instance read the first state and saw one change more: too late, and none of its
    // batch is queued, not even the message past what was queued.
    let late = vec![message(0, &[&a, &b]), message(1, &[&a]), message(2, &[&a, &b])];
    assert!(!other.webhooks.enqueue(&FanoutState::default(), Some("p3".to_owned()), late).await.unwrap());
    assert_eq!(w.fanout_state().await.unwrap(), s1);
    assert_eq!(listed(&s.repos, &a, None, None, 10).await, [1, 0]);
    assert_eq!(listed(&s.repos, &b, None, None, 10).await, [0]);
    assert_eq!(w.backlog().await.unwrap().pending, 3);

    // A test message made from a state the fan-out has moved on from (as `POST
    // /webhooks/{id}/test` makes it, for order 2) leaves nothing behind: `b` gets no delivery of
    // the fan-out's message 2, which it was not sent.
    assert!(w.enqueue(&s1, Some("p3".to_owned()), vec![message(2, &[&a])]).await.unwrap());
    let s2 = FanoutState { position: Some("p3".to_owned()), next_order: 3 };
    assert!(!other.webhooks.enqueue(&s1, s1.position.clone(), vec![test_message(2, &b)]).await.unwrap());
    assert_eq!(w.fanout_state().await.unwrap(), s2);
    assert_eq!(listed(&s.repos, &b, None, None, 10).await, [0], "no delivery of the stale test message");
    let two = delivery(&s.repos, &key(&a, 2)).await;
    assert_eq!((two.message_id.as_str(), two.kind.as_str()), (message_id_of(2).as_str(), "session.created"));
    assert_eq!(w.backlog().await.unwrap().pending, 4);
}}

backend_test! { async fn two_instances_making_the_same_batch_queue_each_delivery_once(s: StoreCtx) {
    let w = &s.repos.webhooks;
    let other = s.reopen().await;
    let (a, b) = (new_endpoint(&s.repos, 0).await, new_endpoint(&s.repos, 1).await);

    // Both from the first state.
    let batch = vec![message(0, &[&a, &b]), message(1, &[&a])];
    let start = FanoutState::default();
    let (one, two) = tokio::join!(
        w.enqueue(&start, Some("p2".to_owned()), batch.clone()),
        other.webhooks.enqueue(&start, Some("p2".to_owned()), batch.clone()),
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert!(one ^ two, "exactly one enqueue moves the state: {one} {two}");
    let s1 = FanoutState { position: Some("p2".to_owned()), next_order: 2 };
    assert_eq!(w.fanout_state().await.unwrap(), s1);
    assert_eq!(listed(&s.repos, &a, None, None, 10).await, [1, 0]);
    assert_eq!(listed(&s.repos, &b, None, None, 10).await, [0]);

    // The batch again, from the state before: nothing more.
    assert!(!other.webhooks.enqueue(&start, Some("p2".to_owned()), batch).await.unwrap());
    assert_eq!(listed(&s.repos, &a, None, None, 10).await, [1, 0]);
    assert_eq!(w.backlog().await.unwrap().pending, 3);

    // The next batch, made by both from the new state: queued once, and what was queued before
    // (one delivery of it already done) is left as it is.
    let (_, logged) = attempt_once(&s.repos, &key(&a, 0), at(10 * SECOND), AfterAttempt::Succeeded).await;
    let batch = vec![message(2, &[&a, &b])];
    let (one, two) = tokio::join!(
        w.enqueue(&s1, Some("p3".to_owned()), batch.clone()),
        other.webhooks.enqueue(&s1, Some("p3".to_owned()), batch),
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert!(one ^ two, "exactly one enqueue moves the state: {one} {two}");
    assert_eq!(w.fanout_state().await.unwrap(), FanoutState { position: Some("p3".to_owned()), next_order: 3 });
    assert_eq!(listed(&s.repos, &a, None, None, 10).await, [2, 1, 0]);
    assert_eq!(listed(&s.repos, &b, None, None, 10).await, [2, 0]);
    let kept = delivery(&s.repos, &key(&a, 0)).await;
    assert_eq!((kept.status, kept.attempts, kept.next_attempt_at), (DeliveryStatus::Succeeded, vec![logged], None));
    assert_eq!(w.backlog().await.unwrap().pending, 4);
}}

backend_test! { async fn of_two_batches_made_from_one_state_only_the_winners_is_queued(s: StoreCtx) {
    // The fan-out and a test message race for the same orders (two instances, or the API and
    // the fan-out of one): the loser's messages must not be queued, nor take the winner's place.
    let w = &s.repos.webhooks;
    let other = s.reopen().await;
    let (a, b) = (new_endpoint(&s.repos, 0).await, new_endpoint(&s.repos, 1).await);
    for round in 0..4_u64 {
        let state = w.fanout_state().await.unwrap();
        let n = state.next_order;
        let changes = vec![message(n, &[&a]), message(n + 1, &[&a])];
        let test = vec![test_message(n, &b)];
        let (fanout, tested) = tokio::join!(
            w.enqueue(&state, Some(format!("r{round}")), changes),
            other.webhooks.enqueue(&state, state.position.clone(), test),
        );
        let (fanout, tested) = (fanout.unwrap(), tested.unwrap());
        assert!(fanout ^ tested, "round {round}: exactly one wins: {fanout} {tested}");
        let a_orders = listed(&s.repos, &a, None, Some(n + 10), 10).await;
        let b_orders = listed(&s.repos, &b, None, Some(n + 10), 10).await;
        if fanout {
            assert_eq!(a_orders.iter().filter(|o| **o >= n).count(), 2, "round {round}: {a_orders:?}");
            assert!(b_orders.iter().all(|o| *o < n), "round {round}: the test message was queued: {b_orders:?}");
            let d = delivery(&s.repos, &key(&a, n)).await;
            assert_eq!((d.message_id, d.kind), (message_id_of(n), "session.created".to_owned()), "round {round}");
        } else {
            assert!(a_orders.iter().all(|o| *o < n), "round {round}: the fan-out's batch was queued: {a_orders:?}");
            let d = delivery(&s.repos, &key(&b, n)).await;
            assert_eq!((d.kind.as_str(), d.session_id), ("webhook.test", None), "round {round}");
        }
    }
}}

// ---------------------------------------------------------------------------------------------
// Due, claim, record

backend_test! { async fn due_lists_pending_deliveries_of_the_enabled_endpoints_by_their_time_in_order(s: StoreCtx) {
    let (a, b, c) = (
        new_endpoint(&s.repos, 0).await,
        new_endpoint(&s.repos, 1).await,
        new_endpoint(&s.repos, 2).await,
    );
    queue(&s.repos, vec![
        message(0, &[&a, &b]),
        NewMessage { due_at: at(MINUTE), ..message(1, &[&a]) },
        message(2, &[&a, &c]),
        message(3, &[&a]),
        test_message(4, &b),
    ]).await;
    attempt_once(&s.repos, &key(&a, 3), at(3 * SECOND), AfterAttempt::Succeeded).await;
    let now = at(10 * SECOND);

    let due = s.repos.webhooks.due(now, std::slice::from_ref(&a), 10).await.unwrap();
    let keys: Vec<DeliveryKey> = due.iter().map(|d| d.key.clone()).collect();
    assert_eq!(keys, [key(&a, 0), key(&a, 2)], "not the one due later, nor the one delivered");
    for d in &due {
        assert_eq!((d.session_id.as_deref(), d.attempted, d.leased), (Some("s1"), false, false), "{d:?}");
    }

    // Several endpoints: in order (the endpoints of one message in any order).
    let due = due_keys(&s.repos, now, &[&a, &b], 10).await;
    let orders: Vec<u64> = due.iter().map(|(k, _)| k.order).collect();
    assert_eq!(orders, [0, 0, 2, 4]);
    let set: HashSet<DeliveryKey> = due.into_iter().map(|(k, _)| k).collect();
    assert_eq!(set, HashSet::from([key(&a, 0), key(&b, 0), key(&a, 2), key(&b, 4)]));
    let test = s.repos.webhooks.due(now, std::slice::from_ref(&b), 10).await.unwrap();
    assert_eq!((test[1].key.clone(), test[1].session_id.clone()), (key(&b, 4), None));

    assert_eq!(due_keys(&s.repos, now, &[&a, &b, &c], 2).await.iter().map(|(k, _)| k.order).collect::<Vec<_>>(), [0, 0]);
    assert_eq!(due_keys(&s.repos, now, &[&a], 1).await, [(key(&a, 0), false)]);
    assert!(due_keys(&s.repos, now, &[], 10).await.is_empty(), "no endpoint enabled");

    // Due by `now`, inclusive.
    assert!(due_keys(&s.repos, at(2 * SECOND - 1), &[&c], 10).await.is_empty());
    assert_eq!(due_keys(&s.repos, at(2 * SECOND), &[&c], 10).await, [(key(&c, 2), false)]);
    assert_eq!(due_keys(&s.repos, at(MINUTE - 1), &[&a], 10).await.len(), 2);
    assert_eq!(
        due_keys(&s.repos, at(MINUTE), &[&a], 10).await,
        [(key(&a, 0), false), (key(&a, 1), false), (key(&a, 2), false)]
    );
}}

backend_test! { async fn each_delivery_is_claimed_by_exactly_one_of_two_concurrent_claimers(s: StoreCtx) {
    let w = &s.repos.webhooks;
    let other = s.reopen().await;
    let (a, b) = (new_endpoint(&s.repos, 0).await, new_endpoint(&s.repos, 1).await);
    queue(&s.repos, (0..4).map(|o| message(o, &[&a, &b])).collect()).await;
    let keys: Vec<DeliveryKey> = (0..4).flat_map(|o| [key(&a, o), key(&b, o)]).collect();
    let reversed: Vec<DeliveryKey> = keys.iter().rev().cloned().collect();
    let all: HashSet<DeliveryKey> = keys.iter().cloned().collect();

    // Every round after the last one's leases passed.
    for round in 0..3_i64 {
        let now = at(10 * SECOND + round * MINUTE);
        let until = lease_from(now);
        let (t1, t2) = (format!("instance-1-{round}"), format!("instance-2-{round}"));
        let (one, two) = tokio::join!(
            w.claim(&keys, &t1, now, until),
            other.webhooks.claim(&reversed, &t2, now, until),
        );
        let (one, two) = (one.unwrap(), two.unwrap());
        let (k1, k2) = (keys_of(&one), keys_of(&two));
        assert_eq!(k1.len() + k2.len(), 8, "round {round}: a key was claimed twice or not at all: {k1:?} {k2:?}");
        assert!(k1.is_disjoint(&k2), "round {round}: claimed by both: {:?}", k1.intersection(&k2).collect::<Vec<_>>());
        assert_eq!(&k1 | &k2, all, "round {round}");
        for c in one.iter().chain(&two) {
            let o = c.key.order;
            assert_eq!((c.message_id.clone(), c.body.clone(), c.step), (message_id_of(o), body_of(o, "session.created"), 0), "round {round}");
        }
        // Held by those two now: a third takes nothing.
        assert!(w.claim(&keys, "instance-3", now, until).await.unwrap().is_empty(), "round {round}");
    }
}}

backend_test! { async fn a_claimed_delivery_is_held_until_its_lease_passes(s: StoreCtx) {
    let w = &s.repos.webhooks;
    let other = s.reopen().await;
    let a = new_endpoint(&s.repos, 0).await;
    queue(&s.repos, vec![message(0, &[&a]), message(1, &[&a])]).await;
    let now = at(10 * SECOND);
    let until = lease_from(now);

    let claimed = w.claim(&[key(&a, 0)], "instance-1", now, until).await.unwrap();
    assert_eq!(keys_of(&claimed), HashSet::from([key(&a, 0)]));
    assert_eq!(due_keys(&s.repos, now, &[&a], 10).await, [(key(&a, 0), true), (key(&a, 1), false)]);
    let just_before = at(10 * SECOND + LEASE - 1);
    assert_eq!(due_keys(&s.repos, just_before, &[&a], 10).await, [(key(&a, 0), true), (key(&a, 1), false)]);

    // Held: another instance takes only what is free.
    let taken = other.webhooks.claim(&[key(&a, 0), key(&a, 1)], "instance-2", just_before, lease_from(just_before)).await.unwrap();
    assert_eq!(keys_of(&taken), HashSet::from([key(&a, 1)]));

    // Once the lease has passed, the delivery is free and another instance may take it.
    assert_eq!(due_keys(&s.repos, until, &[&a], 10).await, [(key(&a, 0), false), (key(&a, 1), true)]);
    let retaken = other.webhooks.claim(&[key(&a, 0)], "instance-2", until, lease_from(until)).await.unwrap();
    assert_eq!(retaken.len(), 1);
    assert_eq!((retaken[0].key.clone(), retaken[0].step), (key(&a, 0), 0));
    assert_eq!(due_keys(&s.repos, until, &[&a], 10).await, [(key(&a, 0), true), (key(&a, 1), true)]);

    // The first holder's answer comes too late: not logged, and the delivery stays held.
    let late = attempt_at(until, 204, 0);
    assert!(!w.record(&key(&a, 0), "instance-1", &late, AfterAttempt::Succeeded).await.unwrap());
    let d = delivery(&s.repos, &key(&a, 0)).await;
    assert_eq!((d.status, d.attempts.len(), d.next_attempt_at), (DeliveryStatus::Pending, 0, Some(at(0))));
    assert_eq!(due_keys(&s.repos, until, &[&a], 1).await, [(key(&a, 0), true)]);
    // The holder's is.
    let answer = attempt_at(until, 200, 0);
    assert!(other.webhooks.record(&key(&a, 0), "instance-2", &answer, AfterAttempt::Succeeded).await.unwrap());
    assert_eq!(delivery(&s.repos, &key(&a, 0)).await.attempts, [answer]);
}}

backend_test! { async fn a_released_delivery_is_free_at_once_and_only_its_holder_can_release_it(s: StoreCtx) {
    let w = &s.repos.webhooks;
    let other = s.reopen().await;
    let a = new_endpoint(&s.repos, 0).await;
    queue(&s.repos, vec![message(0, &[&a]), message(1, &[&a]), message(2, &[&a])]).await;
    let now = at(10 * SECOND);
    assert_eq!(w.claim(&[key(&a, 0), key(&a, 1)], "instance-1", now, lease_from(now)).await.unwrap().len(), 2);
    assert_eq!(other.webhooks.claim(&[key(&a, 2)], "instance-2", now, lease_from(now)).await.unwrap().len(), 1);

    // Another instance's token releases nothing; a key it does not hold is skipped.
    assert_eq!(other.webhooks.release(&[key(&a, 0), key(&a, 1)], "instance-2").await.unwrap(), 0);
    assert_eq!(w.release(&[], "instance-1").await.unwrap(), 0);
    assert_eq!(w.release(&[key(&a, 0), key(&a, 1), key(&a, 2)], "instance-1").await.unwrap(), 2);
    assert_eq!(
        due_keys(&s.repos, now, &[&a], 10).await,
        [(key(&a, 0), false), (key(&a, 1), false), (key(&a, 2), true)]
    );

    // Released without an attempt: nothing logged, still first in line, and taken at once by
    // another instance, from the start of the schedule.
    let d = delivery(&s.repos, &key(&a, 0)).await;
    assert_eq!((d.status, d.attempts.len()), (DeliveryStatus::Pending, 0));
    let taken = other.webhooks.claim(&[key(&a, 0)], "instance-2", now, lease_from(now)).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!((taken[0].key.clone(), taken[0].step), (key(&a, 0), 0));
    // The first holder's late answer is not logged.
    let late = attempt_at(now, 200, 0);
    assert!(!w.record(&key(&a, 0), "instance-1", &late, AfterAttempt::Succeeded).await.unwrap());
    assert!(delivery(&s.repos, &key(&a, 0)).await.attempts.is_empty());
}}

backend_test! { async fn a_held_delivery_is_not_claimed_again_not_even_by_its_holder(s: StoreCtx) {
    let w = &s.repos.webhooks;
    let a = new_endpoint(&s.repos, 0).await;
    queue(&s.repos, vec![message(0, &[&a])]).await;
    let now = at(10 * SECOND);
    assert_eq!(w.claim(&[key(&a, 0)], "instance-1", now, lease_from(now)).await.unwrap().len(), 1);

    // The holder asks again within its lease (e.g. its `due` read raced its claim): it did not
    // take it now, so it must not start a second attempt.
    let later = at(11 * SECOND);
    let again = w.claim(&[key(&a, 0)], "instance-1", later, lease_from(later)).await.unwrap();
    assert!(again.is_empty(), "claimed twice by its holder: {again:?}");
    assert!(w.claim(&[key(&a, 0)], "instance-2", later, lease_from(later)).await.unwrap().is_empty());
    // Still held until the first lease ends.
    let first_lease_end = lease_from(now);
    assert_eq!(due_keys(&s.repos, first_lease_end, &[&a], 10).await, [(key(&a, 0), false)]);
}}

backend_test! { async fn recording_needs_the_holders_token_and_moves_the_delivery_on(s: StoreCtx) {
    let w = &s.repos.webhooks;
    let a = new_endpoint(&s.repos, 0).await;
    queue(&s.repos, vec![message(0, &[&a]), message(1, &[&a]), message(2, &[&a])]).await;
    let k0 = key(&a, 0);
    let now = at(10 * SECOND);
    let first = attempt_at(now, 503, 0);

    // Nobody holds it: nothing to record.
    assert!(!w.record(&k0, "instance-1", &first, AfterAttempt::Succeeded).await.unwrap());
    assert!(delivery(&s.repos, &k0).await.attempts.is_empty());

    assert_eq!(w.claim(std::slice::from_ref(&k0), "instance-1", now, lease_from(now)).await.unwrap().len(), 1);
    assert!(!w.record(&k0, "instance-2", &first, AfterAttempt::Succeeded).await.unwrap(), "wrong token");
    let d = delivery(&s.repos, &k0).await;
    assert_eq!((d.status, d.attempts.len(), d.next_attempt_at), (DeliveryStatus::Pending, 0, Some(at(0))));
    assert_eq!(due_keys(&s.repos, now, &[&a], 1).await, [(k0.clone(), true)], "still held");

    // A retry: logged, released, pending and due at the time given, one step on.
    let retry = at(5 * MINUTE);
    assert!(w.record(&k0, "instance-1", &first, AfterAttempt::RetryAt(retry)).await.unwrap());
    assert!(!w.record(&k0, "instance-1", &first, AfterAttempt::RetryAt(retry)).await.unwrap(), "released");
    let d = delivery(&s.repos, &k0).await;
    assert_eq!((d.status, d.attempts.clone(), d.next_attempt_at), (DeliveryStatus::Pending, vec![first.clone()], Some(retry)));
    let before_retry = at(5 * MINUTE - 1);
    assert_eq!(due_keys(&s.repos, before_retry, &[&a], 10).await, [(key(&a, 1), false), (key(&a, 2), false)]);
    let due = s.repos.webhooks.due(retry, std::slice::from_ref(&a), 1).await.unwrap();
    assert_eq!((due[0].key.clone(), due[0].attempted, due[0].leased), (k0.clone(), true, false));
    assert!(!s.repos.webhooks.due(retry, std::slice::from_ref(&a), 10).await.unwrap()[1].attempted);

    let claimed = w.claim(std::slice::from_ref(&k0), "instance-2", retry, lease_from(retry)).await.unwrap();
    assert_eq!(claimed[0].step, 1);
    let second = attempt_at(retry, 500, 1);
    let retry2 = at(30 * MINUTE);
    assert!(w.record(&k0, "instance-2", &second, AfterAttempt::RetryAt(retry2)).await.unwrap());
    let claimed = w.claim(std::slice::from_ref(&k0), "instance-1", retry2, lease_from(retry2)).await.unwrap();
    assert_eq!(claimed[0].step, 2);

    // Failed for good: out of the schedule, never due or claimable again.
    let third = attempt_at(retry2, 410, 2);
    assert!(w.record(&k0, "instance-1", &third, AfterAttempt::Failed).await.unwrap());
    let d = delivery(&s.repos, &k0).await;
    assert_eq!((d.status, d.attempts, d.next_attempt_at), (DeliveryStatus::Failed, vec![first, second, third], None));
    let much_later = at(60 * MINUTE);
    assert!(w.claim(std::slice::from_ref(&k0), "instance-3", much_later, lease_from(much_later)).await.unwrap().is_empty());

    // Delivered.
    let (claimed, ok) = attempt_once(&s.repos, &key(&a, 1), much_later, AfterAttempt::Succeeded).await;
    assert_eq!((claimed.step, claimed.message_id), (0, message_id_of(1)));
    let d = delivery(&s.repos, &key(&a, 1)).await;
    assert_eq!((d.status, d.attempts, d.next_attempt_at), (DeliveryStatus::Succeeded, vec![ok], None));
    assert!(w.claim(&[key(&a, 1)], "instance-3", much_later, lease_from(much_later)).await.unwrap().is_empty());
    assert_eq!(due_keys(&s.repos, much_later, &[&a], 10).await, [(key(&a, 2), false)]);
}}

backend_test! { async fn the_attempts_log_keeps_the_newest_attempts_in_order(s: StoreCtx) {
    let a = new_endpoint(&s.repos, 0).await;
    queue(&s.repos, vec![message(0, &[&a])]).await;
    let k = key(&a, 0);
    let total = MAX_LOGGED_ATTEMPTS + 5;
    let mut logged = Vec::new();
    for i in 0..total as i64 {
        let now = at(MINUTE + i * MINUTE);
        let after = AfterAttempt::RetryAt(at(MINUTE + (i + 1) * MINUTE));
        let (claimed, attempt) = attempt_once(&s.repos, &k, now, after).await;
        assert_eq!(claimed.step as i64, i, "attempt {i}");
        logged.push(attempt);
    }
    let d = delivery(&s.repos, &k).await;
    assert_eq!(d.attempts.len(), MAX_LOGGED_ATTEMPTS);
    assert_eq!(d.attempts, logged[total - MAX_LOGGED_ATTEMPTS..], "the newest, oldest first");
    assert_eq!(d.next_attempt_at, Some(at(MINUTE + total as i64 * MINUTE)));
}}

// ---------------------------------------------------------------------------------------------
// The log, recovery, backlog, retention

backend_test! { async fn deliveries_are_listed_newest_first_by_status_and_paged_by_order(s: StoreCtx) {
    let w = &s.repos.webhooks;
    let (a, b) = (new_endpoint(&s.repos, 0).await, new_endpoint(&s.repos, 1).await);
    let kinds = ["session.created", "event.appended", "event.appended", "session.updated", "session.ended"];
    let mut messages: Vec<NewMessage> = kinds.iter().enumerate().map(|(o, kind)| {
        let o = o as u64;
        NewMessage { kind: (*kind).to_owned(), body: body_of(o, kind), ..message(o, &[&a]) }
    }).collect();
    messages[2].endpoints.push(b.clone());
    messages.push(test_message(5, &a));
    queue(&s.repos, messages).await;

    let now = at(MINUTE);
    let retry = at(2 * MINUTE);
    let (_, a0) = attempt_once(&s.repos, &key(&a, 0), now, AfterAttempt::Succeeded).await;
    let (_, a1) = attempt_once(&s.repos, &key(&a, 1), now, AfterAttempt::Failed).await;
    let (_, a2) = attempt_once(&s.repos, &key(&a, 2), now, AfterAttempt::RetryAt(retry)).await;
    let (_, a3) = attempt_once(&s.repos, &key(&a, 3), now, AfterAttempt::Succeeded).await;
    let (_, a5) = attempt_once(&s.repos, &key(&a, 5), now, AfterAttempt::Failed).await;

    let expected = |o: u64, kind: &str, session: Option<&str>, status, attempts: Vec<Attempt>, next| Delivery {
        order: o,
        message_id: message_id_of(o),
        kind: kind.to_owned(),
        session_id: session.map(str::to_owned),
        status,
        attempts,
        next_attempt_at: next,
        created_at: at(o as i64 * SECOND),
    };
    let all = vec![
        expected(5, "webhook.test", None, DeliveryStatus::Failed, vec![a5], None),
        expected(4, "session.ended", Some("s1"), DeliveryStatus::Pending, vec![], Some(at(4 * SECOND))),
        expected(3, "session.updated", Some("s1"), DeliveryStatus::Succeeded, vec![a3], None),
        expected(2, "event.appended", Some("s1"), DeliveryStatus::Pending, vec![a2], Some(retry)),
        expected(1, "event.appended", Some("s1"), DeliveryStatus::Failed, vec![a1], None),
        expected(0, "session.created", Some("s1"), DeliveryStatus::Succeeded, vec![a0], None),
    ];
    assert_eq!(w.deliveries(&a, None, None, 100).await.unwrap(), all);

    assert_eq!(listed(&s.repos, &a, Some(DeliveryStatus::Succeeded), None, 10).await, [3, 0]);
    assert_eq!(listed(&s.repos, &a, Some(DeliveryStatus::Failed), None, 10).await, [5, 1]);
    assert_eq!(listed(&s.repos, &a, Some(DeliveryStatus::Pending), None, 10).await, [4, 2]);
    assert_eq!(listed(&s.repos, &a, None, Some(3), 10).await, [2, 1, 0]);
    assert!(listed(&s.repos, &a, None, Some(0), 10).await.is_empty());
    assert_eq!(listed(&s.repos, &a, Some(DeliveryStatus::Failed), Some(5), 10).await, [1]);
    assert_eq!(listed(&s.repos, &a, Some(DeliveryStatus::Pending), Some(4), 1).await, [2]);

    // Paged two at a time, each page before the last one's oldest.
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = w.deliveries(&a, None, before, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.order);
        pages.push(page.iter().map(|d| d.order).collect::<Vec<_>>());
        assert!(pages.len() <= 3, "{pages:?}");
    }
    assert_eq!(pages, [vec![5, 4], vec![3, 2], vec![1, 0]]);

    // Each endpoint's own: b's delivery of message 2 was never attempted.
    assert_eq!(w.deliveries(&b, None, None, 10).await.unwrap(), [
        expected(2, "event.appended", Some("s1"), DeliveryStatus::Pending, vec![], Some(at(2 * SECOND))),
    ]);
}}

backend_test! { async fn requeue_queues_again_what_is_done_since_a_time_from_the_start_of_the_schedule(s: StoreCtx) {
    let w = &s.repos.webhooks;
    let (a, b) = (new_endpoint(&s.repos, 0).await, new_endpoint(&s.repos, 1).await);
    queue(&s.repos, vec![
        message(0, &[&a]),
        message(1, &[&a, &b]),
        message(2, &[&a]),
        message(3, &[&a]),
        message(4, &[&a]),
    ]).await;
    let now = at(MINUTE);
    let far = at(60 * MINUTE);
    attempt_once(&s.repos, &key(&a, 0), now, AfterAttempt::Succeeded).await;
    let (_, a1_first) = attempt_once(&s.repos, &key(&a, 1), now, AfterAttempt::RetryAt(at(2 * MINUTE))).await;
    let (_, a1_last) = attempt_once(&s.repos, &key(&a, 1), at(2 * MINUTE), AfterAttempt::Failed).await;
    let (_, a2) = attempt_once(&s.repos, &key(&a, 2), now, AfterAttempt::Succeeded).await;
    let (_, a3) = attempt_once(&s.repos, &key(&a, 3), now, AfterAttempt::RetryAt(far)).await;
    attempt_once(&s.repos, &key(&b, 1), now, AfterAttempt::Failed).await;

    let recovery = at(10 * MINUTE);
    // Made at or after message 1: a1 (failed) and a2 (delivered); not a3 or a4 (pending).
    assert_eq!(w.requeue(&a, at(SECOND), recovery).await.unwrap(), 2);

    let d0 = delivery(&s.repos, &key(&a, 0)).await;
    assert_eq!((d0.status, d0.next_attempt_at), (DeliveryStatus::Succeeded, None), "made before `since`");
    let d1 = delivery(&s.repos, &key(&a, 1)).await;
    assert_eq!((d1.status, d1.next_attempt_at, d1.attempts), (DeliveryStatus::Pending, Some(recovery), vec![a1_first, a1_last]));
    let d2 = delivery(&s.repos, &key(&a, 2)).await;
    assert_eq!((d2.status, d2.next_attempt_at, d2.attempts), (DeliveryStatus::Pending, Some(recovery), vec![a2]));
    let d3 = delivery(&s.repos, &key(&a, 3)).await;
    assert_eq!((d3.status, d3.next_attempt_at, d3.attempts), (DeliveryStatus::Pending, Some(far), vec![a3]));
    let d4 = delivery(&s.repos, &key(&a, 4)).await;
    assert_eq!((d4.status, d4.next_attempt_at), (DeliveryStatus::Pending, Some(at(4 * SECOND))));
    assert_eq!(delivery(&s.repos, &key(&b, 1)).await.status, DeliveryStatus::Failed, "another endpoint's");

    // Due at once, from the start of the schedule, and as not yet attempted: a call's messages
    // sent again start in change order again, each after the one before has had its attempt.
    let due = s.repos.webhooks.due(recovery, std::slice::from_ref(&a), 10).await.unwrap();
    let due: Vec<(u64, bool)> = due.iter().map(|d| (d.key.order, d.attempted)).collect();
    assert_eq!(due, [(1, false), (2, false), (4, false)]);
    let claimed = w.claim(&[key(&a, 1), key(&a, 2), key(&a, 3)], "instance-1", recovery, lease_from(recovery)).await.unwrap();
    let steps: HashSet<(u64, u32)> = claimed.iter().map(|c| (c.key.order, c.step)).collect();
    assert_eq!(steps, HashSet::from([(1, 0), (2, 0), (3, 1)]));

    // Nothing left to requeue for `a` (pending, some held); `b`'s by its own time.
    assert_eq!(w.requeue(&a, at(0), recovery).await.unwrap(), 1, "only a0 is not pending");
    assert_eq!(w.requeue(&a, at(0), recovery).await.unwrap(), 0);
    assert_eq!(w.requeue(&b, at(SECOND + 1), recovery).await.unwrap(), 0);
    assert_eq!(w.requeue(&b, at(SECOND), recovery).await.unwrap(), 1);
    assert_eq!(delivery(&s.repos, &key(&b, 1)).await.next_attempt_at, Some(recovery));
}}

backend_test! { async fn the_backlog_counts_pending_deliveries_and_dates_the_oldest(s: StoreCtx) {
    let w = &s.repos.webhooks;
    assert_eq!(w.backlog().await.unwrap(), Backlog { pending: 0, oldest: None });
    let (a, b) = (new_endpoint(&s.repos, 0).await, new_endpoint(&s.repos, 1).await);
    queue(&s.repos, vec![message(0, &[&a, &b]), message(1, &[&a]), message(2, &[&b])]).await;
    assert_eq!(w.backlog().await.unwrap(), Backlog { pending: 4, oldest: Some(at(0)) });

    let now = at(MINUTE);
    assert_eq!(w.claim(&[key(&a, 0)], "instance-1", now, lease_from(now)).await.unwrap().len(), 1);
    assert_eq!(w.backlog().await.unwrap(), Backlog { pending: 4, oldest: Some(at(0)) }, "held is pending");
    let ok = attempt_at(now, 200, 0);
    assert!(w.record(&key(&a, 0), "instance-1", &ok, AfterAttempt::Succeeded).await.unwrap());
    attempt_once(&s.repos, &key(&b, 0), now, AfterAttempt::RetryAt(at(2 * MINUTE))).await;
    assert_eq!(w.backlog().await.unwrap(), Backlog { pending: 3, oldest: Some(at(0)) }, "a retry is pending");

    attempt_once(&s.repos, &key(&b, 0), at(2 * MINUTE), AfterAttempt::Failed).await;
    assert_eq!(w.backlog().await.unwrap(), Backlog { pending: 2, oldest: Some(at(SECOND)) });
    attempt_once(&s.repos, &key(&a, 1), now, AfterAttempt::Succeeded).await;
    assert_eq!(w.backlog().await.unwrap(), Backlog { pending: 1, oldest: Some(at(2 * SECOND)) });
    attempt_once(&s.repos, &key(&b, 2), now, AfterAttempt::Succeeded).await;
    assert_eq!(w.backlog().await.unwrap(), Backlog { pending: 0, oldest: None });

    assert_eq!(w.requeue(&b, at(0), at(3 * MINUTE)).await.unwrap(), 2);
    assert_eq!(w.backlog().await.unwrap(), Backlog { pending: 2, oldest: Some(at(0)) });
}}

backend_test! { async fn the_backlog_dates_the_oldest_by_when_it_was_made_not_by_its_order(s: StoreCtx) {
    // A test message is made now; a change the fan-out reaches later was made before it, yet
    // gets the next order.
    let w = &s.repos.webhooks;
    let a = new_endpoint(&s.repos, 0).await;
    let test = NewMessage { created_at: at(5 * MINUTE), due_at: at(5 * MINUTE), ..test_message(0, &a) };
    queue(&s.repos, vec![test]).await;
    queue(&s.repos, vec![message(1, &[&a])]).await;
    assert_eq!(w.backlog().await.unwrap(), Backlog { pending: 2, oldest: Some(at(SECOND)) });
    attempt_once(&s.repos, &key(&a, 1), at(6 * MINUTE), AfterAttempt::Succeeded).await;
    assert_eq!(w.backlog().await.unwrap(), Backlog { pending: 1, oldest: Some(at(5 * MINUTE)) });
}}

backend_test! { async fn trim_reaches_unnamed_old_messages_behind_old_ones_still_pending(s: StoreCtx) {
    // An endpoint disabled for longer than the retention keeps its deliveries pending, so the
    // oldest messages stay named. The messages after them that nothing names still go.
    let w = &s.repos.webhooks;
    let (a, b) = (new_endpoint(&s.repos, 0).await, new_endpoint(&s.repos, 1).await);
    queue(&s.repos, vec![
        message(0, &[&a]),
        message(1, &[&a]),
        message(2, &[&a]),
        message(3, &[&b]),
        message(4, &[&b]),
        message(5, &[&b]),
    ]).await;
    let now = at(MINUTE);
    for order in [3, 4, 5] {
        attempt_once(&s.repos, &key(&b, order), now, AfterAttempt::Succeeded).await;
    }
    let cut = at(10 * MINUTE);
    let mut removed = 0;
    for _ in 0..3 {
        removed += w.trim(cut, 2).await.unwrap();
    }
    assert_eq!(removed, 3, "b3, b4, b5");
    let left: Vec<u64> = w.messages_of("s1").await.unwrap().iter().map(|m| m.order).collect();
    assert_eq!(left, [0, 1, 2], "the messages a's pending deliveries name stay, and only they");
}}

backend_test! { async fn trim_removes_at_most_max_finished_deliveries_made_before_a_time_and_never_pending_ones(s: StoreCtx) {
    let w = &s.repos.webhooks;
    let (a, b) = (new_endpoint(&s.repos, 0).await, new_endpoint(&s.repos, 1).await);
    queue(&s.repos, vec![
        message(0, &[&a, &b]),
        message(1, &[&a]),
        message(2, &[&a]),
        message(3, &[&a]),
        message(4, &[&b]),
    ]).await;
    let now = at(MINUTE);
    attempt_once(&s.repos, &key(&a, 0), now, AfterAttempt::Succeeded).await;
    attempt_once(&s.repos, &key(&b, 0), now, AfterAttempt::Failed).await;
    attempt_once(&s.repos, &key(&a, 1), now, AfterAttempt::Failed).await;
    let (_, a2) = attempt_once(&s.repos, &key(&a, 2), now, AfterAttempt::RetryAt(at(2 * MINUTE))).await;
    attempt_once(&s.repos, &key(&a, 3), now, AfterAttempt::Succeeded).await;
    // b4 is pending, never attempted.

    // Made before message 3: a0, b0, a1 finished; a2 pending.
    let cut = at(3 * SECOND);
    assert_eq!(w.trim(cut, 2).await.unwrap(), 2, "at most max");
    let left = listed(&s.repos, &a, None, Some(2), 10).await.len() + listed(&s.repos, &b, None, Some(4), 10).await.len();
    assert_eq!(left, 1, "one of a0, b0, a1 left");
    assert_eq!(w.trim(cut, 10).await.unwrap(), 1);
    assert_eq!(w.trim(cut, 10).await.unwrap(), 0);
    assert_eq!(listed(&s.repos, &a, None, None, 10).await, [3, 2]);
    assert_eq!(listed(&s.repos, &b, None, None, 10).await, [4]);

    // Everything older than now: the pending ones stay, with their messages.
    assert_eq!(w.trim(at(10 * MINUTE), 10).await.unwrap(), 1, "only a3");
    assert_eq!(w.deliveries(&a, None, None, 10).await.unwrap(), [Delivery {
        order: 2,
        message_id: message_id_of(2),
        kind: "session.created".to_owned(),
        session_id: Some("s1".to_owned()),
        status: DeliveryStatus::Pending,
        attempts: vec![a2],
        next_attempt_at: Some(at(2 * MINUTE)),
        created_at: at(2 * SECOND),
    }]);
    assert_eq!(listed(&s.repos, &b, None, None, 10).await, [4]);
    assert_eq!(w.backlog().await.unwrap(), Backlog { pending: 2, oldest: Some(at(2 * SECOND)) });
    let later = at(11 * MINUTE);
    let claimed = w.claim(&[key(&a, 2), key(&b, 4)], "instance-1", later, lease_from(later)).await.unwrap();
    let bodies: HashSet<(u64, String)> = claimed.into_iter().map(|c| (c.key.order, c.body)).collect();
    assert_eq!(bodies, HashSet::from([(2, body_of(2, "session.created")), (4, body_of(4, "session.created"))]));
}}

backend_test! { async fn a_sessions_messages_are_found_and_their_bodies_replaced(s: StoreCtx) {
    let w = &s.repos.webhooks;
    let a = new_endpoint(&s.repos, 0).await;
    let other = NewMessage { session_id: Some("s2".to_owned()), ..message(1, &[&a]) };
    queue(&s.repos, vec![message(0, &[&a]), other, test_message(2, &a), message(3, &[&a])]).await;
    let found = w.messages_of("s1").await.unwrap();
    assert_eq!(found, [
        StoredMessage { order: 0, kind: "session.created".to_owned(), created_at: at(0) },
        StoredMessage { order: 3, kind: "session.created".to_owned(), created_at: at(3 * SECOND) },
    ]);
    assert!(w.messages_of("nobody").await.unwrap().is_empty());
    w.replace_bodies(vec![(0, "{\"bare\":0}".to_owned()), (3, "{\"bare\":3}".to_owned())]).await.unwrap();
    let now = at(10 * SECOND);
    let claimed = w.claim(&[key(&a, 0), key(&a, 1), key(&a, 3)], "t", now, lease_from(now)).await.unwrap();
    let mut bodies: Vec<(u64, String)> = claimed.iter().map(|c| (c.key.order, c.body.clone())).collect();
    bodies.sort();
    assert_eq!(bodies, [
        (0, "{\"bare\":0}".to_owned()),
        (1, body_of(1, "session.created")),
        (3, "{\"bare\":3}".to_owned()),
    ]);
}}
