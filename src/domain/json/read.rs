//! Strict JSON reading: the one reader of request text, for every body and for object text.
//!
//! Strict: a duplicate key at any depth, and an integer literal that does not fit in 64 signed
//! bits, make the text malformed instead of being resolved silently (last key wins, precision
//! lost), so what is stored is what the client meant. Text is read in one pass, without a tree:
//! each value is summarised as it is read ([`Member`]), and an object is written as it is read
//! into the compact text that is stored, checked against the object rules. That text is exactly
//! what `serde_json::to_string` makes of the object's tree (same key order, number and string
//! forms), so stored text does not depend on which path made it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::compact::{object, skip_map, skip_seq};
use super::strict::{Keys, Numbers, next_new_key, wide_integer};
use super::{Invalid, JsonObject};

/// Why text is not JSON this service reads: a syntax error, content after the value, a duplicate
/// key at any depth, or an integer literal beyond 64 signed bits. Displays as the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(String);

/// Why request text is not a stored object.
#[derive(Debug)]
pub enum TextError {
    /// Not JSON this service reads (the reason of a [`Malformed`]): the whole request is
    /// malformed.
    Malformed(String),
    /// JSON, but it breaks an object rule (not an object, too deep, too many keys, a key with
    /// NUL or `$`, too long): the field is invalid.
    Invalid(Invalid),
}

/// A value as read: a member's, an item's or a whole body's.
#[derive(Debug)]
pub enum Member<'de> {
    Null,
    Str(Cow<'de, str>),
    /// An integer (one beyond 64 signed bits makes the text malformed).
    Int(i64),
    /// Anything else: a boolean, a number that is not an integer, an array that is not the
    /// [`List`], an object that is only checked (where the list is expected, or past its `max`).
    Other,
    /// An object, written as its compact text: a [`JsonObject`], or the first object rule it
    /// breaks (its depth counted from itself).
    Object(Result<JsonObject, Invalid>),
    /// A body that is an object ([`read_object`]), or an item of a [`List`]: its members.
    Members(Members<'de>),
    /// The [`List`] member, an array: its first items, each read as a body (an object as
    /// [`Member::Members`]), and how many items there were.
    List {
        items: Vec<Member<'de>>,
        count: usize,
    },
}

/// The members of an object, in its order, each with its key.
pub type Members<'de> = Vec<(Cow<'de, str>, Member<'de>)>;

/// The member of a body that is read as a list of bodies (the `events` of a batch): if it is an
/// array, its first `max` items are read as bodies; the rest are only checked and counted.
#[derive(Debug, Clone, Copy)]
pub struct List {
    pub name: &'static str,
    pub max: usize,
}

/// Reads a request body strictly, in one pass: the members of the object it is, or `None` if it
/// is JSON but not an object. Every object member is read as [`Member::Object`].
pub fn read_object(body: &[u8], list: Option<List>) -> Result<Option<Members<'_>>, Malformed> {
    Ok(match read(body, Shape::Body(list))? {
        Member::Members(members) => Some(members),
        _ => None,
    })
}

/// Reads object text ([`JsonObject::from_json_text`]): malformed text first, then the first
/// object rule broken.
pub(super) fn object_text(text: &str) -> Result<JsonObject, TextError> {
    read(text.as_bytes(), Shape::Object)
        .map_err(|Malformed(why)| TextError::Malformed(why))?
        .into_object()
        .map_err(TextError::Invalid)
}

