//! Reading a session with its events: page numbers, cursors, orders and the query's validation;
//! and the health endpoints.

use serde_json::{Value, json};

use crate::support::app::TestApp;

fn seqs(body: &Value) -> Vec<u64> {
    body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

fn pagination(
    total: u64,
    limit: u64,
    page: Value,
    total_pages: u64,
    has_more: bool,
    next_cursor: &Value,
) -> Value {
    json!({
        "total": total, "limit": limit, "page": page, "totalPages": total_pages,
        "hasMore": has_more, "nextCursor": next_cursor,
    })
}

// ---- pages, cursors and health ----

backend_test! { async fn reading_a_session_returns_its_fields_events_and_pagination(app: TestApp) {
    let created = app.create_session("call-1").await;
    let e1 = app.add_event("call-1", "e-1").await;
    let e2 = app.add_event("call-1", "e-2").await;

    let r = app.get("/sessions/call-1").await;

    assert_eq!(r.status, 200, "{}", r.text);
    for field in ["sessionId", "language", "metadata", "startedAt", "endedAt"] {
        assert_eq!(r.body[field], created[field], "{field}");
    }
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["eventCount"], 2);
    assert_eq!(r.body["events"], json!([e1, e2]));
    assert_eq!(
        r.body["pagination"],
        pagination(2, 20, json!(1), 1, false, &Value::Null)
    );
}}

backend_test! { async fn reading_a_session_without_events_gives_an_empty_first_page(app: TestApp) {
    app.create_session("call-1").await;

    let body = app.read_session("call-1", "").await;

    assert_eq!(body["status"], "initiated");
    assert_eq!(body["events"], json!([]));
    assert_eq!(
        body["pagination"],
        pagination(0, 20, json!(1), 0, false, &Value::Null)
    );
}}

backend_test! { async fn reading_an_unknown_session_is_a_404_session_not_found(app: TestApp) {
    let r = app.get("/sessions/nobody").await;
    let with_query = app.get("/sessions/nobody?limit=5&order=desc").await;

    r.assert_problem(404, "session_not_found");
    with_query.assert_problem(404, "session_not_found");
}}

backend_test! { async fn the_default_page_holds_the_first_20_events_in_ascending_order(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 25).await;

    let body = app.read_session("call-1", "").await;

    assert_eq!(seqs(&body), (1..=20).collect::<Vec<_>>());
    assert_eq!(body["events"][0]["eventId"], "e-1");
    let p = &body["pagination"];
    assert_eq!(
        (
            &p["total"],
            &p["limit"],
            &p["page"],
            &p["totalPages"],
            &p["hasMore"]
        ),
        (&json!(25), &json!(20), &json!(1), &json!(2), &json!(true))
    );
    assert!(p["nextCursor"].is_string(), "{body}");
    assert_eq!(p["total"], body["eventCount"]);
}}

backend_test! { async fn pages_by_number_split_the_events_in_ascending_order(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 7).await;

    let p1 = app.read_session("call-1", "?limit=3&page=1").await;
    let p2 = app
        .read_session("call-1", "?limit=3&page=2&order=asc")
        .await;
    let p3 = app.read_session("call-1", "?page=3&limit=3").await;

    assert_eq!(seqs(&p1), [1, 2, 3]);
    assert_eq!(seqs(&p2), [4, 5, 6]);
    assert_eq!(seqs(&p3), [7]);
    for (body, page, has_more) in [(&p1, 1, true), (&p2, 2, true), (&p3, 3, false)] {
        let p = &body["pagination"];
        assert_eq!(p["page"], page, "{body}");
        assert_eq!(p["totalPages"], 3, "{body}");
        assert_eq!(p["total"], 7, "{body}");
        assert_eq!(p["hasMore"], has_more, "{body}");
        assert_eq!(p["nextCursor"].is_string(), has_more, "{body}");
    }
}}

backend_test! { async fn pages_by_number_in_descending_order_hold_the_right_seqs(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 7).await;

    let p1 = app.read_session("call-1", "?order=desc&limit=3").await;
    let p2 = app
        .read_session("call-1", "?order=desc&limit=3&page=2")
        .await;
    let p3 = app
        .read_session("call-1", "?order=desc&limit=3&page=3")
        .await;

    assert_eq!(seqs(&p1), [7, 6, 5]);
    assert_eq!(p1["events"][0]["eventId"], "e-7");
    assert_eq!(seqs(&p2), [4, 3, 2]);
    assert_eq!(seqs(&p3), [1]);
    assert_eq!(p2["pagination"]["hasMore"], true);
    assert_eq!(p3["pagination"]["hasMore"], false);
    assert_eq!(p3["pagination"]["nextCursor"], Value::Null);
    assert_eq!(p3["pagination"]["totalPages"], 3);
}}

