//! The two rules that make reading strict, shared by every reader of request text: an object's
//! keys are unique (a duplicate is malformed JSON, not "last key wins"), and an integer literal
//! fits in 64 signed bits (a wider one is malformed JSON, not a float that lost precision).

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

/// What the integer rule needs to know of the numbers read from one text: whether one may have
/// been an integer literal beyond 64 signed bits. serde_json reads such a literal that fits in a
/// `u64` as that, and a wider one as a float of at least 2⁶³ in magnitude, losing its digits, so
/// only after such a number must the text itself be looked at ([`wide_integer`]).
#[derive(Default)]
pub(super) struct Numbers(Cell<bool>);

impl Numbers {
    /// Notes a number serde_json read as a `u64`.
    pub(super) fn read_u64(&self, v: u64) {
        if i64::try_from(v).is_err() {
            self.0.set(true);
        }
    }

    /// Notes a number serde_json read as a float.
    pub(super) fn read_f64(&self, v: f64) {
        if v.abs() >= 9_223_372_036_854_775_808.0 {
            self.0.set(true);
        }
    }

    /// Whether a number read may have been a wide integer literal.
    pub(super) fn maybe_wide(&self) -> bool {
        self.0.get()
    }
}

/// The first integer literal (digits, with an optional `-`, no fraction, no exponent) in `text`
/// that does not fit in an `i64`, outside strings.
pub(super) fn wide_integer(text: &[u8]) -> Option<&str> {
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < text.len()
                    && matches!(text[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                let literal = std::str::from_utf8(&text[start..i]).unwrap_or_default();
                let digits = literal.strip_prefix('-').unwrap_or(literal);
                let is_integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
                if is_integer && literal.parse::<i64>().is_err() {
                    return Some(literal);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The next key of an object, refusing one seen before in it (malformed JSON); `None` at its end.
pub(super) fn next_new_key<'de, A: MapAccess<'de>>(
    access: &mut A,
    keys: &mut Keys<'de>,
) -> Result<Option<Cow<'de, str>>, A::Error> {
    let Some(key) = access.next_key_seed(KeySeed)? else {
        return Ok(None);
    };
    if !keys.insert(key.clone()) {
        return Err(de::Error::custom(format!(
            "duplicate key {:?}",
            key.as_ref()
        )));
    }
    Ok(Some(key))
}

/// The keys of one object so far.
#[derive(Default)]
pub(super) struct Keys<'de> {
    few: Vec<Cow<'de, str>>,
    many: HashSet<Cow<'de, str>>,
}

impl<'de> Keys<'de> {
    /// Most objects have a few keys, quickest compared in a list; one may hold the body limit's
    /// worth, so past this many they go to a set, keeping the check linear.
    const FEW: usize = 16;

    /// Adds `key`; false if it was there already.
    pub(super) fn insert(&mut self, key: Cow<'de, str>) -> bool {
        if self.many.is_empty() {
            if self.few.contains(&key) {
                return false;
            }
            self.few.push(key);
            if self.few.len() > Self::FEW {
                self.many.extend(self.few.drain(..));
            }
            true
        } else {
            self.many.insert(key)
        }
    }

    pub(super) fn len(&self) -> usize {
        self.few.len() + self.many.len()
    }
}

/// An object key, borrowed from the text when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}
