//! Proptest strategies for JSON the API accepts: objects nested within the depth limit, keys
//! without NUL and not starting with `$`, integers within i64, finite floats.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_.]{0,12}",
        any::<String>().prop_map(|s| s.replace('\0', "").trim_start_matches('$').to_owned()),
        Just(String::new()),
        Just("a.b".to_owned()),
        Just("ключ 🔑".to_owned()),
    ]
}

pub fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| Value::Number(i.into())),
        prop_oneof![Just(i64::MAX), Just(i64::MIN), Just(0), Just(-1)]
            .prop_map(|i| Value::Number(i.into())),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
        any::<String>().prop_map(Value::String),
    ]
}

/// Any JSON value nested at most `depth` levels (containers count one level each).
pub fn value(depth: u32) -> impl Strategy<Value = Value> {
    scalar().prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A JSON object the API accepts as `metadata` or `payload`.
pub fn object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((key(), value(6)), 0..8).prop_map(|pairs| pairs.into_iter().collect())
}