backend_test! { async fn a_page_beyond_the_end_is_empty_with_no_more(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 3).await;

    for query in [
        "?limit=2&page=3",
        "?limit=2&page=99&order=desc",
        "?page=1000000",
    ] {
        let body = app.read_session("call-1", query).await;

        assert_eq!(body["events"], json!([]), "{query}");
        let p = &body["pagination"];
        assert_eq!(p["hasMore"], false, "{query}");
        assert_eq!(p["nextCursor"], Value::Null, "{query}");
        assert_eq!(p["total"], 3, "{query}");
    }
}}

backend_test! { async fn a_full_last_page_has_no_more_and_no_cursor(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 4).await;

    let last = app.read_session("call-1", "?limit=2&page=2").await;
    let only = app.read_session("call-1", "?limit=4").await;

    assert_eq!(seqs(&last), [3, 4]);
    assert_eq!(
        last["pagination"],
        pagination(4, 2, json!(2), 2, false, &Value::Null)
    );
    assert_eq!(
        only["pagination"],
        pagination(4, 4, json!(1), 1, false, &Value::Null)
    );
}}

backend_test! { async fn limits_of_1_and_100_are_accepted(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 3).await;

    let one = app.read_session("call-1", "?limit=1").await;
    let hundred = app.read_session("call-1", "?limit=100").await;

    assert_eq!(seqs(&one), [1]);
    assert_eq!(one["pagination"]["totalPages"], 3);
    assert_eq!(seqs(&hundred), [1, 2, 3]);
    assert_eq!(hundred["pagination"]["totalPages"], 1);
}}

backend_test! { async fn walking_next_cursor_in_ascending_order_visits_every_event_once_in_order(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 11).await;

    let walk = app.walk("call-1", "asc", 3).await;

    assert_eq!(walk.seqs, (1..=11).collect::<Vec<_>>());
    let expected_ids: Vec<_> = (1..=11).map(|i| format!("e-{i}")).collect();
    assert_eq!(walk.event_ids, expected_ids);
    assert_eq!(walk.first_total, 11);
}}

backend_test! { async fn walking_next_cursor_in_descending_order_visits_every_event_once_in_order(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 11).await;

    let walk = app.walk("call-1", "desc", 4).await;

    assert_eq!(walk.seqs, (1..=11).rev().collect::<Vec<_>>());
    assert_eq!(walk.event_ids[0], "e-11");
}}

backend_test! { async fn walking_a_limit_that_divides_the_total_ends_without_an_empty_page(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 6).await;

    let asc = app.walk("call-1", "asc", 3).await;
    let desc = app.walk("call-1", "desc", 2).await;

    assert_eq!(asc.seqs, [1, 2, 3, 4, 5, 6]);
    assert_eq!(asc.pages, 2);
    assert_eq!(desc.seqs, [6, 5, 4, 3, 2, 1]);
    assert_eq!(desc.pages, 3);
}}

backend_test! { async fn in_cursor_mode_page_is_null_and_the_cursor_continues_after_the_last_event(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 5).await;
    let first = app.read_session("call-1", "?limit=2").await;
    let cursor = first["pagination"]["nextCursor"].as_str().unwrap();

    let second = app
        .read_session("call-1", &format!("?limit=2&after={cursor}"))
        .await;

    assert_eq!(seqs(&second), [3, 4]);
    let p = &second["pagination"];
    assert_eq!(p["page"], Value::Null, "{second}");
    assert_eq!(p["total"], 5);
    assert_eq!(p["totalPages"], 3);
    assert_eq!(p["hasMore"], true);
    assert!(p["nextCursor"].is_string());
}}

backend_test! { async fn a_cursor_keeps_working_with_another_limit(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 6).await;
    let first = app.read_session("call-1", "?limit=2&order=desc").await;
    let cursor = first["pagination"]["nextCursor"].as_str().unwrap();

    let rest = app
        .read_session("call-1", &format!("?order=desc&limit=10&after={cursor}"))
        .await;

    assert_eq!(seqs(&rest), [4, 3, 2, 1]);
    assert_eq!(rest["pagination"]["nextCursor"], Value::Null);
}}

backend_test! { async fn a_cursor_sees_events_added_after_it_was_issued(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 2).await;
    let first = app.read_session("call-1", "?limit=1").await;
    let cursor = first["pagination"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    app.add_events("call-1", "f-", 2).await;

    let rest = app
        .read_session("call-1", &format!("?limit=10&after={cursor}"))
        .await;

    assert_eq!(seqs(&rest), [2, 3, 4]);
    assert_eq!(rest["pagination"]["total"], 4);
}}

