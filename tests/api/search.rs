//! `GET /search` over HTTP: what was said is found at once, with highlights, through every
//! filter and both orders, paged by cursor; bad queries are 400 and name the field; an erased
//! call is never found once its DELETE answered; a redacted card number is not findable; what
//! one instance stored, another finds.

use serde_json::{Value, json};

use crate::support::StoreCtx;
use crate::support::app::{TestApp, spawn_app, spawn_app_with, two_instances};

fn speech(event_id: &str, kind: &str, text: &str) -> Value {
    json!({"eventId": event_id, "type": kind, "payload": {"text": text}})
}

async fn call(app: &TestApp, id: &str, language: &str, team: &str) {
    let body = json!({"sessionId": id, "language": language, "metadata": {"team": team}});
    let r = app.post_json("/sessions", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn say(app: &TestApp, session: &str, event_id: &str, kind: &str, text: &str) {
    let r = app.post_event(session, &speech(event_id, kind, text)).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// The search's answer, which must be 200.
async fn search(app: &TestApp, query: &str) -> Value {
    let r = app.get(&format!("/search?{query}")).await;
    assert_eq!(r.status, 200, "{query}: {}", r.text);
    r.body
}

/// `session/event` of each hit.
async fn hits(app: &TestApp, query: &str) -> Vec<String> {
    search(app, query).await["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            format!(
                "{}/{}",
                h["sessionId"].as_str().unwrap(),
                h["eventId"].as_str().unwrap()
            )
        })
        .collect()
}

/// Two calls: `sales` (en-US, team red, still open) and `support` (fr-FR, team blue, completed).
async fn two_calls(app: &TestApp) {
    call(app, "sales", "en-US", "red").await;
    call(app, "support", "fr-FR", "blue").await;
    say(
        app,
        "sales",
        "u1",
        "user_speech",
        "Hi, I need a refund for order 66",
    )
    .await;
    say(
        app,
        "sales",
        "b1",
        "bot_speech",
        "Sure, our refund policy covers that",
    )
    .await;
    say(
        app,
        "support",
        "u1",
        "user_speech",
        "Je voudrais un remboursement, s'il vous plaît",
    )
    .await;
    say(
        app,
        "support",
        "b1",
        "bot_speech",
        "Refund? Bien sûr. Refund it is",
    )
    .await;
    assert_eq!(app.complete("support", None).await.status, 200);
}

backend_test! { async fn what_was_said_is_found_with_its_highlights(s: StoreCtx) {
    let app = spawn_app(s).await;
    two_calls(&app).await;
    let found = search(&app, "q=refund&order=newest").await;
    assert_eq!(found["nextCursor"], Value::Null);
    let first = &found["hits"][0];
    assert_eq!(first["sessionId"], "support");
    assert_eq!(first["eventId"], "b1");
    assert_eq!(first["seq"], 2);
    assert_eq!(first["type"], "bot_speech");
    assert_eq!(first["text"], "Refund? Bien sûr. Refund it is");
    assert_eq!(first["highlights"], json!([[0, 6], [18, 24]]));
    assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(hits(&app, "q=refund&order=newest").await, ["support/b1", "sales/b1", "sales/u1"]);
    // Relevance: two matches in a short text first.
    assert_eq!(hits(&app, "q=refund").await[0], "support/b1");
    assert_eq!(hits(&app, "q=%22refund+policy%22").await, ["sales/b1"]);
    assert_eq!(hits(&app, "q=REMBOURSEMENT+plait").await, ["support/u1"], "case and accents");
    assert_eq!(hits(&app, "q=remb*+-bien").await, ["support/u1"]);
    // Offsets are UTF-16 code units.
    let accented = search(&app, "q=plait").await;
    assert_eq!(accented["hits"][0]["highlights"], json!([[40, 45]]));
}}

backend_test! { async fn every_filter_narrows_the_hits(s: StoreCtx) {
    let app = spawn_app(s).await;
    two_calls(&app).await;
    let q = "q=refund*&order=newest";
    let cases = [
        ("type=user_speech", vec!["sales/u1"]),
        ("type=bot_speech", vec!["support/b1", "sales/b1"]),
        ("sessionId=sales", vec!["sales/b1", "sales/u1"]),
        ("status=completed", vec!["support/b1"]),
        ("status=active,initiated", vec!["sales/b1", "sales/u1"]),
        ("language=fr-FR", vec!["support/b1"]),
        ("metadata.team=red", vec!["sales/b1", "sales/u1"]),
        ("metadata.team=green", vec![]),
        ("startedFrom=2000-01-01T00:00:00Z", vec!["support/b1", "sales/b1", "sales/u1"]),
        ("startedBefore=2000-01-01T00:00:00Z", vec![]),
    ];
    for (filter, expected) in cases {
        assert_eq!(hits(&app, &format!("{q}&{filter}")).await, expected, "{filter}");
    }
}}

backend_test! { async fn bad_queries_are_400_and_name_the_field(s: StoreCtx) {
    let app = spawn_app(s).await;
    let long = "a".repeat(257);
    for (query, field) in [
        ("", "q"),
        ("q=", "q"),
        ("q=%22open+phrase", "q"),
        ("q=-only", "q"),
        (&format!("q={long}") as &str, "q"),
        ("q=a&limit=101", "limit"),
        ("q=a&order=best", "order"),
        ("q=a&type=system", "type"),
        ("q=a&after=bm90LWEtY3Vyc29y", "after"),
        ("q=a&sessionId=%20", "sessionId"),
        ("q=a&colour=red", "colour"),
    ] {
        let r = app.get(&format!("/search?{query}")).await;
        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), [field], "{query}: {}", r.text);
    }
    // A cursor from the other order.
    let cursor = next_cursor(&app, "q=x&order=newest&limit=1", 2).await;
    let r = app.get(&format!("/search?q=x&after={cursor}")).await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["after"]);
    // A cursor from another search: its relevance offset would mean nothing here.
    let cursor = search(&app, "q=x&limit=1").await["nextCursor"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&format!("/search?q=x&limit=5&after={cursor}")).await.status, 200);
    for other in ["q=y", "q=x&type=bot_speech", "q=x&metadata.team=a", "q=x&sessionId=s2"] {
        let r = app.get(&format!("/search?{other}&after={cursor}")).await;
        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), ["after"], "{other}");
        assert!(r.text.contains("another search"), "{other}: {}", r.text);
    }
}}

