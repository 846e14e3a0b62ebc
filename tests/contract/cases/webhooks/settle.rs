//! `settle`: the attempts that ended logged, then the next deliveries claimed, in one call: as
//! `record` and `claim` one after the other would (one write on SQLite).

use session_service::repo::webhooks::Ended;

use super::*;

fn ended(key: DeliveryKey, attempt: &Attempt, after: AfterAttempt) -> Ended {
    Ended {
        key,
        attempt: attempt.clone(),
        after,
    }
}

backend_test! { async fn settling_logs_what_ended_then_claims_what_starts(s: StoreCtx) {
    let w = &s.repos.webhooks;
    let a = new_endpoint(&s.repos, 0).await;
    queue(&s.repos, vec![message(0, &[&a]), message(1, &[&a]), message(2, &[&a])]).await;
    let now = at(10 * SECOND);

    // Nothing ended yet: claims alone.
    let (held, claimed) = w.settle(&[], &[key(&a, 0), key(&a, 1)], "instance-1", now, lease_from(now)).await.unwrap();
    assert!(held.is_empty());
    assert_eq!(keys_of(&claimed), HashSet::from([key(&a, 0), key(&a, 1)]));

    // 0 delivered; 1 to be tried again at once; 2 was never claimed, so not this instance's to
    // log. The same call claims 1 again (its log released it first) and 2.
    let ok = attempt_at(now, 204, 0);
    let busy = attempt_at(now, 503, 0);
    let ends = [
        ended(key(&a, 0), &ok, AfterAttempt::Succeeded),
        ended(key(&a, 1), &busy, AfterAttempt::RetryAt(now)),
        ended(key(&a, 2), &ok, AfterAttempt::Succeeded),
    ];
    let (held, claimed) = w.settle(&ends, &[key(&a, 1), key(&a, 2)], "instance-1", now, lease_from(now)).await.unwrap();
    assert_eq!(held, [true, true, false]);
    assert_eq!(keys_of(&claimed), HashSet::from([key(&a, 1), key(&a, 2)]));
    assert_eq!(claimed.iter().find(|c| c.key == key(&a, 1)).map(|c| c.step), Some(1), "one step on");

    let d0 = delivery(&s.repos, &key(&a, 0)).await;
    assert_eq!((d0.status, d0.attempts), (DeliveryStatus::Succeeded, vec![ok.clone()]));
    let d1 = delivery(&s.repos, &key(&a, 1)).await;
    assert_eq!((d1.status, d1.attempts), (DeliveryStatus::Pending, vec![busy]));
    let d2 = delivery(&s.repos, &key(&a, 2)).await;
    assert_eq!((d2.status, d2.attempts.len()), (DeliveryStatus::Pending, 0), "nothing logged on what another holder would have held");
    // Both held by instance-1 now.
    assert!(w.claim(&[key(&a, 1), key(&a, 2)], "instance-2", now, lease_from(now)).await.unwrap().is_empty());

    // Logs alone, no claim.
    let (held, claimed) = w.settle(&[ended(key(&a, 2), &ok, AfterAttempt::Succeeded)], &[], "instance-1", now, lease_from(now)).await.unwrap();
    assert_eq!((held, claimed.len()), (vec![true], 0));
    assert_eq!(delivery(&s.repos, &key(&a, 2)).await.status, DeliveryStatus::Succeeded);
}}