// ---- health ----

backend_test! { async fn health_answers_200(app: TestApp) {
    let r = app.get("/health").await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "ok");
}}

backend_test! { async fn ready_answers_200_when_storage_answers(app: TestApp) {
    let r = app.get("/ready").await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "ready");
}}

// ---- query validation ----

backend_test! { async fn a_limit_outside_1_to_100_is_a_400_naming_limit(app: TestApp) {
    app.create_session("call-1").await;

    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "limit=",
        "limit=2.5",
    ] {
        let r = app.get(&format!("/sessions/call-1?{query}")).await;

        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), ["limit"], "{query}: {}", r.text);
    }
}}

backend_test! { async fn an_order_other_than_asc_or_desc_is_a_400_naming_order(app: TestApp) {
    app.create_session("call-1").await;

    for query in ["order=up", "order=ASC", "order="] {
        let r = app.get(&format!("/sessions/call-1?{query}")).await;

        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), ["order"], "{query}: {}", r.text);
    }
}}

backend_test! { async fn a_page_below_1_or_not_a_number_is_a_400_naming_page(app: TestApp) {
    app.create_session("call-1").await;

    for query in ["page=0", "page=-1", "page=x", "page="] {
        let r = app.get(&format!("/sessions/call-1?{query}")).await;

        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), ["page"], "{query}: {}", r.text);
    }
}}

backend_test! { async fn an_unknown_query_parameter_is_a_400_naming_it(app: TestApp) {
    app.create_session("call-1").await;

    let r = app.get("/sessions/call-1?offset=10").await;

    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["offset"]);
}}

backend_test! { async fn a_repeated_query_parameter_is_a_400(app: TestApp) {
    app.create_session("call-1").await;

    let r = app.get("/sessions/call-1?limit=5&limit=5").await;

    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["limit"]);
}}

backend_test! { async fn every_bad_query_parameter_is_reported_at_once(app: TestApp) {
    app.create_session("call-1").await;

    let r = app
        .get("/sessions/call-1?limit=0&order=up&page=0&bogus=1")
        .await;

    r.assert_problem(400, "validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["bogus", "limit", "order", "page"]);
}}

backend_test! { async fn page_together_with_after_is_a_400(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 3).await;
    let first = app.read_session("call-1", "?limit=1").await;
    let cursor = first["pagination"]["nextCursor"].as_str().unwrap();

    let r = app
        .get(&format!("/sessions/call-1?limit=1&page=2&after={cursor}"))
        .await;

    r.assert_problem(400, "validation_failed");
    assert!(r.error_fields().contains(&"page".to_owned()), "{}", r.text);
}}

backend_test! { async fn an_after_that_is_not_a_next_cursor_is_a_400_naming_after(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 3).await;

    // "djEuYS4wMQ" is base64 of "v1.a.01": the right shape but not a canonical cursor.
    for after in ["garbage", "", "1", "djEuYS4wMQ", "%21%21%21"] {
        let r = app.get(&format!("/sessions/call-1?after={after}")).await;

        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), ["after"], "{after}: {}", r.text);
    }
}}

backend_test! { async fn a_cursor_from_an_ascending_walk_is_refused_in_descending_order(app: TestApp) {
    app.create_session("call-1").await;
    app.add_events("call-1", "e-", 3).await;
    let asc = app.read_session("call-1", "?limit=1").await;
    let asc_cursor = asc["pagination"]["nextCursor"].as_str().unwrap();
    let desc = app.read_session("call-1", "?limit=1&order=desc").await;
    let desc_cursor = desc["pagination"]["nextCursor"].as_str().unwrap();

    let asc_in_desc = app
        .get(&format!("/sessions/call-1?order=desc&after={asc_cursor}"))
        .await;
    let desc_in_asc = app
        .get(&format!("/sessions/call-1?after={desc_cursor}"))
        .await;

    asc_in_desc.assert_problem(400, "validation_failed");
    assert_eq!(asc_in_desc.error_fields(), ["after"]);
    desc_in_asc.assert_problem(400, "validation_failed");
    assert_eq!(desc_in_asc.error_fields(), ["after"]);
}}

backend_test! { async fn a_bad_query_is_a_400_even_for_an_unknown_session(app: TestApp) {
    let r = app.get("/sessions/nobody?limit=0").await;

    r.assert_problem(400, "validation_failed");
    assert_eq!(r.error_fields(), ["limit"]);
}}
