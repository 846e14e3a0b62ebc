//! JSON Merge Patch (RFC 7396) on a [`JsonObject`]: what `PATCH /sessions/{id}` does to a
//! session's metadata.

use serde_json::{Map, Value};

use super::JsonObject;
use crate::domain::Invalid;

/// `target` with `patch` merged in, as RFC 7396 says: a member set to `null` is removed, an
/// object is merged into the member of the same name (recursively; into `{}` if that member is
/// not an object), anything else replaces the member. The result is checked against the rules
/// of every [`JsonObject`] (depth, keys, size), so a patch cannot make metadata that a create
/// could not.
pub fn merge_patch(target: &JsonObject, patch: &Map<String, Value>) -> Result<JsonObject, Invalid> {
    let mut merged = target.as_map().clone();
    merge_into(&mut merged, patch);
    JsonObject::parse(Value::Object(merged))
}

fn merge_into(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.shift_remove(key);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(slot) = slot {
                    merge_into(slot, inner);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(v: Value) -> JsonObject {
        JsonObject::parse(v).unwrap()
    }

    fn patch(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("a patch is an object"),
        }
    }

    /// The examples of RFC 7396, appendix A, that apply to an object target.
    #[test]
    fn the_rfc_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
            (
                json!({"a": "x"}),
                json!({"a": {"b": 1}}),
                json!({"a": {"b": 1}}),
            ),
        ];
        for (target, p, want) in cases {
            let merged = merge_patch(&object(target.clone()), &patch(p.clone())).unwrap();
            assert_eq!(merged, object(want), "{target} + {p}");
        }
    }

    #[test]
    fn the_same_patch_twice_gives_the_same_object() {
        let p = patch(json!({"a": {"b": null, "c": 1}, "d": null, "e": [1, 2]}));
        let once = merge_patch(&object(json!({"a": {"b": 2}, "d": 3})), &p).unwrap();
        let twice = merge_patch(&once, &p).unwrap();
        assert_eq!(once, twice);
    }

    #[test]
    fn a_result_that_breaks_the_rules_is_refused() {
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!({ "d": deep });
        }
        let p = patch(json!({ "deep": deep }));
        assert!(merge_patch(&object(json!({})), &p).is_err());
    }
}
