//! Completing sessions: the status, `endedAt`, and what a second complete gets.

use serde_json::json;

use crate::events::is_server_time;
use crate::support::StoreCtx;
use crate::support::app::spawn_app;

backend_test! {
    async fn completing_without_a_body_marks_the_session_completed_with_ended_at(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;
        app.add_event("call-1", "e-1").await;

        let r = app.complete("call-1", None).await;

        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["sessionId"], "call-1");
        assert_eq!(r.body["status"], "completed");
        assert_eq!(r.body["eventCount"], 1);
        assert!(is_server_time(&r.body["endedAt"]), "{}", r.text);
        assert!(
            r.body["endedAt"].as_str() >= r.body["startedAt"].as_str(),
            "{}",
            r.text
        );
        let session = app.read_session("call-1", "").await;
        assert_eq!(session["status"], "completed");
        assert_eq!(session["endedAt"], r.body["endedAt"]);
    }
}

backend_test! {
    async fn completing_with_an_empty_object_marks_the_session_completed(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;

        let r = app.complete("call-1", Some(&json!({}))).await;

        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["status"], "completed");
    }
}

backend_test! {
    async fn completing_with_status_completed_marks_the_session_completed(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;

        let r = app
            .complete("call-1", Some(&json!({"status": "completed"})))
            .await;

        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["status"], "completed");
    }
}

backend_test! {
    async fn completing_with_status_failed_marks_the_session_failed(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;

        let r = app
            .complete("call-1", Some(&json!({"status": "failed"})))
            .await;

        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["status"], "failed");
        assert!(is_server_time(&r.body["endedAt"]), "{}", r.text);
        assert_eq!(app.read_session("call-1", "").await["status"], "failed");
    }
}

backend_test! {
    async fn completing_again_returns_200_with_the_same_ended_at(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;
        let first = app.complete("call-1", None).await;
        assert_eq!(first.status, 200, "{}", first.text);

        let again = app.complete("call-1", None).await;
        let explicit = app
            .complete("call-1", Some(&json!({"status": "completed"})))
            .await;

        assert_eq!(again.status, 200, "{}", again.text);
        assert_eq!(again.body, first.body);
        assert_eq!(explicit.status, 200, "{}", explicit.text);
        assert_eq!(explicit.body, first.body);
    }
}

backend_test! {
    async fn completing_with_the_other_status_is_a_409_and_changes_nothing(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;
        let first = app
            .complete("call-1", Some(&json!({"status": "failed"})))
            .await;
        assert_eq!(first.status, 200, "{}", first.text);

        let to_completed = app.complete("call-1", None).await;

        to_completed.assert_problem(409, "session_already_ended");
        let session = app.read_session("call-1", "").await;
        assert_eq!(session["status"], "failed");
        assert_eq!(session["endedAt"], first.body["endedAt"]);
    }
}

backend_test! {
    async fn failing_a_completed_session_is_a_409(s: StoreCtx) {
        let app = spawn_app(s).await;
        app.create_session("call-1").await;
        assert_eq!(app.complete("call-1", None).await.status, 200);

        let r = app
            .complete("call-1", Some(&json!({"status": "failed"})))
            .await;

        r.assert_problem(409, "session_already_ended");
        assert_eq!(app.read_session("call-1", "").await["status"], "completed");
    }
}

backend_test! {
    async fn completing_an_unknown_session_is_a_404_session_not_found(s: StoreCtx) {
        let app = spawn_app(s).await;

        let r = app.complete("nobody", None).await;

        r.assert_problem(404, "session_not_found");
    }
}
