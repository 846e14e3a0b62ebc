//! Redaction over HTTP: with `REDACT`, card numbers (and the other kinds) in event payloads are
//! replaced before they are stored, single or batch; a call may choose its own kinds at create;
//! a retry of the same original is a replay; two instances redact an event under its call's
//! rules whichever takes it.

use serde_json::{Value, json};

use crate::support::StoreCtx;
use crate::support::app::{TestApp, spawn_app_with, two_instances};

const ALL: (&str, &str) = ("REDACT", "card,email,phone,ssn");
/// A Visa test number (passes the Luhn check), as a caller would read it out.
const CARD: &str = "4111 1111 1111 1111";

fn speech(event_id: &str, text: &str) -> Value {
    json!({"eventId": event_id, "type": "user_speech", "payload": {"text": text}})
}

/// The payload's `text` of the event as the store holds it (not as the API answered).
async fn stored_text(app: &TestApp, session: &str, event: &str) -> String {
    let event = app
        .store
        .repos
        .events
        .get(
            &session_service::domain::SessionId::parse(session).unwrap(),
            &session_service::domain::EventId::parse(event).unwrap(),
        )
        .await
        .unwrap();
    event.payload.as_map()["text"].as_str().unwrap().to_owned()
}

async fn create(app: &TestApp, body: Value) -> Value {
    let r = app.post_json("/sessions", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

backend_test! { async fn a_card_number_is_stored_and_answered_redacted_and_its_retry_is_a_replay(s: StoreCtx) {
    let app = spawn_app_with(s, &[ALL]).await;
    let session = app.create_session("pay").await;
    assert_eq!(session["redact"], Value::Null, "the call chose nothing: {session}");
    let said = format!("my card is {CARD}, mail me at jo.doe+calls@example.co.uk");
    let expected = "my card is [REDACTED:card], mail me at [REDACTED:email]";
    let r = app.post_event("pay", &speech("e1", &said)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["payload"]["text"], expected);
    assert_eq!(stored_text(&app, "pay", "e1").await, expected);
    assert_eq!(app.get("/sessions/pay/events/e1").await.body["payload"]["text"], expected);
    // A retry of the same original: the same redacted form, so a replay.
    let retry = app.post_event("pay", &speech("e1", &said)).await;
    assert_eq!((retry.status, retry.body["seq"].clone()), (200, json!(1)), "{}", retry.text);
    // Another card under the same id redacts to the same text: also a replay (the redacted
    // forms are compared; the originals are never kept).
    let other = said.replace(CARD, "5555-5555-5555-4444");
    assert_eq!(app.post_event("pay", &speech("e1", &other)).await.status, 200);
    // A 16-digit order number that fails the Luhn check stays.
    let order = "order 1234 5678 9012 3456";
    let r = app.post_event("pay", &speech("e2", order)).await;
    assert_eq!((r.status, r.body["payload"]["text"].clone()), (201, json!(order)));
    // Strings at any depth, and only strings.
    let nested = json!({"eventId": "e3", "type": "bot_speech", "payload": {
        "turns": [{"text": format!("ssn 123-45-6789, phone (415) 555-0132")}],
        "amount": 4_111_111_111_111_111_i64,
    }});
    let r = app.post_event("pay", &nested).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body["payload"],
        json!({"turns": [{"text": "ssn [REDACTED:ssn], phone [REDACTED:phone]"}],
               "amount": 4_111_111_111_111_111_i64})
    );
}}

backend_test! { async fn a_batch_is_redacted_event_by_event(s: StoreCtx) {
    let app = spawn_app_with(s, &[ALL]).await;
    app.create_session("b").await;
    let batch = json!({"events": [
        speech("e1", &format!("card {CARD}")),
        speech("e2", "nothing to hide"),
        speech("e3", "call me on +44 20 7946 0958"),
    ]});
    let r = app.post_json("/sessions/b/events:batch", &batch).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let texts: Vec<&Value> = r.body["events"].as_array().unwrap().iter().map(|e| &e["payload"]["text"]).collect();
    assert_eq!(texts, [&json!("card [REDACTED:card]"), &json!("nothing to hide"), &json!("call me on [REDACTED:phone]")]);
    assert_eq!(stored_text(&app, "b", "e1").await, "card [REDACTED:card]");
    let again = app.post_json("/sessions/b/events:batch", &batch).await;
    assert_eq!(again.status, 200, "the same batch again is all replays: {}", again.text);
}}

backend_test! { async fn a_call_chooses_its_own_kinds_at_create(s: StoreCtx) {
    let app = spawn_app_with(s, &[("REDACT", "card")]).await;
    let own = create(&app, json!({"sessionId": "mail", "language": "en", "redact": ["email", "email"]})).await;
    assert_eq!(own["redact"], json!(["email"]));
    let none = create(&app, json!({"sessionId": "open", "language": "en", "redact": []})).await;
    assert_eq!(none["redact"], json!([]));
    let said = format!("{CARD} / a.b@example.com");
    let r = app.post_event("mail", &speech("e1", &said)).await;
    assert_eq!(r.body["payload"]["text"], format!("{CARD} / [REDACTED:email]"), "{}", r.text);
    let r = app.post_event("open", &speech("e1", &said)).await;
    assert_eq!(r.body["payload"]["text"], said.as_str(), "{}", r.text);
    assert_eq!(app.get("/sessions/mail").await.body["redact"], json!(["email"]));

    // An unknown kind, a non-list, a non-string: 400 naming each, nothing created.
    let bad = app
        .post_json("/sessions", &json!({"sessionId": "bad", "language": "en", "redact": ["card", "iban", 7]}))
        .await;
    bad.assert_problem(400, "validation_failed");
    assert_eq!(bad.error_fields(), ["redact[1]", "redact[2]"], "{}", bad.text);
    let bad = app.post_json("/sessions", &json!({"sessionId": "bad", "language": "en", "redact": "card"})).await;
    assert_eq!(bad.error_fields(), ["redact"], "{}", bad.text);
    let five = json!(["card", "email", "phone", "ssn", "card"]);
    let bad = app.post_json("/sessions", &json!({"sessionId": "bad", "language": "en", "redact": five})).await;
    assert_eq!(bad.error_fields(), ["redact"], "{}", bad.text);
    app.assert_no_session("bad").await;
}}

backend_test! { async fn two_instances_redact_an_event_under_its_calls_rules_whichever_takes_it(s: StoreCtx) {
    // B knows nothing of the call A created: it assumes the service's rules, the store says
    // otherwise, and B redacts again under the call's.
    let (a, b) = two_instances(s, &[("REDACT", "card")]).await;
    create(&a, json!({"sessionId": "c", "language": "en", "redact": ["email"]})).await;
    let said = format!("{CARD} x@example.org");
    let r = b.post_event("c", &speech("e1", &said)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["payload"]["text"], format!("{CARD} [REDACTED:email]"));
    let batch = json!({"events": [speech("e2", &said)]});
    let r = b.post_json("/sessions/c/events:batch", &batch).await;
    assert_eq!(r.body["events"][0]["payload"]["text"], format!("{CARD} [REDACTED:email]"), "{}", r.text);
    assert_eq!(stored_text(&a, "c", "e2").await, format!("{CARD} [REDACTED:email]"));
}}

backend_test! { async fn a_payload_that_redaction_grows_past_the_limit_is_400_and_stores_nothing(s: StoreCtx) {
    let app = spawn_app_with(s, &[ALL, ("MAX_BODY_BYTES", "2000000")]).await;
    app.create_session("big").await;
    // ~1 MiB of short addresses: each `[REDACTED:email]` is longer than `a@b.co`.
    let text = "a@b.co ".repeat(149_000);
    let r = app.post_event("big", &speech("e1", &text)).await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["payload"], "{}", r.text);
    let batch = json!({"events": [speech("e1", "fine"), speech("e2", &text)]});
    let r = app.post_json("/sessions/big/events:batch", &batch).await;
    assert_eq!(r.error_fields(), ["events[1].payload"], "{}", r.text);
    assert_eq!(app.event_count("big").await, 0);
}}
