//! Property tests of parsing and validation, and of round-trip fidelity of accepted payloads on
//! both backends.

#[path = "support/mod.rs"]
mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::{Value, json};
use session_service::domain::{
    EventId, EventType, JsonObject, Language, MAX_JSON_DEPTH, MAX_OBJECT_KEYS, NewEvent,
    NewSession, SessionId, TextError, Timestamp,
};
use session_service::repo::Appended;
use support::json_strategy::object;
use support::{Backend, TestStore};

fn id_charset(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b))
        && s != "."
        && s != ".."
}

proptest! {
    #[test]
    fn ids_are_accepted_exactly_when_they_match_the_documented_rule(raw in ".{0,140}") {
        prop_assert_eq!(SessionId::parse(raw.clone()).is_ok(), id_charset(&raw));
        prop_assert_eq!(EventId::parse(raw.clone()).is_ok(), id_charset(&raw));
    }

    #[test]
    fn valid_ids_keep_their_exact_text(raw in "[A-Za-z0-9._:-]{3,128}") {
        let id = SessionId::parse(raw.clone()).unwrap();
        prop_assert_eq!(id.as_str(), raw.as_str());
    }

    #[test]
    fn every_timestamp_in_range_writes_and_reads_back_the_same(
        millis in -62_167_219_200_000i64..=253_402_300_799_999i64
    ) {
        let t = Timestamp::from_millis(millis).unwrap();
        let text = t.to_string();
        prop_assert_eq!(text.len(), 24);
        prop_assert_eq!(Timestamp::parse(&text).unwrap(), t);
    }

    #[test]
    fn arbitrary_text_never_panics_the_parsers(raw in any::<String>()) {
        let _ = Timestamp::parse(&raw);
        let _ = Language::parse(raw.clone());
        let _ = SessionId::parse(raw.clone());
        let _ = EventType::parse(&raw);
    }

    #[test]
    fn generated_objects_are_accepted_and_kept_as_they_are(map in object()) {
        let parsed = JsonObject::parse(Value::Object(map.clone())).unwrap();
        prop_assert_eq!(parsed.as_map(), &map);
    }

    /// Request text is read without building a tree; what that accepts and the text it keeps
    /// must be what the rules say of the parsed tree, and what `serde_json` writes of it.
    #[test]
    fn objects_read_from_text_are_judged_and_written_as_their_tree_would_be(
        map in object(),
        breaker in prop_oneof![
            Just(None),
            Just(Some(json!({"$set": 1}))),
            Just(Some(json!({"a\u{0}b": [1]}))),
            Just(Some(json!(u64::MAX))),
            Just(Some(deep(31))),
            Just(Some(deep(32))),
            Just(Some(json!([[[[{"k": "v"}]]]]))),
        ],
        pretty in any::<bool>()
    ) {
        let mut map = map;
        if let Some(breaker) = breaker {
            map.insert("zz-breaker".into(), breaker);
        }
        let value = Value::Object(map);
        let text = if pretty {
            serde_json::to_string_pretty(&value).unwrap()
        } else {
            serde_json::to_string(&value).unwrap()
        };
        let read = JsonObject::from_json_text(&text);
        match (rules_accept(&value, 1), read) {
            (true, Ok(object)) => {
                prop_assert_eq!(object.json(), serde_json::to_string(&value).unwrap());
                prop_assert_eq!(object.as_map(), value.as_object().unwrap());
            }
            (false, Err(TextError::Invalid(_))) => {}
            // In text, an integer beyond 64 signed bits is malformed, as in any request body.
            (false, Err(TextError::Malformed(why))) if why.contains("outside the signed 64-bit") => {}
            (expected, got) => prop_assert!(false, "rules say {expected}, text read gave {got:?}"),
        }
    }

    #[test]
    fn a_duplicate_key_at_any_depth_makes_object_text_malformed(map in object(), nest in any::<bool>()) {
        let body = serde_json::to_string(&Value::Object(map)).unwrap();
        let duplicated = if nest { r#"{"x":{"d":1,"d":2}}"# } else { r#"{"d":1,"d":2}"# };
        // Splice the duplicate in as one more member.
        let text = match body.as_str() {
            "{}" => format!(r#"{{"dup":{duplicated}}}"#),
            _ => format!(r#"{},"dup":{duplicated}}}"#, &body[..body.len() - 1]),
        };
        prop_assert!(matches!(JsonObject::from_json_text(&text), Err(TextError::Malformed(_))));
    }

    #[test]
    fn objects_with_a_dollar_or_nul_key_anywhere_are_refused(
        map in object(),
        bad in prop_oneof![Just("$set"), Just("a\0b"), Just("$")],
        nest in any::<bool>()
    ) {
        let mut map = map;
        let injected = if nest { json!({ "inner": { bad: 1 } }) } else { json!({ bad: 1 }) };
        map.insert("zz-injected".into(), injected);
        prop_assert!(JsonObject::parse(Value::Object(map)).is_err());
    }
}

/// `depth` objects nested in one another (the innermost empty).
fn deep(depth: usize) -> Value {
    (1..depth).fold(json!({}), |inner, _| json!({ "a": inner }))
}

/// The object rules, as stated in `JsonObject`'s documentation, judged on a tree: the reference
/// the text reader is held to. `depth` is the nesting level of `value` (the payload is 1).
fn rules_accept(value: &Value, depth: usize) -> bool {
    match value {
        Value::Object(map) => {
            depth <= MAX_JSON_DEPTH
                && map.len() <= MAX_OBJECT_KEYS
                && map.iter().all(|(k, v)| {
                    !k.contains('\0') && !k.starts_with('$') && rules_accept(v, depth + 1)
                })
        }
        Value::Array(items) => {
            depth <= MAX_JSON_DEPTH && items.iter().all(|v| rules_accept(v, depth + 1))
        }
        Value::Number(n) => !(n.is_u64() && n.as_i64().is_none()),
        _ => true,
    }
}

/// Stores generated payloads and metadata and checks that the JSON text read back is identical.
fn round_trip_on(backend: Backend) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime.block_on(TestStore::open(backend));
    let repos = store.repos.clone();
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 48,
        ..RunnerConfig::default()
    });
    let n = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(&(object(), object()), |(payload, metadata)| {
        let case = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sid = SessionId::parse(format!("s{case}")).unwrap();
        let (stored_meta, stored_payload) = runtime.block_on(async {
            repos
                .sessions
                .create_or_get(NewSession {
                    session_id: sid.clone(),
                    language: Language::parse("en").unwrap(),
                    metadata: JsonObject::parse(Value::Object(metadata.clone())).unwrap(),
                    started_at: Timestamp::now(),
                    timers: session_service::domain::Timers::default(),
                    redact: None,
                })
                .await
                .unwrap();
            let appended = repos
                .events
                .append(NewEvent {
                    session_id: sid.clone(),
                    event_id: EventId::parse("e").unwrap(),
                    event_type: EventType::System,
                    payload: JsonObject::parse(Value::Object(payload.clone())).unwrap(),
                    client_timestamp: None,
                    received_at: Timestamp::now(),
                    expected_seq: None,
                    redact: None,
                })
                .await
                .unwrap();
            assert!(matches!(appended, Appended::New(_)));
            let session = repos.sessions.get(&sid).await.unwrap();
            let event = repos
                .events
                .get(&sid, &EventId::parse("e").unwrap())
                .await
                .unwrap();
            (session.metadata, event.payload)
        });
        prop_assert_eq!(
            serde_json::to_string(stored_payload.as_map()).unwrap(),
            serde_json::to_string(&payload).unwrap()
        );
        prop_assert_eq!(
            serde_json::to_string(stored_meta.as_map()).unwrap(),
            serde_json::to_string(&metadata).unwrap()
        );
        Ok(())
    });
    runtime.block_on(store.cleanup());
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn accepted_payloads_round_trip_exactly_on_sqlite() {
    round_trip_on(Backend::Sqlite);
}

#[test]
fn accepted_payloads_round_trip_exactly_on_mongodb() {
    round_trip_on(Backend::Mongo);
}
