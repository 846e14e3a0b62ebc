//! Content types and body sizes.

use serde_json::json;

use super::{assert_unchanged, session_with_one_event};
use crate::support::StoreCtx;
use crate::support::app::{spawn_app, spawn_app_with};

backend_test! {
    async fn a_body_without_a_json_content_type_is_a_415(s: StoreCtx) {
        let app = spawn_app(s).await;
        let before = session_with_one_event(&app).await;
        let session = r#"{"sessionId": "call-2", "language": "en"}"#;
        let event = r#"{"eventId": "e-2", "type": "system", "payload": {}}"#;

        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let create = app.post_raw("/sessions", content_type, session).await;
            let e = app
                .post_raw("/sessions/call-1/events", content_type, event)
                .await;
            let c = app
                .post_raw(
                    "/sessions/call-1/complete",
                    content_type,
                    r#"{"status":"failed"}"#,
                )
                .await;

            create.assert_problem(415, "unsupported_media_type");
            e.assert_problem(415, "unsupported_media_type");
            if content_type.is_some() {
                c.assert_problem(415, "unsupported_media_type");
            }
        }
        let no_type_complete = app
            .post_raw("/sessions/call-1/complete", None, r#"{"status":"failed"}"#)
            .await;
        no_type_complete.assert_problem(415, "unsupported_media_type");
        assert_unchanged(&app, &before).await;
        app.get("/sessions/call-2")
            .await
            .assert_problem(404, "session_not_found");
    }
}

backend_test! {
    async fn a_json_content_type_with_a_charset_is_accepted(s: StoreCtx) {
        let app = spawn_app(s).await;

        let r = app
            .post_raw(
                "/sessions",
                Some("application/json; charset=utf-8"),
                r#"{"sessionId": "call-1", "language": "en"}"#,
            )
            .await;

        assert_eq!(r.status, 201, "{}", r.text);
    }
}

backend_test! {
    async fn a_body_over_max_body_bytes_is_a_413_and_changes_nothing(s: StoreCtx) {
        let app = spawn_app_with(s, &[("MAX_BODY_BYTES", "2048")]).await;
        let before = session_with_one_event(&app).await;
        let big = "x".repeat(4096);

        let r = app
            .post_event(
                "call-1",
                &json!({"eventId": "e-2", "type": "system", "payload": {"text": big}}),
            )
            .await;
        let session = app
            .post_json(
                "/sessions",
                &json!({"sessionId": "call-2", "language": "en", "metadata": {"text": big}}),
            )
            .await;

        r.assert_problem(413, "payload_too_large");
        session.assert_problem(413, "payload_too_large");
        assert_unchanged(&app, &before).await;
        app.get("/sessions/call-2")
            .await
            .assert_problem(404, "session_not_found");
    }
}

backend_test! {
    async fn a_body_under_max_body_bytes_is_accepted(s: StoreCtx) {
        let app = spawn_app_with(s, &[("MAX_BODY_BYTES", "2048")]).await;
        app.create_session("call-1").await;

        let r = app
            .post_event(
                "call-1",
                &json!({"eventId": "e-1", "type": "system", "payload": {"text": "x".repeat(1900)}}),
            )
            .await;

        assert_eq!(r.status, 201, "{}", r.text);
    }
}
