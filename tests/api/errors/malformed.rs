//! Bodies that are not JSON objects: malformed, not an object, duplicate keys, integers out of
//! range, nesting beyond any limit.

use super::{JSON, assert_unchanged, session_with_one_event};
use crate::support::StoreCtx;
use crate::support::app::spawn_app;

backend_test! {
    async fn malformed_json_is_a_400_malformed_json(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;

        for body in [
            r#"{"sessionId": "x""#,
            "{",
            "",
            "nope",
            r#"{"a":1} {}"#,
            "{'a': 1}",
        ] {
            let session = app.post_raw("/sessions", JSON, body).await;
            let event = app.post_raw("/sessions/call-1/events", JSON, body).await;

            session.assert_problem(400, "malformed_json");
            event.assert_problem(400, "malformed_json");
        }
    }
}

backend_test! {
    async fn a_body_that_is_not_an_object_is_a_400_body_not_object(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;

        for body in [
            "[]",
            r#""x""#,
            "1",
            "null",
            "true",
            r#"[{"sessionId": "a"}]"#,
        ] {
            let session = app.post_raw("/sessions", JSON, body).await;
            let event = app.post_raw("/sessions/call-1/events", JSON, body).await;
            let complete = app.post_raw("/sessions/call-1/complete", JSON, body).await;

            session.assert_problem(400, "body_not_object");
            event.assert_problem(400, "body_not_object");
            complete.assert_problem(400, "body_not_object");
        }
    }
}

backend_test! {
    async fn duplicate_json_keys_are_a_400_malformed_json(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;

        let session = app
            .post_raw(
                "/sessions",
                JSON,
                r#"{"sessionId": "a", "sessionId": "b", "language": "en"}"#,
            )
            .await;
        let nested = app
            .post_raw(
                "/sessions/call-1/events",
                JSON,
                r#"{"eventId": "e-1", "type": "system", "payload": {"x": {"k": 1, "k": 2}}}"#,
            )
            .await;

        session.assert_problem(400, "malformed_json");
        nested.assert_problem(400, "malformed_json");
        app.get("/sessions/a")
            .await
            .assert_problem(404, "session_not_found");
        app.get("/sessions/b")
            .await
            .assert_problem(404, "session_not_found");
        assert_eq!(app.event_count("call-1").await, 0);
    }
}

backend_test! {
    async fn integers_beyond_64_signed_bits_are_a_400(s: StoreCtx) {
        let app = spawn_app(s).await;
        let before = session_with_one_event(&app).await;

        for n in [
            "9223372036854775808",
            "100000000000000000000",
            "-9223372036854775809",
        ] {
            let body = format!(r#"{{"eventId": "e-2", "type": "system", "payload": {{"n": {n}}}}}"#);
            let in_array = format!(
                r#"{{"eventId": "e-2", "type": "system", "payload": {{"a": [1, {{"n": {n}}}]}}}}"#
            );

            let r = app.post_raw("/sessions/call-1/events", JSON, body).await;
            let r2 = app
                .post_raw("/sessions/call-1/events", JSON, in_array)
                .await;

            r.assert_problem(400, "malformed_json");
            r2.assert_problem(400, "malformed_json");
        }
        assert_unchanged(&app, &before).await;
    }
}

backend_test! {
    async fn the_largest_and_smallest_64_bit_integers_are_kept_exactly(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;

        let r = app
            .post_raw(
                "/sessions/call-1/events",
                JSON,
                r#"{"eventId": "e-1", "type": "system",
                "payload": {"max": 9223372036854775807, "min": -9223372036854775808}}"#,
            )
            .await;

        assert_eq!(r.status, 201, "{}", r.text);
        let stored = app.get("/sessions/call-1/events/e-1").await;
        assert!(
            stored
                .text
                .contains(r#""max":9223372036854775807,"min":-9223372036854775808"#),
            "{}",
            stored.text
        );
    }
}

backend_test! {
    async fn a_100000_deep_json_body_is_a_400_not_a_crash(s: StoreCtx) {
        let app = spawn_app(s).await;
        let before = session_with_one_event(&app).await;
        let arrays = "[".repeat(100_000) + &"]".repeat(100_000);
        let objects = r#"{"a":"#.repeat(100_000) + "1" + &"}".repeat(100_000);

        for body in [arrays, objects] {
            let event = app
                .post_raw("/sessions/call-1/events", JSON, body.clone())
                .await;
            let session = app.post_raw("/sessions", JSON, body).await;

            event.assert_problem(400, "malformed_json");
            session.assert_problem(400, "malformed_json");
        }
        assert_unchanged(&app, &before).await;
        assert_eq!(app.get("/health").await.status, 200, "still serving");
    }
}
