use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

mod compact;
mod merge;
mod read;
mod strict;

pub use merge::merge_patch;
pub use read::{List, Malformed, Member, Members, TextError, read_object};

use super::Invalid;

/// How deep objects and arrays may nest inside `metadata` and `payload` (the object itself is depth 1).
pub const MAX_JSON_DEPTH: usize = 32;
/// How many keys one object may hold, at any depth.
pub const MAX_OBJECT_KEYS: usize = 1_000;
/// The largest serialized `metadata` or `payload`, well below MongoDB's 16 MiB document limit.
pub const MAX_JSON_BYTES: usize = 1_048_576;

/// A JSON object that every backend stores and returns exactly: nested at most [`MAX_JSON_DEPTH`]
/// deep, at most [`MAX_OBJECT_KEYS`] keys per object, integers within the signed 64-bit range, keys
/// without NUL and not starting with `$` (BSON cannot hold the first, MongoDB reserves the second).
///
/// It holds the object as a tree, as its compact JSON text, or both; each is made from the other
/// once, when first asked for. A request's object is parsed once and its text kept (storage and
/// the answer reuse it); an object read back as text (SQLite) is sent on as that text without
/// being parsed into a tree, unless something needs its values. Equality compares the values
/// (key order aside), like `serde_json::Map`.
///
/// Cloning is one reference count: an event's payload is shared, not copied, between the request,
/// the write, the answer and live streams.
#[derive(Clone, Default)]
pub struct JsonObject(Arc<Forms>);

#[derive(Default)]
struct Forms {
    map: OnceLock<Map<String, Value>>,
    text: OnceLock<Box<RawValue>>,
}

impl JsonObject {
    /// Checks a tree against the rules and keeps its compact text. It goes through the same
    /// reader as request text ([`Self::from_json_text`]), so one set of rules decides both.
    pub fn parse(value: Value) -> Result<Self, Invalid> {
        if !value.is_object() {
            return Err(Invalid::new("must be a JSON object"));
        }
        let text = serde_json::to_string(&value).map_err(|e| Invalid::new(e.to_string()))?;
        Self::from_json_text(&text).map_err(|e| match e {
            TextError::Invalid(rule) => rule,
            TextError::Malformed(why) => Invalid::new(why),
        })
    }

    /// Reads an object from request text, strictly ([`read_object`]'s rules): checked against
    /// the rules and kept as its compact text (what [`Self::json`] gives), in one pass, without
    /// building a tree. The tree is made only if something asks for the values.
    pub fn from_json_text(text: &str) -> Result<Self, TextError> {
        read::object_text(text)
    }

    /// Wraps the compact text the reader wrote, refusing it if it is over [`MAX_JSON_BYTES`].
    fn from_compact(compact: Vec<u8>) -> Result<Self, TextError> {
        if compact.len() > MAX_JSON_BYTES {
            return Err(TextError::Invalid(Invalid::new(format!(
                "must be at most {MAX_JSON_BYTES} bytes as JSON"
            ))));
        }
        let raw = String::from_utf8(compact)
            .map_err(|e| e.to_string())
            .and_then(|text| RawValue::from_string(text).map_err(|e| e.to_string()))
            .map_err(TextError::Malformed)?;
        Ok(Self(Arc::new(Forms {
            map: OnceLock::new(),
            text: OnceLock::from(raw),
        })))
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        self.0.map.get_or_init(|| {
            // The text was made from an object or checked to be one when this was built.
            self.0
                .text
                .get()
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                .unwrap_or_default()
        })
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.as_map();
        match Arc::try_unwrap(self.0) {
            Ok(forms) => forms.map.into_inner().unwrap_or_default(),
            Err(shared) => shared.map.get().cloned().unwrap_or_default(),
        }
    }

    /// The compact JSON text (what `serde_json::to_string` makes of the tree).
    pub fn json(&self) -> &str {
        self.raw().get()
    }

    fn raw(&self) -> &RawValue {
        self.0.text.get_or_init(|| {
            let text = serde_json::to_string(self.as_map()).unwrap_or_else(|_| "{}".to_owned());
            RawValue::from_string(text).unwrap_or_else(|_| empty_object())
        })
    }