impl Member<'_> {
    /// The object this is, or the rule it breaks if it is not one.
    pub fn into_object(self) -> Result<JsonObject, Invalid> {
        match self {
            Member::Object(object) => object,
            _ => Err(Invalid::new("must be a JSON object")),
        }
    }

    /// The same value, owning its text.
    pub fn into_owned(self) -> Member<'static> {
        match self {
            Member::Null => Member::Null,
            Member::Str(s) => Member::Str(Cow::Owned(s.into_owned())),
            Member::Int(n) => Member::Int(n),
            Member::Other => Member::Other,
            Member::Object(object) => Member::Object(object),
            Member::Members(members) => Member::Members(
                members
                    .into_iter()
                    .map(|(key, value)| (Cow::Owned(key.into_owned()), value.into_owned()))
                    .collect(),
            ),
            Member::List { items, count } => Member::List {
                items: items.into_iter().map(Member::into_owned).collect(),
                count,
            },
        }
    }
}

/// How a value's objects and arrays are read; other values are read the same in every shape.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Both only checked ([`Member::Other`]).
    Skip,
    /// An object as its compact text ([`Member::Object`]).
    Object,
    /// An object as a body's members ([`Member::Members`]), each read as an [`Shape::Object`],
    /// the list member (if any) as a [`Shape::List`].
    Body(Option<List>),
    /// An array as a list of bodies ([`Member::List`]), the first this many read.
    List(usize),
}

/// Reads all of `text` as one value of `shape`.
fn read(text: &[u8], shape: Shape) -> Result<Member<'_>, Malformed> {
    let numbers = Numbers::default();
    let mut de = serde_json::Deserializer::from_slice(text);
    let read = Read {
        shape,
        numbers: &numbers,
    }
    .deserialize(&mut de)
    .and_then(|member| de.end().map(|()| member));
    // The text is looked for a wide integer literal when reading met a number that may have
    // been one, and when reading failed: a wide integer is the answer wherever it is, before any
    // other fault.
    if (read.is_err() || numbers.maybe_wide())
        && let Some(literal) = wide_integer(text)
    {
        return Err(Malformed(format!(
            "the integer {literal} is outside the signed 64-bit range"
        )));
    }
    read.map_err(|e| Malformed(e.to_string()))
}

/// One value read as a [`Member`] of `shape`.
#[derive(Clone, Copy)]
struct Read<'a> {
    shape: Shape,
    numbers: &'a Numbers,
}

