//! Reading a JSON object from request text into the compact text that is stored, in one pass and
//! without building a tree: each value is checked against the object rules and written out as it
//! is read. The output is exactly what `serde_json::to_string` makes of the parsed tree (same key
//! order, number and string forms), so stored text does not depend on which path made it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::Serializer as _;

use super::{Invalid, MAX_JSON_DEPTH, MAX_OBJECT_KEYS};

/// Why request text is not a stored object.
#[derive(Debug)]
pub enum TextError {
    /// Not the JSON this service accepts at all: a syntax error, a duplicate key, an integer
    /// beyond 64 signed bits. The whole request is malformed.
    Malformed(String),
    /// JSON, but it breaks an object rule (not an object, too deep, too many keys, a key with
    /// NUL or `$`): the field is invalid.
    Invalid(Invalid),
}

/// Checks `text` and writes its compact form; the first rule broken (in document order) is the
/// one reported, but only once the whole text is known to be well-formed JSON.
pub fn compact_object(text: &str) -> Result<Vec<u8>, TextError> {
    integers_fit_i64(text.as_bytes()).map_err(TextError::Malformed)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let compact = CompactSeed {
        capacity: text.len(),
    }
    .deserialize(&mut de)
    .and_then(|compact| de.end().map(|()| compact))
    .map_err(|e| TextError::Malformed(e.to_string()))?;
    compact.map_err(TextError::Invalid)
}

/// Reads one value from a deserializer (a member of a larger body) as an object: its compact
/// text, or the first rule it breaks. Malformed input is the deserializer's error. Integers
/// beyond 64 signed bits must have been refused in the whole text before (`integer_beyond_i64`):
/// a deserializer has already turned them into floats.
pub struct CompactSeed {
    /// The expected size of the output, to allocate once.
    pub capacity: usize,
}

impl<'de> DeserializeSeed<'de> for CompactSeed {
    type Value = Result<Vec<u8>, Invalid>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let mut out = Vec::with_capacity(self.capacity);
        let mut broken = None;
        Transcode {
            out: &mut out,
            depth: 1,
            broken: &mut broken,
        }
        .deserialize(d)?;
        Ok(match broken {
            Some(rule) => Err(rule),
            None => Ok(out),
        })
    }
}

/// Reads one value strictly (a duplicate key at any depth is the deserializer's error) and keeps
/// nothing: for members a body does not use, which must still be well-formed.
pub struct StrictSkip;

impl<'de> DeserializeSeed<'de> for StrictSkip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        StrictSkip::with(|skip| skip.deserialize(d))
    }
}

