//! Validation: every invalid field of a body is named at once.

use serde_json::json;

use super::{assert_invalid, assert_unchanged, nested, session_with_one_event};
use crate::support::StoreCtx;
use crate::support::app::spawn_app;

backend_test! {
    async fn a_session_body_with_every_field_wrong_lists_every_problem(s: StoreCtx) {
        let app = spawn_app(s).await;

        let wrong_values = app
            .post_json(
                "/sessions",
                &json!({"sessionId": "a b", "language": "en_US", "metadata": [], "extra": 1}),
            )
            .await;
        let wrong_types = app
            .post_json(
                "/sessions",
                &json!({"sessionId": 5, "language": ["en"], "metadata": "x"}),
            )
            .await;
        let missing = app.post_json("/sessions", &json!({})).await;
        let nulls = app
            .post_json("/sessions", &json!({"sessionId": null, "language": null}))
            .await;

        assert_invalid(
            &wrong_values,
            &["sessionId", "language", "metadata", "extra"],
        );
        assert_invalid(&wrong_types, &["sessionId", "language", "metadata"]);
        assert_invalid(&missing, &["sessionId", "language"]);
        assert_invalid(&nulls, &["sessionId", "language"]);
    }
}

backend_test! {
    async fn an_event_body_with_every_field_wrong_lists_every_problem(s: StoreCtx) {
        let app = spawn_app(s).await;
        let before = session_with_one_event(&app).await;

        let wrong_values = app
            .post_event(
                "call-1",
                &json!({"eventId": "a b", "type": "shout", "payload": [], "timestamp": "yesterday",
                        "extra": true, "seq": 7}),
            )
            .await;
        let wrong_types = app
            .post_event(
                "call-1",
                &json!({"eventId": 1, "type": 2, "payload": "x", "timestamp": 3}),
            )
            .await;
        let missing = app.post_event("call-1", &json!({})).await;
        let unknown_only = app
            .post_event(
                "call-1",
                &json!({"eventId": "e-2", "type": "system", "payload": {}, "sessionId": "call-1"}),
            )
            .await;

        assert_invalid(
            &wrong_values,
            &["eventId", "type", "payload", "timestamp", "extra", "seq"],
        );
        assert_invalid(&wrong_types, &["eventId", "type", "payload", "timestamp"]);
        assert_invalid(&missing, &["eventId", "type", "payload"]);
        assert_invalid(&unknown_only, &["sessionId"]);
        assert_unchanged(&app, &before).await;
    }
}

backend_test! {
    async fn an_invalid_session_id_in_the_body_is_a_400_naming_session_id(s: StoreCtx) {
        let app = spawn_app(s).await;
        let too_long = "a".repeat(129);

        for id in ["", "a b", "a/b", "é", too_long.as_str(), "a%20b"] {
            let r = app
                .post_json("/sessions", &json!({"sessionId": id, "language": "en"}))
                .await;

            assert_invalid(&r, &["sessionId"]);
        }
        let longest = "a".repeat(128);
        app.create_session(&longest).await;
    }
}

backend_test! {
    async fn a_language_that_is_not_a_bcp47_tag_is_a_400_naming_language(s: StoreCtx) {
        let app = spawn_app(s).await;

        for language in ["en_US", "", "e", "en-", "en-toolongsubtag"] {
            let r = app
                .post_json(
                    "/sessions",
                    &json!({"sessionId": "call-1", "language": language}),
                )
                .await;

            assert_invalid(&r, &["language"]);
        }
        app.get("/sessions/call-1")
            .await
            .assert_problem(404, "session_not_found");
    }
}

backend_test! {
    async fn metadata_that_is_not_an_object_is_a_400_naming_metadata(s: StoreCtx) {
        let app = spawn_app(s).await;

        for metadata in [json!([]), json!("x"), json!(1), json!(true)] {
            let r = app
                .post_json(
                    "/sessions",
                    &json!({"sessionId": "call-1", "language": "en", "metadata": metadata}),
                )
                .await;

            assert_invalid(&r, &["metadata"]);
        }
        app.get("/sessions/call-1")
            .await
            .assert_problem(404, "session_not_found");
    }
}