impl<'de> DeserializeSeed<'de> for Read<'_> {
    type Value = Member<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Member<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Read<'_> {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Member<'de>, E> {
        Ok(Member::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Member<'de>, E> {
        Ok(Member::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Member<'de>, E> {
        self.numbers.read_u64(v);
        Ok(i64::try_from(v).map_or(Member::Other, Member::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Member<'de>, E> {
        self.numbers.read_f64(v);
        Ok(Member::Other)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Member<'de>, A::Error> {
        match self.shape {
            Shape::List(max) => self.list(seq, max),
            _ => skip_seq(seq, self.numbers).map(|()| Member::Other),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Member<'de>, A::Error> {
        match self.shape {
            Shape::Object => object(map, self.numbers).map(Member::Object),
            Shape::Body(list) => self.members(map, list),
            Shape::Skip | Shape::List(_) => skip_map(map, self.numbers).map(|()| Member::Other),
        }
    }
}

impl Read<'_> {
    fn members<'de, A: MapAccess<'de>>(
        self,
        mut map: A,
        list: Option<List>,
    ) -> Result<Member<'de>, A::Error> {
        let mut members = Vec::new();
        let mut keys = Keys::default();
        while let Some(key) = next_new_key(&mut map, &mut keys)? {
            let shape = match list {
                Some(list) if key == list.name => Shape::List(list.max),
                _ => Shape::Object,
            };
            let value = map.next_value_seed(Read { shape, ..self })?;
            members.push((key, value));
        }
        Ok(Member::Members(members))
    }

    fn list<'de, A: SeqAccess<'de>>(self, mut seq: A, max: usize) -> Result<Member<'de>, A::Error> {
        let mut items = Vec::new();
        let mut count = 0;
        loop {
            let shape = if count < max {
                Shape::Body(None)
            } else {
                Shape::Skip
            };
            let Some(item) = seq.next_element_seed(Read { shape, ..self })? else {
                break;
            };
            if count < max {
                items.push(item);
            }
            count += 1;
        }
        Ok(Member::List { items, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads any JSON value, strictly.
    fn strict(text: &[u8]) -> Result<(), Malformed> {
        read(text, Shape::Skip).map(drop)
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(strict(br#"{"a":1,"a":2}"#).is_err());
        assert!(strict(br#"{"x":{"a":1,"b":{"a":1,"a":1}}}"#).is_err());
        assert!(strict(br#"{"a":{"a":1}}"#).is_ok());
        assert!(read_object(br#"{"a":1,"a":2}"#, None).is_err());
        assert!(read_object(br#"{"a":[{"b":1,"b":2}]}"#, None).is_err());
    }

    #[test]
    fn integers_must_fit_in_64_signed_bits() {
        assert!(strict(b"9223372036854775807").is_ok());
        assert!(strict(b"-9223372036854775808").is_ok());
        assert!(strict(b"9223372036854775808").is_err());
        assert!(strict(br#"{"n":[1, 123456789012345678901234567890]}"#).is_err());
        assert!(strict(b"-99999999999999999999").is_err());
        assert!(strict(b"1e300").is_ok());
        assert!(strict(b"-1e300").is_ok());
        assert!(strict(br#"{"n":9223372036854775808.0}"#).is_ok());
        assert!(strict(br#"{"s":"99999999999999999999999"}"#).is_ok());
        assert!(strict(br#"{"s\"99999999999999999999":"\\"}"#).is_ok());
        let wide = read_object(br#"{"a": [1, 2], "n": 18446744073709551616}"#, None);
        assert_eq!(
            wide.map(drop).map_err(|e| e.to_string()),
            Err("the integer 18446744073709551616 is outside the signed 64-bit range".into())
        );
    }

    #[test]
    fn a_wide_integer_is_named_before_any_other_fault() {
        let why = strict(br#"{"a": {"b": 1, "b": 2}, "n": -9223372036854775809}"#);
        assert_eq!(
            why.map_err(|e| e.to_string()),
            Err("the integer -9223372036854775809 is outside the signed 64-bit range".into())
        );
        // A lone sign is a syntax error, not an integer.
        let why = strict(br#"{"a": -}"#).map_err(|e| e.to_string());
        assert!(why.is_err_and(|e| !e.contains("integer")));
    }

    #[test]
    fn very_deep_input_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(strict(deep.as_bytes()).is_err());
        let deep = r#"{"a":"#.repeat(100_000) + &"}".repeat(100_000);
        assert!(read_object(deep.as_bytes(), None).is_err());
    }

    #[test]
    fn trailing_content_is_refused() {
        assert!(strict(b"{} {}").is_err());
        assert!(strict(b"{}  \n").is_ok());
    }

    #[test]
    fn a_body_is_read_as_its_members_and_a_list_as_bodies() {
        let list = List {
            name: "items",
            max: 2,
        };
        let body = br#"{"s": "x", "n": -3, "o": {"k": [1]}, "items": [{"a": null}, 5, {}, 7]}"#;
        let Ok(Some(members)) = read_object(body, Some(list)) else {
            panic!("an object");
        };
        let keys: Vec<_> = members.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["s", "n", "o", "items"]);
        assert!(matches!(&members[0].1, Member::Str(s) if s == "x"));
        assert!(matches!(members[1].1, Member::Int(-3)));
        assert!(matches!(&members[2].1, Member::Object(Ok(o)) if o.json() == r#"{"k":[1]}"#));
        let Member::List { items, count } = &members[3].1 else {
            panic!("a list");
        };
        assert_eq!(*count, 4);
        assert!(matches!(items.as_slice(), [Member::Members(m), Member::Int(5)] if m.len() == 1));
        assert!(matches!(read_object(b"[1, 2]", None), Ok(None)));
        assert!(matches!(read_object(b"\"x\"", None), Ok(None)));
    }
}