    /// Wraps an object read back from storage, which was validated when it was written.
    pub fn from_stored(map: Map<String, Value>) -> Self {
        Self(Arc::new(Forms {
            map: OnceLock::from(map),
            text: OnceLock::new(),
        }))
    }

    /// Wraps the JSON text of an object read back from storage, checking only that it is one
    /// JSON object (the rules were checked when it was written); it is parsed into a tree only
    /// if its values are asked for.
    pub fn from_stored_json(text: &str) -> Result<Self, Invalid> {
        if !text.trim_start().starts_with('{') {
            return Err(Invalid::new("stored JSON is not an object"));
        }
        let raw = serde_json::from_str::<&RawValue>(text)
            .map_err(|e| Invalid::new(e.to_string()))?
            .to_owned();
        Ok(Self(Arc::new(Forms {
            map: OnceLock::new(),
            text: OnceLock::from(raw),
        })))
    }
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| unreachable!("{{}} is JSON"))
}

impl PartialEq for JsonObject {
    fn eq(&self, other: &Self) -> bool {
        match (self.0.text.get(), other.0.text.get()) {
            // The same text is the same object; different text may still be (key order).
            (Some(a), Some(b)) if a.get() == b.get() => true,
            _ => self.as_map() == other.as_map(),
        }
    }
}

impl fmt::Debug for JsonObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.json())
    }
}

/// Serialized as its text, verbatim: no tree is walked to answer a read.
impl Serialize for JsonObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw().serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nested(depth: usize) -> Value {
        (1..depth).fold(json!({}), |inner, _| json!({ "a": inner }))
    }

    #[test]
    fn objects_up_to_the_depth_limit_are_accepted() {
        assert!(JsonObject::parse(nested(MAX_JSON_DEPTH)).is_ok());
        assert!(JsonObject::parse(nested(MAX_JSON_DEPTH + 1)).is_err());
        assert!(JsonObject::parse(json!({"a": [[[]]]})).is_ok());
    }

    #[test]
    fn values_bson_cannot_hold_are_refused() {
        assert!(JsonObject::parse(json!({"n": i64::MAX})).is_ok());
        assert!(JsonObject::parse(json!({"n": i64::MIN})).is_ok());
        assert!(JsonObject::parse(json!({"n": (i64::MAX as u64) + 1})).is_err());
        assert!(JsonObject::parse(json!({"a\u{0}b": 1})).is_err());
        assert!(JsonObject::parse(json!({"x": {"$set": 1}})).is_err());
        assert!(JsonObject::parse(json!({"a.b": 1, "a$": 2})).is_ok());
    }

    #[test]
    fn the_tree_and_the_text_agree_however_the_object_was_made() {
        let value = json!({"b": 1, "a": [true, null, 1.5, "x\n"], "c": {"d": -3}});
        let parsed = JsonObject::parse(value.clone()).unwrap();
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(parsed.json(), text);
        let stored = JsonObject::from_stored_json(&text).unwrap();
        assert_eq!(serde_json::to_string(&stored).unwrap(), text);
        assert_eq!(stored.as_map(), value.as_object().unwrap());
        let from_map = JsonObject::from_stored(value.as_object().unwrap().clone());
        assert_eq!(from_map.json(), text);
        assert_eq!(parsed, stored);
        assert_eq!(stored, from_map);
        assert_eq!(JsonObject::default().json(), "{}");
    }

    #[test]
    fn equality_is_by_value_not_by_key_order() {
        let one = JsonObject::from_stored_json(r#"{"a":1,"b":2}"#).unwrap();
        let other = JsonObject::from_stored_json(r#"{"b":2,"a":1}"#).unwrap();
        let different = JsonObject::from_stored_json(r#"{"a":1,"b":3}"#).unwrap();
        assert_eq!(one, other);
        assert_ne!(one, different);
    }

    #[test]
    fn stored_text_that_is_not_one_object_is_refused() {
        for bad in ["[]", "1", "{", "{\"a\":1} x", ""] {
            assert!(JsonObject::from_stored_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_objects_are_refused() {
        for v in [json!([]), json!(1), json!("x"), json!(null)] {
            assert!(JsonObject::parse(v).is_err());
        }
    }
}