backend_test! {
    async fn a_payload_that_is_not_an_object_is_a_400_naming_payload(s: StoreCtx) {
        let app = spawn_app(s).await;
        let before = session_with_one_event(&app).await;

        for payload in [json!([]), json!("x"), json!(1), json!(null)] {
            let r = app
                .post_event(
                    "call-1",
                    &json!({"eventId": "e-2", "type": "system", "payload": payload}),
                )
                .await;

            assert_invalid(&r, &["payload"]);
        }
        assert_unchanged(&app, &before).await;
    }
}

backend_test! {
    async fn a_payload_nested_deeper_than_32_is_a_400_naming_payload(s: StoreCtx) {
        let app = spawn_app(s).await;
        let before = session_with_one_event(&app).await;

        let too_deep = app
            .post_event(
                "call-1",
                &json!({"eventId": "e-2", "type": "system", "payload": nested(33)}),
            )
            .await;
        let deep_arrays = app
            .post_event(
                "call-1",
                &json!({"eventId": "e-2", "type": "system",
                        "payload": {"a": (2..33).fold(json!([]), |inner, _| json!([inner]))}}),
            )
            .await;

        assert_invalid(&too_deep, &["payload"]);
        assert_invalid(&deep_arrays, &["payload"]);
        assert_unchanged(&app, &before).await;
    }
}

backend_test! {
    async fn a_payload_nested_exactly_32_deep_is_accepted(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;
        let payload = nested(32);

        let r = app
            .post_event(
                "call-1",
                &json!({"eventId": "e-1", "type": "system", "payload": payload}),
            )
            .await;

        assert_eq!(r.status, 201, "{}", r.text);
        let stored = app.get("/sessions/call-1/events/e-1").await;
        assert_eq!(stored.body["payload"], payload);
    }
}

backend_test! {
    async fn keys_starting_with_a_dollar_are_a_400(s: StoreCtx) {
        let app = spawn_app(s).await;
        let before = session_with_one_event(&app).await;

        for payload in [
            json!({"$set": 1}),
            json!({"a": {"$where": "1"}}),
            json!({"a": [1, {"$x": 1}]}),
        ] {
            let event = app
                .post_event(
                    "call-1",
                    &json!({"eventId": "e-2", "type": "system", "payload": payload.clone()}),
                )
                .await;
            let session = app
                .post_json(
                    "/sessions",
                    &json!({"sessionId": "call-2", "language": "en", "metadata": payload}),
                )
                .await;

            assert_invalid(&event, &["payload"]);
            assert_invalid(&session, &["metadata"]);
        }
        assert_unchanged(&app, &before).await;
        app.get("/sessions/call-2")
            .await
            .assert_problem(404, "session_not_found");
    }
}

backend_test! {
    async fn an_event_timestamp_that_is_not_rfc3339_is_a_400_naming_timestamp(s: StoreCtx) {
        let app = spawn_app(s).await;
        let before = session_with_one_event(&app).await;

        for timestamp in [
            "yesterday",
            "2025-12-21T15:30Z",
            "2025-13-01T00:00:00Z",
            "2025-12-21T15:30:15",
            "",
        ] {
            let r = app
                .post_event(
                    "call-1",
                    &json!({"eventId": "e-2", "type": "system", "payload": {}, "timestamp": timestamp}),
                )
                .await;

            assert_invalid(&r, &["timestamp"]);
        }
        assert_unchanged(&app, &before).await;
    }
}

backend_test! {
    async fn a_timestamp_without_t_or_space_between_date_and_time_is_a_400(s: StoreCtx) {
        let app = spawn_app(s).await;
        let before = session_with_one_event(&app).await;

        for timestamp in [
            "2025-12-21X15:30:15Z",
            "2025-12-21/15:30:15Z",
            "2025-12-21015:30:15Z",
        ] {
            let r = app
                .post_event(
                    "call-1",
                    &json!({"eventId": "e-2", "type": "system", "payload": {}, "timestamp": timestamp}),
                )
                .await;

            assert_invalid(&r, &["timestamp"]);
        }
        assert_unchanged(&app, &before).await;
    }
}