impl StrictSkip {
    /// Runs `read` with a transcoder whose output and broken rules are thrown away: below the
    /// top, so a value that is not an object breaks no rule here.
    fn with<R>(read: impl FnOnce(Transcode<'_>) -> R) -> R {
        let mut scratch = Vec::new();
        let mut broken = None;
        read(Transcode {
            out: &mut scratch,
            depth: 2,
            broken: &mut broken,
        })
    }

    /// Reads the rest of a map a visitor was handed but does not want, strictly.
    pub fn rest_of_map<'de, A: MapAccess<'de>>(map: A) -> Result<(), A::Error> {
        StrictSkip::with(|skip| skip.visit_map(map))
    }

    /// Reads the rest of a sequence a visitor was handed but does not want, strictly.
    pub fn rest_of_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<(), A::Error> {
        StrictSkip::with(|skip| skip.visit_seq(seq))
    }
}

/// The next key of an object, refusing one seen before in it (malformed JSON); `None` at its end.
pub fn next_new_key<'de, A: MapAccess<'de>>(
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

/// An object key, borrowed from the text when it has no escapes.
pub struct KeySeed;

/// Refuses JSON text holding an integer literal (no fraction, no exponent) that does not fit in an
/// `i64`, which serde_json would otherwise read as a lossy float; the error says which.
pub fn integers_fit_i64(bytes: &[u8]) -> Result<(), String> {
    match integer_beyond_i64(bytes) {
        Some(literal) => Err(format!(
            "the integer {literal} is outside the signed 64-bit range"
        )),
        None => Ok(()),
    }
}

/// The first integer literal in valid JSON text that does not fit in an `i64`.
fn integer_beyond_i64(bytes: &[u8]) -> Option<String> {
    if !has_digit_run(bytes, 19) {
        // Such a literal has at least 19 digits in a row; most text has no such run at all.
        return None;
    }
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                let literal = std::str::from_utf8(&bytes[start..i]).unwrap_or_default();
                let is_integer = !literal.contains(['.', 'e', 'E']);
                if is_integer && literal.parse::<i64>().is_err() {
                    return Some(literal.to_owned());
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Whether `bytes` holds `len` ASCII digits in a row. Any such run covers one of the positions
/// `len - 1, 2·len - 1, …`, so only those are looked at, and the run is measured around each
/// digit found there: about one byte in `len` is read in text without long runs.
fn has_digit_run(bytes: &[u8], len: usize) -> bool {
    let mut at = len - 1;
    while at < bytes.len() {
        if bytes[at].is_ascii_digit() {
            let before = bytes[..at]
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let after = bytes[at..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if before + after >= len {
                return true;
            }
            // No run of `len` covers `at`: the next one starts after this run.
            at += after;
        }
        at += len;
    }
    false
}

/// One value at `depth` (the top object is depth 1), written to `out`. A broken rule is kept in
/// `broken` (the first one) and reading goes on, so a later syntax error still wins.
struct Transcode<'a> {
    out: &'a mut Vec<u8>,
    depth: usize,
    broken: &'a mut Option<Invalid>,
}

impl Transcode<'_> {
    fn child(&mut self) -> Transcode<'_> {
        Transcode {
            out: self.out,
            depth: self.depth + 1,
            broken: self.broken,
        }
    }

    fn break_rule(&mut self, rule: impl FnOnce() -> Invalid) {
        if self.broken.is_none() {
            *self.broken = Some(rule());
        }
    }

    fn check_depth(&mut self) {
        if self.depth > MAX_JSON_DEPTH {
            self.break_rule(|| Invalid::new(format!("nests deeper than {MAX_JSON_DEPTH} levels")));
        }
    }

    /// Outside any object (`depth` 1 is the top): only an object is one.
    fn scalar(&mut self) {
        if self.depth == 1 {
            self.break_rule(|| Invalid::new("must be a JSON object"));
        }
    }

    fn writer(&mut self) -> serde_json::Serializer<&mut Vec<u8>> {
        serde_json::Serializer::new(&mut *self.out)
    }
}

impl<'de> DeserializeSeed<'de> for Transcode<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// Writes can only fail on an I/O error, which a `Vec` never has.
fn written<E: de::Error>(r: Result<(), serde_json::Error>) -> Result<(), E> {
    r.map_err(E::custom)
}

impl<'de> Visitor<'de> for Transcode<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<(), E> {
        self.scalar();
        written(self.writer().serialize_bool(v))
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<(), E> {
        self.scalar();
        written(self.writer().serialize_i64(v))
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<(), E> {
        self.scalar();
        if i64::try_from(v).is_err() {
            self.break_rule(|| Invalid::new("holds an integer outside the signed 64-bit range"));
        }
        written(self.writer().serialize_u64(v))
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<(), E> {
        self.scalar();
        written(self.writer().serialize_f64(v))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
        self.scalar();
        written(self.writer().serialize_str(v))
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.scalar();
        written(self.writer().serialize_unit())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.scalar();
        self.check_depth();
        self.out.push(b'[');
        let mut first = true;
        loop {
            let at = self.out.len();
            if !first {
                self.out.push(b',');
            }
            if seq.next_element_seed(self.child())?.is_none() {
                self.out.truncate(at);
                break;
            }
            first = false;
        }
        self.out.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut access: A) -> Result<(), A::Error> {
        self.check_depth();
        self.out.push(b'{');
        let mut keys = Keys::default();
        while let Some(key) = next_new_key(&mut access, &mut keys)? {
            if keys.len() > MAX_OBJECT_KEYS {
                self.break_rule(|| {
                    Invalid::new(format!(
                        "has an object with more than {MAX_OBJECT_KEYS} keys"
                    ))
                });
            }
            if key.contains('\0') {
                self.break_rule(|| Invalid::new("has a key containing a NUL character"));
            } else if key.starts_with('$') {
                self.break_rule(|| {
                    Invalid::new(format!("has a key starting with '$': {:?}", key.as_ref()))
                });
            }
            if keys.len() > 1 {
                self.out.push(b',');
            }
            written(self.writer().serialize_str(&key))?;
            self.out.push(b':');
            access.next_value_seed(self.child())?;
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// The keys of one object so far: a short list, or a set once it is long (an object may hold
/// up to the body limit's worth of keys, and a list would make that quadratic).
#[derive(Default)]
pub struct Keys<'de> {
    few: Vec<Cow<'de, str>>,
    many: HashSet<Cow<'de, str>>,
}

impl<'de> Keys<'de> {
    const FEW: usize = 16;

    /// Adds `key`; false if it was there already.
    pub fn insert(&mut self, key: Cow<'de, str>) -> bool {
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

    fn len(&self) -> usize {
        self.few.len() + self.many.len()
    }
}

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

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::has_digit_run;

    /// The strided check against the obvious one, on every placement of runs around the stride.
    #[test]
    fn digit_runs_are_found_wherever_they_start() {
        let naive = |bytes: &[u8], len: usize| {
            bytes
                .split(|b| !b.is_ascii_digit())
                .any(|run| run.len() >= len)
        };
        for total in 0..60 {
            for start in 0..total {
                for run in 0..=(total - start) {
                    let mut text = vec![b'x'; total];
                    text[start..start + run].fill(b'7');
                    // A shorter run just before it, to trip a wrong skip.
                    if start >= 3 {
                        text[start - 3..start - 1].fill(b'1');
                    }
                    for len in [1, 2, 5, 19] {
                        assert_eq!(
                            has_digit_run(&text, len),
                            naive(&text, len),
                            "{} / {len}",
                            String::from_utf8_lossy(&text)
                        );
                    }
                }
            }
        }
    }
}
