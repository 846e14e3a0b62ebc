//! Routes, methods and path parameters.

use reqwest::Method;
use serde_json::json;

use super::assert_invalid;
use crate::support::StoreCtx;
use crate::support::app::spawn_app;

backend_test! {
    async fn an_unknown_route_is_a_404_route_not_found(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;

        for path in [
            "/",
            "/nope",
            "/sessions/call-1/events/e-1/more",
            "/sessions/call-1/other",
            "/v1/sessions",
        ] {
            let r = app.get(path).await;

            r.assert_problem(404, "route_not_found");
        }
        app.post_json("/sessions/call-1/nope", &json!({}))
            .await
            .assert_problem(404, "route_not_found");
    }
}

backend_test! {
    async fn a_wrong_method_is_a_405_with_an_allow_header(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;

        for (method, path, allowed) in [
            (Method::DELETE, "/sessions/x", "GET"),
            (Method::DELETE, "/sessions/call-1", "GET"),
            (Method::PUT, "/sessions", "POST"),
            (Method::GET, "/sessions", "POST"),
            (Method::GET, "/sessions/call-1/events", "POST"),
            (Method::GET, "/sessions/call-1/complete", "POST"),
            (Method::POST, "/sessions/call-1/events/e-1", "GET"),
            (Method::POST, "/health", "GET"),
        ] {
            let r = app.request(method.clone(), path).await;

            r.assert_problem(405, "method_not_allowed");
            let allow = r
                .header("allow")
                .unwrap_or_else(|| panic!("{method} {path}: no Allow header: {:?}", r.headers));
            assert!(
                allow.split(',').any(|m| m.trim() == allowed),
                "{method} {path}: Allow: {allow}"
            );
        }
        assert_eq!(app.read_session("call-1", "").await["status"], "initiated");
    }
}

backend_test! {
    async fn an_invalid_session_id_in_the_path_is_a_400_naming_session_id(s: StoreCtx) {
        let app = spawn_app(s).await;
        let too_long = "a".repeat(129);
        let event = json!({"eventId": "e-1", "type": "system", "payload": {}});

        for id in [too_long.as_str(), "a%20b", "%C3%A9", "a%2Fb"] {
            let read = app.get(&format!("/sessions/{id}")).await;
            let add = app
                .post_json(&format!("/sessions/{id}/events"), &event)
                .await;
            let get_event = app.get(&format!("/sessions/{id}/events/e-1")).await;
            let complete = app.complete(id, None).await;

            assert_invalid(&read, &["sessionId"]);
            assert_invalid(&add, &["sessionId"]);
            assert_invalid(&get_event, &["sessionId"]);
            assert_invalid(&complete, &["sessionId"]);
        }
    }
}

backend_test! {
    async fn an_invalid_event_id_in_the_path_is_a_400_naming_event_id(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;
        let too_long = "e".repeat(129);

        for id in [too_long.as_str(), "a%20b", "e%3F1"] {
            let r = app.get(&format!("/sessions/call-1/events/{id}")).await;

            assert_invalid(&r, &["eventId"]);
        }
    }
}

backend_test! {
    async fn an_invalid_path_and_an_invalid_query_or_body_are_reported_together(s: StoreCtx) {
        let app = spawn_app(s).await;
        let bad = "a%20b";

        let read = app.get(&format!("/sessions/{bad}?limit=0&order=up")).await;
        let get_event = app.get(&format!("/sessions/{bad}/events/{bad}")).await;
        let complete = app.complete(bad, Some(&json!({"status": "nope"}))).await;

        assert_invalid(&read, &["sessionId", "limit", "order"]);
        assert_invalid(&get_event, &["sessionId", "eventId"]);
        assert_invalid(&complete, &["sessionId", "status"]);
    }
}

backend_test! {
    async fn a_path_segment_that_is_not_utf8_is_a_400(s: StoreCtx) {
        let app = spawn_app(s).await;

        let r = app.get("/sessions/%FF").await;

        r.assert_problem(400, "invalid_path");
    }
}