/// Stores `n` events saying `x` in one call, then the `nextCursor` of `query`.
async fn next_cursor(app: &TestApp, query: &str, n: usize) -> String {
    app.create_session("x").await;
    for i in 0..n {
        say(app, "x", &format!("e{i}"), "user_speech", "x").await;
    }
    search(app, query).await["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned()
}

backend_test! { async fn the_cursor_walks_every_hit_once_in_either_order(s: StoreCtx) {
    let app = spawn_app(s).await;
    app.create_session("long").await;
    let events: Vec<Value> = (0..45)
        .map(|i| speech(&format!("e{i:02}"), "user_speech", &format!("turn {i}: refund {}", "refund ".repeat(i % 4))))
        .collect();
    let r = app.post_json("/sessions/long/events:batch", &json!({"events": events})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    for order in ["newest", "relevance"] {
        let mut seen = Vec::new();
        let mut query = format!("q=refund&order={order}&limit=10");
        loop {
            let page = search(&app, &query).await;
            seen.extend(page["hits"].as_array().unwrap().iter().map(|h| h["eventId"].as_str().unwrap().to_owned()));
            match page["nextCursor"].as_str() {
                Some(cursor) => query = format!("q=refund&order={order}&limit=10&after={cursor}"),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 45, "{order}: every hit once: {seen:?}");
        if order == "newest" {
            assert_eq!(seen[0], "e44");
            assert_eq!(seen[44], "e00");
        }
    }
}}

backend_test! { async fn an_erased_call_is_never_found_once_delete_answered(s: StoreCtx) {
    let app = spawn_app(s).await;
    two_calls(&app).await;
    assert_eq!(app.request(reqwest::Method::DELETE, "/sessions/sales").await.status, 204);
    assert_eq!(hits(&app, "q=refund*&order=newest").await, ["support/b1"]);
    assert_eq!(hits(&app, "q=order+66").await, Vec::<String>::new());
}}

backend_test! { async fn each_event_is_found_as_soon_as_its_201_came_while_others_are_written(s: StoreCtx) {
    let app = spawn_app(s).await;
    app.create_session("busy").await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let app = app.handle();
            tokio::spawn(async move {
                let word = format!("word{i}");
                say(&app, "busy", &format!("e{i}"), "user_speech", &format!("caller said {word}")).await;
                hits(&app, &format!("q={word}")).await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await.unwrap(), [format!("busy/e{i}")]);
    }
}}

backend_test! { async fn a_redacted_card_number_cannot_be_found(s: StoreCtx) {
    let app = spawn_app_with(s, &[("REDACT", "card")]).await;
    app.create_session("pay").await;
    say(&app, "pay", "e1", "user_speech", "my card is 4111 1111 1111 1111 thanks").await;
    assert_eq!(hits(&app, "q=4111").await, Vec::<String>::new());
    assert_eq!(hits(&app, "q=%224111+1111%22").await, Vec::<String>::new());
    let found = search(&app, "q=card+redacted").await;
    assert_eq!(found["hits"][0]["text"], "my card is [REDACTED:card] thanks");
}}

backend_test! { async fn what_one_instance_stored_the_other_finds(s: StoreCtx) {
    let (one, two) = two_instances(s, &[]).await;
    one.create_session("shared").await;
    say(&one, "shared", "e1", "user_speech", "cancel my subscription").await;
    assert_eq!(hits(&two, "q=subscription").await, ["shared/e1"]);
    assert_eq!(two.request(reqwest::Method::DELETE, "/sessions/shared").await.status, 204);
    assert_eq!(hits(&one, "q=subscription").await, Vec::<String>::new());
}}

backend_test! { async fn selective_filters_answer_a_short_page_with_a_cursor_to_go_on(s: StoreCtx) {
    let app = spawn_app(s).await;
    call(&app, "target", "en-US", "y").await;
    say(&app, "target", "e1", "user_speech", "common words here").await;
    call(&app, "noise", "en-US", "x").await;
    for chunk in 0..21 {
        let events: Vec<Value> = (0..100)
            .map(|i| speech(&format!("n{chunk}-{i}"), "user_speech", "common words again"))
            .collect();
        let r = app.post_json("/sessions/noise/events:batch", &json!({"events": events})).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // The 2,100 newer events of the other call use up the first request's 2,000 candidates.
    let first = search(&app, "q=common&order=newest&metadata.team=y").await;
    assert_eq!(first["hits"], json!([]));
    let cursor = first["nextCursor"].as_str().expect("a cursor to go on");
    let next = search(&app, &format!("q=common&order=newest&metadata.team=y&after={cursor}")).await;
    assert_eq!(next["hits"][0]["sessionId"], "target");
    assert_eq!(next["nextCursor"], Value::Null);
}}
