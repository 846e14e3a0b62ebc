//! Webhooks over HTTP, with a real receiver on loopback: messages signed as Standard Webhooks
//! (checked by an independent verifier), one `webhook-id` per change on every attempt and every
//! endpoint, retries and their log, 410, `Retry-After`, rotation, replay, filters, a receiver
//! down then up, two instances, and the refusals (SSRF, bad fields, scopes).

use std::collections::HashMap;

use serde_json::json;
use session_service::domain::Timestamp;
use session_service::domain::webhook::{EndpointId, Secret};
use session_service::repo::webhooks::Endpoint;

use crate::support::StoreCtx;
use crate::support::app::{spawn_app_with, two_instances};
use crate::webhooks_support::{FAST, Received, Receiver, log_until, register};

backend_test! { async fn a_call_is_pushed_signed_in_change_order_with_one_id_per_change(s: StoreCtx) {
    let app = spawn_app_with(s, FAST).await;
    let (first, second) = (Receiver::start().await, Receiver::start().await);
    let all = ["session.created", "event.appended", "session.ended"];
    let (id, secret) = register(&app, &first.url, &all).await;
    let (_, other_secret) = register(&app, &second.url, &["session.created", "session.ended"]).await;
    app.create_session("call-1").await;
    app.add_events("call-1", "e", 3).await;
    assert_eq!(app.complete("call-1", None).await.status, 200);

    let got = first.until("five messages", |r| r.len() >= 5).await;
    let kinds: Vec<String> = got.iter().map(|r| r.kind()).collect();
    assert_eq!(kinds, ["session.created", "event.appended", "event.appended", "event.appended", "session.ended"]);
    let seqs: Vec<u64> = got[1..4].iter().map(|r| r.json()["data"]["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    for r in &got {
        assert!(r.verified_by(&secret), "the standardwebhooks verifier accepts {r:?}");
        assert!(!r.verified_by(&other_secret), "another endpoint's secret does not verify");
        let body = r.json();
        assert_eq!(body.as_object().unwrap().len(), 3, "{{type, timestamp, data}}: {body}");
        assert_eq!(body["data"]["sessionId"], "call-1");
    }
    assert_eq!(got[4].json()["data"]["status"], "completed");
    // The other endpoint got the same changes under the same ids.
    let other = second.until("two messages", |r| r.len() >= 2).await;
    assert_eq!(other[0].id, got[0].id);
    assert_eq!(other[1].id, got[4].id);
    let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 5, "one id per change");

    let logged = log_until(&app, &id, "five delivered", |l| {
        l.len() == 5 && l.iter().all(|d| d["status"] == "succeeded")
    })
    .await;
    assert_eq!(logged[0]["type"], "session.ended", "newest first");
    assert_eq!(logged[0]["attempts"][0]["responseStatus"], 204);
    assert_eq!(logged[0]["messageId"], got[4].id.as_str());

    // Sent again by recover: the call's messages start in change order again, under their ids.
    let r = app.post_json(&format!("/webhooks/{id}/recover"), &json!({"since": "2000-01-01T00:00:00Z"})).await;
    assert_eq!((r.status, r.body["requeued"].as_u64()), (202, Some(5)), "{}", r.text);
    let again = first.until("five messages again", |r| r.len() >= 10).await;
    let ids = |rs: &[Received]| rs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&again[5..]), ids(&got[..5]), "in change order");
}}

backend_test! { async fn a_failing_receiver_gets_each_retry_under_one_id_and_the_log_shows_every_attempt(s: StoreCtx) {
    let app = spawn_app_with(s, FAST).await;
    let receiver = Receiver::start().await;
    receiver.answer(&[(500, None), (500, None), (500, None)]);
    let (id, secret) = register(&app, &receiver.url, &["session.created"]).await;
    app.create_session("retried").await;

    let got = receiver.until("four attempts", |r| r.len() >= 4).await;
    assert!(got.iter().all(|r| r.id == got[0].id), "one webhook-id on every attempt");
    assert!(got.iter().all(|r| r.verified_by(&secret)));
    let logged = log_until(&app, &id, "the success logged", |l| {
        l.first().is_some_and(|d| d["status"] == "succeeded")
    })
    .await;
    let statuses: Vec<u64> = logged[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["responseStatus"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 500, 204]);
    assert!(logged[0]["nextAttemptAt"].is_null());
    // Nothing more comes.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 4);
}}

