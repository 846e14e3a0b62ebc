//! Requests the service refuses: every refusal is problem JSON with a stable code, names every
//! invalid field at once, and changes nothing.

use serde_json::{Value, json};

use crate::support::app::{Reply, TestApp};

mod bodies;
mod fields;

const JSON: Option<&str> = Some("application/json");

fn sorted(mut fields: Vec<String>) -> Vec<String> {
    fields.sort();
    fields
}

fn assert_invalid(r: &Reply, fields: &[&str]) {
    r.assert_problem(400, "validation_failed");
    let mut expected: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    expected.sort();
    assert_eq!(sorted(r.error_fields()), expected, "{}", r.text);
    for e in r.body["errors"].as_array().unwrap() {
        assert!(e["message"].is_string(), "every error says why: {}", r.text);
    }
}

/// An object nested `depth` levels deep, the outermost being level 1.
fn nested(depth: usize) -> Value {
    (1..depth).fold(json!({}), |inner, _| json!({ "a": inner }))
}

/// A session with one event, to check that refused requests leave it as it was.
async fn session_with_one_event(app: &TestApp) -> Value {
    app.create_session("call-1").await;
    app.add_event("call-1", "e-1").await;
    app.read_session("call-1", "").await
}

async fn assert_unchanged(app: &TestApp, before: &Value) {
    assert_eq!(&app.read_session("call-1", "").await, before);
    app.get("/sessions/call-1/events/e-2")
        .await
        .assert_problem(404, "event_not_found");
}
