//! `Expected-Seq` on appends over HTTP: 412 `seq_mismatch` with `currentSeq`, nothing stored; a
//! replay answered 200 whatever the header; a malformed header 400; of 16 concurrent writers
//! expecting the same seq, exactly one 201.

use serde_json::{Value, json};

use crate::support::app::{Reply, TestApp};

fn speech(event_id: &str) -> Value {
    json!({"eventId": event_id, "type": "user_speech", "payload": {"text": event_id}})
}

/// POSTs `body` to `path` with `Expected-Seq: expected`.
async fn post_expecting(app: &TestApp, path: &str, expected: &str, body: &Value) -> Reply {
    let response = app
        .client
        .post(app.url(path))
        .header("Expected-Seq", expected)
        .json(body)
        .send()
        .await
        .expect("POST");
    TestApp::read(response).await
}

backend_test! { async fn an_append_at_another_seq_is_412_and_stores_nothing(app: TestApp) {
    app.create_session("c").await;
    let path = "/sessions/c/events";
    assert_eq!(post_expecting(&app, path, "0", &speech("e1")).await.status, 201);
    let stale = post_expecting(&app, path, "0", &speech("e2")).await;
    let problem = stale.assert_problem(412, "seq_mismatch");
    assert_eq!(problem["currentSeq"], 1, "{problem}");
    assert_eq!(app.event_count("c").await, 1);
    assert_eq!(app.get("/sessions/c/events/e2").await.status, 404);
    // Idempotency first: the stored event is answered 200 whatever the header says.
    let replay = post_expecting(&app, path, "9", &speech("e1")).await;
    assert_eq!((replay.status, replay.body["seq"].clone()), (200, json!(1)));
    assert_eq!(post_expecting(&app, path, "1", &speech("e2")).await.status, 201);

    let batch = json!({"events": [speech("e3"), speech("e4")]});
    let stale = post_expecting(&app, "/sessions/c/events:batch", "1", &batch).await;
    assert_eq!(stale.assert_problem(412, "seq_mismatch")["currentSeq"], 2);
    assert_eq!(app.event_count("c").await, 2);
    let stored = post_expecting(&app, "/sessions/c/events:batch", "2", &batch).await;
    assert_eq!(stored.status, 201, "{}", stored.text);
    let again = post_expecting(&app, "/sessions/c/events:batch", "2", &batch).await;
    assert_eq!(again.status, 200, "a replayed batch: {}", again.text);
}}

backend_test! { async fn a_malformed_expected_seq_is_400_and_stores_nothing(app: TestApp) {
    app.create_session("c").await;
    for bad in ["", "-1", "one", "1.5", "99999999999999999999999"] {
        let r = post_expecting(&app, "/sessions/c/events", bad, &speech("e1")).await;
        r.assert_problem(400, "validation_failed");
        assert!(r.text.contains("Expected-Seq"), "{bad:?}: {}", r.text);
    }
    assert_eq!(app.event_count("c").await, 0);
}}

backend_test! { async fn of_16_writers_expecting_one_seq_exactly_one_gets_201(app: TestApp) {
    app.create_session("race").await;
    app.add_event("race", "first").await;
    for (path, body) in [
        ("/sessions/race/events", None),
        ("/sessions/race/events:batch", Some(())),
    ] {
        let expected = app.event_count("race").await.to_string();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (app, expected) = (app.handle(), expected.clone());
                let body = match body {
                    None => speech(&format!("w{i}")),
                    Some(()) => json!({"events": [speech(&format!("b{i}-1")), speech(&format!("b{i}-2"))]}),
                };
                tokio::spawn(async move { post_expecting(&app, path, &expected, &body).await })
            })
            .collect();
        let mut statuses = Vec::new();
        for t in tasks {
            let reply = t.await.unwrap();
            if reply.status == 412 {
                reply.assert_problem(412, "seq_mismatch");
            }
            statuses.push(reply.status);
        }
        statuses.sort_unstable();
        let mut want = vec![201];
        want.extend([412; 15]);
        assert_eq!(statuses, want, "{path}");
    }
    // 1, then one single event, then one batch of two.
    assert_eq!(app.event_count("race").await, 4);
}}