backend_test! { async fn a_message_failing_every_attempt_ends_failed_and_recover_sends_it_again(s: StoreCtx) {
    let app = spawn_app_with(s, FAST).await;
    let receiver = Receiver::start().await;
    receiver.answer(&[(500, None); 4]);
    let (id, _) = register(&app, &receiver.url, &["session.created"]).await;
    app.create_session("lost").await;
    let logged = log_until(&app, &id, "the message failed", |l| {
        l.first().is_some_and(|d| d["status"] == "failed")
    })
    .await;
    assert!(app.get(&format!("/webhooks/{id}")).await.body["failingSince"].is_string());
    assert_eq!(logged[0]["attempts"].as_array().unwrap().len(), 4, "the schedule has four attempts");
    let first_id = receiver.received()[0].id.clone();

    let r = app
        .post_json(&format!("/webhooks/{id}/recover"), &json!({"since": "2000-01-01T00:00:00Z"}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["requeued"], 1);
    let got = receiver.until("the replay", |r| r.len() >= 5).await;
    assert_eq!(got[4].id, first_id, "a replay keeps its webhook-id");
    log_until(&app, &id, "the replay delivered", |l| l[0]["status"] == "succeeded").await;
    let endpoint = app.get(&format!("/webhooks/{id}")).await;
    assert!(endpoint.body["failingSince"].is_null(), "a success ends the streak: {}", endpoint.text);
}}

backend_test! { async fn a_410_disables_the_endpoint(s: StoreCtx) {
    let app = spawn_app_with(s, FAST).await;
    let receiver = Receiver::start().await;
    receiver.answer(&[(410, None)]);
    let (id, _) = register(&app, &receiver.url, &["session.created"]).await;
    app.create_session("gone-1").await;
    log_until(&app, &id, "the 410 logged", |l| l.first().is_some_and(|d| d["status"] == "failed")).await;
    let endpoint = app.get(&format!("/webhooks/{id}")).await;
    assert_eq!(endpoint.body["enabled"], false, "{}", endpoint.text);
    assert!(endpoint.body["disabledReason"].as_str().unwrap().contains("410"));
    app.create_session("gone-2").await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 1, "a disabled endpoint gets nothing more");
    // Nothing queued for it would go: test and recover say so instead of a 202.
    let since = json!({"since": "2020-01-01T00:00:00Z"});
    for (path, body) in [("test", json!({})), ("recover", since)] {
        let r = app.post_json(&format!("/webhooks/{id}/{path}"), &body).await;
        r.assert_problem(409, "webhook_disabled");
        assert!(r.text.contains("enable it first"), "{path}: {}", r.text);
    }

    let r = app
        .request_json(reqwest::Method::PATCH, &format!("/webhooks/{id}"), &json!({"enabled": true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["enabled"], true);
    assert!(r.body["disabledReason"].is_null());
    app.create_session("gone-3").await;
    let got = receiver.until("a message after re-enabling", |r| r.len() >= 2).await;
    assert_eq!(got[1].json()["data"]["sessionId"], "gone-3");
}}

backend_test! { async fn retry_after_is_honoured(s: StoreCtx) {
    let app = spawn_app_with(s, &[FAST, &[("WEBHOOK_RETRY_SCHEDULE", "0,0,0")]].concat()).await;
    let receiver = Receiver::start().await;
    receiver.answer(&[(503, Some("2"))]);
    register(&app, &receiver.url, &["session.created"]).await;
    app.create_session("later").await;
    let got = receiver.until("the retry", |r| r.len() >= 2).await;
    let waited = got[1].at - got[0].at;
    assert!(waited >= std::time::Duration::from_millis(1900), "retried after {waited:?}, before Retry-After: 2");
}}

backend_test! { async fn after_a_rotation_both_secrets_verify_until_the_overlap_ends(s: StoreCtx) {
    let app = spawn_app_with(s, FAST).await;
    let receiver = Receiver::start().await;
    let (id, old) = register(&app, &receiver.url, &["session.created"]).await;
    let r = app.post_json(&format!("/webhooks/{id}/rotate-secret"), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let new = r.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let until = session_service::domain::Timestamp::parse(r.body["previousSecretExpiresAt"].as_str().unwrap()).unwrap();
    let in_a_day = session_service::domain::Timestamp::now().plus_seconds(86_400);
    assert!(until <= in_a_day && until > in_a_day.minus_seconds(60), "{}", r.text);
    assert_eq!(app.get(&format!("/webhooks/{id}/secret")).await.body["secret"], new.as_str());
    app.create_session("rotated").await;
    let got = receiver.until("one message", |r| !r.is_empty()).await;
    assert_eq!(got[0].signature.split(' ').count(), 2, "{}", got[0].signature);
    assert!(got[0].verified_by(&new) && got[0].verified_by(&old));
}}

backend_test! { async fn the_overlap_over_only_the_new_secret_signs(s: StoreCtx) {
    let app = spawn_app_with(s, &[FAST, &[("WEBHOOK_SECRET_OVERLAP_SECONDS", "0")]].concat()).await;
    let receiver = Receiver::start().await;
    let (id, old) = register(&app, &receiver.url, &["session.created"]).await;
    let new = app.post_json(&format!("/webhooks/{id}/rotate-secret"), &json!({})).await.body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    app.create_session("rotated").await;
    let got = receiver.until("one message", |r| !r.is_empty()).await;
    assert!(got[0].verified_by(&new) && !got[0].verified_by(&old));
}}

backend_test! { async fn a_metadata_filter_picks_the_sessions_and_deletions_reach_everyone(s: StoreCtx) {
    let app = spawn_app_with(s, FAST).await;
    let receiver = Receiver::start().await;
    let r = app
        .post_json("/webhooks", &json!({
            "url": receiver.url,
            "types": ["session.created", "event.appended", "session.deleted"],
            "filter": {"metadata": {"tenant": "acme"}},
        }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["filter"], json!({"metadata": {"tenant": "acme"}}));
    for (id, tenant) in [("acme-1", "acme"), ("other-1", "globex")] {
        let r = app
            .post_json("/sessions", &json!({"sessionId": id, "language": "en", "metadata": {"tenant": tenant}}))
            .await;
        assert_eq!(r.status, 201);
        app.add_event(id, "e1").await;
    }
    assert_eq!(app.request(reqwest::Method::DELETE, "/sessions/other-1").await.status, 204);
    let got = receiver.until("three messages", |r| r.len() >= 3).await;
    // Sessions are delivered side by side; each one's messages in order.
    let mut seen: Vec<(String, String)> = got
        .iter()
        .map(|r| (r.json()["data"]["sessionId"].as_str().unwrap().to_owned(), r.kind()))
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(seen, [
        ("acme-1".to_owned(), "session.created".to_owned()),
        ("acme-1".to_owned(), "event.appended".to_owned()),
        ("other-1".to_owned(), "session.deleted".to_owned()),
    ]);
}}

backend_test! { async fn a_receiver_down_then_up_gets_everything_once(s: StoreCtx) {
    let app = spawn_app_with(s, &[FAST, &[("WEBHOOK_RETRY_SCHEDULE", "0,1,1,1,1,1,1,1,1,1")]].concat()).await;
    // A port with nothing listening: every attempt is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (id, secret) = register(&app, &format!("http://{addr}/hook"), &["session.created"]).await;
    for n in 0..5 {
        app.create_session(&format!("down-{n}")).await;
    }
    log_until(&app, &id, "refused attempts logged", |l| {
        l.len() == 5 && l.iter().all(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let receiver = Receiver::on(listener);
    let got = receiver.until("five messages", |r| r.len() >= 5).await;
    log_until(&app, &id, "all delivered", |l| l.iter().all(|d| d["status"] == "succeeded")).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in receiver.received() {
        assert!(r.verified_by(&secret));
        *per_id.entry(r.id).or_default() += 1;
    }
    assert_eq!(per_id.len(), 5);
    assert!(per_id.values().all(|n| *n == 1), "nothing twice: {per_id:?}");
    assert!(got.iter().all(|r| r.kind() == "session.created"));
}}

backend_test! { async fn two_instances_deliver_each_message_once(s: StoreCtx) {
    let (a, b) = two_instances(s, FAST).await;
    let receiver = Receiver::start().await;
    register(&a, &receiver.url, &["session.created", "event.appended"]).await;
    let mut writes = Vec::new();
    for n in 0..10 {
        let app = if n % 2 == 0 { a.handle() } else { b.handle() };
        writes.push(tokio::spawn(async move {
            let id = format!("two-{n}");
            app.create_session(&id).await;
            app.add_events(&id, "e", 2).await;
        }));
    }
    for w in writes {
        w.await.unwrap();
    }
    receiver.until("thirty messages", |r| r.len() >= 30).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in receiver.received() {
        *per_id.entry(r.id).or_default() += 1;
    }
    assert_eq!(per_id.len(), 30);
    assert!(per_id.values().all(|n| *n == 1), "each message once: {per_id:?}");
}}

backend_test! { async fn the_test_message_is_sent_and_logged(s: StoreCtx) {
    let app = spawn_app_with(s, FAST).await;
    let receiver = Receiver::start().await;
    let (id, secret) = register(&app, &receiver.url, &["session.ended"]).await;
    let r = app.post_json(&format!("/webhooks/{id}/test"), &json!({})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let got = receiver.until("the test", |r| !r.is_empty()).await;
    assert_eq!(got[0].kind(), "webhook.test");
    assert_eq!(got[0].json()["data"]["endpointId"], id.as_str());
    assert_eq!(got[0].id, r.body["messageId"].as_str().unwrap());
    assert!(got[0].verified_by(&secret));
}}

backend_test! { async fn endpoints_are_listed_changed_and_removed_without_showing_secrets(s: StoreCtx) {
    let app = spawn_app_with(s, FAST).await;
    let r = app.post_json("/webhooks", &json!({"url": "http://127.0.0.1:9/a", "description": "billing"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.header("location"), Some(format!("/webhooks/{id}").as_str()));
    assert_eq!(r.body["types"], json!(["session.created", "session.updated", "session.ended", "session.deleted"]));
    assert!(r.body["secret"].as_str().unwrap().starts_with("whsec_"));
    let listed = app.get("/webhooks").await;
    assert_eq!(listed.body["webhooks"][0]["id"], id.as_str());
    assert!(listed.body["webhooks"][0].get("secret").is_none());
    assert!(app.get(&format!("/webhooks/{id}")).await.body.get("secret").is_none());
    let r = app
        .request_json(reqwest::Method::PATCH, &format!("/webhooks/{id}"), &json!({
            "types": ["event.appended"], "description": null, "enabled": false,
        }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["types"], json!(["event.appended"]));
    assert!(r.body["description"].is_null());
    assert_eq!(r.body["enabled"], false);
    let r = app
        .request_json(reqwest::Method::PATCH, &format!("/webhooks/{id}"), &json!({"types": [], "url": "gopher://x"}))
        .await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["url", "types"]);
    assert_eq!(app.get(&format!("/webhooks/{id}")).await.body["types"], json!(["event.appended"]), "nothing changed");
    assert_eq!(app.request(reqwest::Method::DELETE, &format!("/webhooks/{id}")).await.status, 204);
    app.get(&format!("/webhooks/{id}")).await.assert_problem(404, "webhook_not_found");
    app.request(reqwest::Method::DELETE, &format!("/webhooks/{id}")).await.assert_problem(404, "webhook_not_found");
    app.get("/webhooks/nope/deliveries").await.assert_problem(404, "webhook_not_found");
}}

backend_test! { async fn receivers_on_private_addresses_are_refused_unless_allowed(s: StoreCtx) {
    let app = spawn_app_with(s, &[]).await;
    for url in [
        "http://127.0.0.1:8080/", "http://localhost/", "http://10.0.0.7/", "http://[::1]/",
        "http://169.254.169.254/latest/meta-data", "http://0.0.0.0/", "http://192.168.1.1/",
        "http://[::ffff:127.0.0.1]/", "http://[::127.0.0.1]/", "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/", "http://198.18.0.1/",
    ] {
        let r = app.post_json("/webhooks", &json!({"url": url})).await;
        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), ["url"], "{url}: {}", r.text);
    }
    for url in ["ftp://example.com/", "https://user:pw@example.com/", "not a url"] {
        app.post_json("/webhooks", &json!({"url": url})).await.assert_problem(400, "validation_failed");
    }
    assert!(app.get("/webhooks").await.body["webhooks"].as_array().unwrap().is_empty());
}}

backend_test! { async fn a_private_receiver_stored_earlier_is_refused_at_each_attempt(s: StoreCtx) {
    // Stored earlier (as by an instance that allowed private networks: written to the store
    // directly, so that no such instance runs beside this one); this one does not allow them.
    let receiver = Receiver::start().await;
    let endpoint = Endpoint {
        id: EndpointId::generate(),
        url: receiver.url.clone(),
        types: vec!["session.created".to_owned()],
        description: None,
        metadata_filter: serde_json::Map::new(),
        enabled: true,
        disabled_reason: None,
        paused: None,
        secret: Secret::generate().unwrap(),
        previous_secret: None,
        failing_since: None,
        created_at: Timestamp::now().millis(),
        revision: 0,
    };
    assert!(s.repos.webhooks.create_endpoint(&endpoint, 100).await.unwrap());
    let id = endpoint.id.as_str().to_owned();
    let app = spawn_app_with(s, &[("WEBHOOK_RETRY_SCHEDULE", "0,60")]).await;
    app.create_session("ssrf").await;
    let logged = log_until(&app, &id, "a refused attempt", |l| {
        l.first().is_some_and(|d| !d["attempts"].as_array().unwrap().is_empty())
    })
    .await;
    let error = logged[0]["attempts"][0]["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("refused"), "{error}");
    assert!(logged[0]["attempts"][0]["responseStatus"].is_null());
    assert!(receiver.received().is_empty(), "the receiver was never dialled");
}}

backend_test! { async fn bad_bodies_and_parameters_are_400_problems_naming_each_field(s: StoreCtx) {
    let app = spawn_app_with(s, FAST).await;
    let r = app
        .post_json("/webhooks", &json!({"types": ["nope"], "filter": {"metadata": {"a b": 1}}, "extra": 1}))
        .await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["extra"]);
    let r = app.post_json("/webhooks", &json!({"types": ["nope"], "filter": {"metadata": {"a": {}}}})).await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["url", "types", "filter.metadata"]);
    let (id, _) = register(&app, "http://127.0.0.1:9/x", &["session.created"]).await;
    let r = app.get(&format!("/webhooks/{id}/deliveries?status=lost&limit=0&after=zz&x=1")).await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["status", "limit", "after", "x"]);
    let r = app.post_json(&format!("/webhooks/{id}/recover"), &json!({"since": "yesterday"})).await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["since"]);
    // Read as strictly as every other body: a key twice, an integer beyond 64 bits, no object.
    for (body, code) in [
        (r#"{"url": "http://127.0.0.1:9/x", "url": "http://127.0.0.1:9/y"}"#, "malformed_json"),
        (r#"{"url": "http://127.0.0.1:9/x", "filter": {"metadata": {"a": 99999999999999999999999}}}"#, "malformed_json"),
        ("[1]", "body_not_object"),
    ] {
        app.post_raw("/webhooks", Some("application/json"), body).await.assert_problem(400, code);
        let path = format!("/webhooks/{id}");
        let r = app.client().patch(app.url(&path)).header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{body}");
    }
    assert_eq!(app.get("/webhooks").await.body["webhooks"].as_array().map(Vec::len), Some(1), "nothing was stored");
    // The reads without parameters name an unknown one.
    for path in ["/webhooks?x=1".to_owned(), format!("/webhooks/{id}?x=1"), format!("/webhooks/{id}/secret?x=1")] {
        let r = app.get(&path).await;
        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), ["x"], "{path}");
    }
}}

backend_test! { async fn webhooks_need_the_admin_scope(s: StoreCtx) {
    let keys = "read:reader-key-0123456789,write:writer-key-0123456789,admin:admin-key-01234567890";
    let app = spawn_app_with(s, &[FAST, &[("API_KEYS", keys)]].concat()).await;
    for (key, status) in [("reader-key-0123456789", 403), ("writer-key-0123456789", 403), ("admin-key-01234567890", 200)] {
        let r = app.get_with_header("/webhooks", "authorization", &format!("Bearer {key}")).await;
        assert_eq!(r.status().as_u16(), status, "{key}");
    }
    assert_eq!(app.get("/webhooks").await.status, 401);
    // The admin key does everything else too.
    let r = app
        .client()
        .post(app.url("/webhooks"))
        .header("authorization", "Bearer admin-key-01234567890")
        .json(&json!({"url": "http://127.0.0.1:9/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let r = app
        .client()
        .post(app.url("/webhooks"))
        .header("authorization", "Bearer writer-key-0123456789")
        .json(&json!({"url": "http://127.0.0.1:9/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}}

backend_test! { async fn an_erased_calls_queued_messages_keep_nothing_but_its_id(s: StoreCtx) {
    let app = spawn_app_with(s, &[FAST, &[("WEBHOOK_RETRY_SCHEDULE", "0,5")]].concat()).await;
    let receiver = Receiver::start().await;
    receiver.answer(&[(500, None), (500, None)]);
    let (id, _) = register(&app, &receiver.url, &["session.created", "event.appended", "session.deleted"]).await;
    let r = app
        .post_json("/sessions", &json!({"sessionId": "erased", "language": "en", "metadata": {"caller": "+15550100"}}))
        .await;
    assert_eq!(r.status, 201);
    let r = app
        .post_json("/sessions/erased/events", &json!({"eventId": "e1", "type": "user_speech", "payload": {"text": "my secret"}}))
        .await;
    assert_eq!(r.status, 201);
    receiver.until("two failed first attempts", |r| r.len() >= 2).await;
    assert!(receiver.received().iter().any(|r| r.body.contains("my secret")), "the first attempt carried it");
    assert_eq!(app.request(reqwest::Method::DELETE, "/sessions/erased").await.status, 204);
    let got = receiver.until("the retries and the deletion", |r| r.len() >= 5).await;
    for r in &got[2..] {
        assert!(!r.body.contains("secret") && !r.body.contains("15550100"), "{}", r.body);
        assert_eq!(r.json()["data"], json!({"sessionId": "erased"}), "{}", r.body);
    }
    let mut kinds: Vec<String> = got[2..].iter().map(|r| r.kind()).collect();
    kinds.sort();
    assert_eq!(kinds, ["event.appended", "session.created", "session.deleted"]);
    log_until(&app, &id, "all delivered", |l| l.len() == 3 && l.iter().all(|d| d["status"] == "succeeded")).await;
}}

backend_test! { async fn bodies_over_256_kb_go_without_payload_or_metadata_and_say_so(s: StoreCtx) {
    let app = spawn_app_with(s, FAST).await;
    let receiver = Receiver::start().await;
    let all = ["session.created", "event.appended", "session.ended"];
    let (_, secret) = register(&app, &receiver.url, &all).await;
    let big = "x".repeat(300_000);
    let r = app.post_json("/sessions", &json!({"sessionId": "big", "language": "en-US", "metadata": {"notes": big}})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app.post_event("big", &json!({"eventId": "e1", "type": "system", "payload": {"blob": big}})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app.post_event("big", &json!({"eventId": "e2", "type": "system", "payload": {"small": 1}})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let got = receiver.until("three messages", |r| r.len() >= 3).await;
    for r in &got {
        assert!(r.body.len() <= 256 * 1024, "{} bytes", r.body.len());
        assert!(r.verified_by(&secret));
    }
    let data: Vec<serde_json::Value> = got.iter().map(|r| r.json()["data"].clone()).collect();
    assert_eq!(data[0]["sessionId"], "big");
    assert_eq!((data[0]["truncated"].as_bool(), data[0].get("metadata")), (Some(true), None), "{}", data[0]);
    assert_eq!((data[1]["truncated"].as_bool(), data[1].get("payload")), (Some(true), None));
    assert_eq!(data[1]["eventId"], "e1");
    assert_eq!(data[2]["payload"], json!({"small": 1}), "a small body is whole");
    assert_eq!(data[2].get("truncated"), None);
}}
