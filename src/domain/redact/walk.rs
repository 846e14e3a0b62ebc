//! The walk over a payload's tree: a value is rebuilt only where something in it was replaced.

use serde_json::{Map, Value};

use super::{Redact, scan};

/// The object with its string values redacted at any depth, or `None` if nothing matched.
pub(super) fn object(
    map: &Map<String, Value>,
    set: Redact,
    counts: &mut [u32; 4],
) -> Option<Map<String, Value>> {
    let mut rebuilt: Option<Map<String, Value>> = None;
    for (index, (key, item)) in map.iter().enumerate() {
        let changed = value(item, set, counts);
        if changed.is_none() && rebuilt.is_none() {
            continue;
        }
        let out = rebuilt.get_or_insert_with(|| {
            let mut out = Map::with_capacity(map.len());
            out.extend(map.iter().take(index).map(|(k, v)| (k.clone(), v.clone())));
            out
        });
        out.insert(key.clone(), changed.unwrap_or_else(|| item.clone()));
    }
    rebuilt
}

/// The value redacted, or `None` if nothing in it matched.
fn value(item: &Value, set: Redact, counts: &mut [u32; 4]) -> Option<Value> {
    match item {
        Value::String(text) => scan::redact_str(text, set, counts).map(Value::String),
        Value::Object(map) => object(map, set, counts).map(Value::Object),
        Value::Array(items) => array(items, set, counts).map(Value::Array),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

fn array(items: &[Value], set: Redact, counts: &mut [u32; 4]) -> Option<Vec<Value>> {
    let mut rebuilt: Option<Vec<Value>> = None;
    for (index, item) in items.iter().enumerate() {
        let changed = value(item, set, counts);
        if changed.is_none() && rebuilt.is_none() {
            continue;
        }
        let out = rebuilt.get_or_insert_with(|| {
            let mut out = Vec::with_capacity(items.len());
            out.extend_from_slice(&items[..index]);
            out
        });
        out.push(changed.unwrap_or_else(|| item.clone()));
    }
    rebuilt
}
