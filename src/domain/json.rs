use serde_json::{Map, Value};

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
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonObject(Map<String, Value>);

impl JsonObject {
    pub fn parse(value: Value) -> Result<Self, Invalid> {
        let Value::Object(map) = value else {
            return Err(Invalid::new("must be a JSON object"));
        };
        check_object(&map, 1)?;
        let size = serde_json::to_vec(&map)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_JSON_BYTES {
            return Err(Invalid::new(format!(
                "must be at most {MAX_JSON_BYTES} bytes as JSON"
            )));
        }
        Ok(Self(map))
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    /// Wraps an object read back from storage, which was validated when it was written.
    pub fn from_stored(map: Map<String, Value>) -> Self {
        Self(map)
    }
}

fn check_value(value: &Value, depth: usize) -> Result<(), Invalid> {
    match value {
        Value::Object(map) => check_object(map, depth),
        Value::Array(items) => {
            check_depth(depth)?;
            items
                .iter()
                .try_for_each(|item| check_value(item, depth + 1))
        }
        Value::Number(n) if n.is_u64() && n.as_i64().is_none() => Err(Invalid::new(
            "holds an integer outside the signed 64-bit range",
        )),
        _ => Ok(()),
    }
}

fn check_depth(depth: usize) -> Result<(), Invalid> {
    if depth > MAX_JSON_DEPTH {
        return Err(Invalid::new(format!(
            "nests deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    Ok(())
}

fn check_object(map: &Map<String, Value>, depth: usize) -> Result<(), Invalid> {
    check_depth(depth)?;
    if map.len() > MAX_OBJECT_KEYS {
        return Err(Invalid::new(format!(
            "has an object with more than {MAX_OBJECT_KEYS} keys"
        )));
    }
    for (key, value) in map {
        if key.contains('\0') {
            return Err(Invalid::new("has a key containing a NUL character"));
        }
        if key.starts_with('$') {
            return Err(Invalid::new(format!(
                "has a key starting with '$': {key:?}"
            )));
        }
        check_value(value, depth + 1)?;
    }
    Ok(())
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
    fn non_objects_are_refused() {
        for v in [json!([]), json!(1), json!("x"), json!(null)] {
            assert!(JsonObject::parse(v).is_err());
        }
    }
}
