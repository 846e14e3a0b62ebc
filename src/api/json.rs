//! Strict JSON reading: duplicate keys and integers beyond 64 bits are refused rather than
//! silently resolved (last key wins, precision lost), so what is stored is what the client meant.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::domain::integers_fit_i64;

/// Parses `bytes` as one JSON value, refusing duplicate object keys and integer literals outside
/// the signed 64-bit range. Nesting is bounded by serde_json's recursion limit (128), so deep input
/// is an error, not a stack overflow.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictSeed.deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    integers_fit_i64(bytes)?;
    Ok(value)
}

struct StrictSeed;

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictSeed)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = access.next_value_seed(StrictSeed)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(parse_strict(br#"{"a":1,"a":2}"#).is_err());
        assert!(parse_strict(br#"{"x":{"a":1,"b":{"a":1,"a":1}}}"#).is_err());
        assert!(parse_strict(br#"{"a":{"a":1}}"#).is_ok());
    }

    #[test]
    fn integers_must_fit_in_64_signed_bits() {
        assert!(parse_strict(b"9223372036854775807").is_ok());
        assert!(parse_strict(b"-9223372036854775808").is_ok());
        assert!(parse_strict(b"9223372036854775808").is_err());
        assert!(parse_strict(br#"{"n":[1, 123456789012345678901234567890]}"#).is_err());
        assert!(parse_strict(b"-99999999999999999999").is_err());
        assert!(parse_strict(b"1e300").is_ok());
        assert!(parse_strict(br#"{"s":"99999999999999999999999"}"#).is_ok());
        assert!(parse_strict(br#"{"s\"99999999999999999999":"\\"}"#).is_ok());
    }

    #[test]
    fn very_deep_input_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(parse_strict(deep.as_bytes()).is_err());
    }

    #[test]
    fn trailing_content_is_refused() {
        assert!(parse_strict(b"{} {}").is_err());
        assert!(parse_strict(b"{}  \n").is_ok());
    }
}
