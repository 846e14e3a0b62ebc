//! Completing a session with a bad body.

use serde_json::json;

use super::{JSON, assert_invalid, assert_unchanged, session_with_one_event};
use crate::support::StoreCtx;
use crate::support::app::spawn_app;

backend_test! {
    async fn completing_with_an_unknown_status_is_a_400_naming_status(s: StoreCtx) {
        let app = spawn_app(s).await;
        let before = session_with_one_event(&app).await;

        let nope = app
            .complete("call-1", Some(&json!({"status": "nope"})))
            .await;
        let active = app
            .complete("call-1", Some(&json!({"status": "active"})))
            .await;
        let number = app.complete("call-1", Some(&json!({"status": 1}))).await;

        assert_invalid(&nope, &["status"]);
        assert_invalid(&active, &["status"]);
        assert_invalid(&number, &["status"]);
        assert_unchanged(&app, &before).await;
    }
}

backend_test! {
    async fn completing_with_an_unknown_field_is_a_400_naming_it(s: StoreCtx) {
        let app = spawn_app(s).await;
        let before = session_with_one_event(&app).await;

        let unknown = app.complete("call-1", Some(&json!({"x": 1}))).await;
        let both = app
            .complete(
                "call-1",
                Some(&json!({"status": "completed", "endedAt": "now"})),
            )
            .await;

        assert_invalid(&unknown, &["x"]);
        assert_invalid(&both, &["endedAt"]);
        assert_unchanged(&app, &before).await;
    }
}

backend_test! {
    async fn completing_with_a_json_content_type_and_an_empty_body_is_a_400(s: StoreCtx) {
        let app = spawn_app(s).await;
        let before = session_with_one_event(&app).await;

        let r = app.post_raw("/sessions/call-1/complete", JSON, "").await;

        r.assert_problem(400, "malformed_json");
        assert_unchanged(&app, &before).await;
    }
}
