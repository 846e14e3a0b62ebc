//! Writing an object as it is read into the compact text that is stored, checking the object
//! rules on the way: exactly what `serde_json::to_string` makes of the object's tree (same key
//! order, number and string forms), without building the tree.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::Serializer as _;

use super::strict::{Keys, Numbers, next_new_key};
use super::{Invalid, JsonObject, MAX_JSON_DEPTH, MAX_OBJECT_KEYS, TextError};

/// Reads the rest of an object (its `{` read) strictly into a [`JsonObject`], or the first object
/// rule it breaks; malformed JSON is the error.
pub(super) fn object<'de, A: MapAccess<'de>>(
    map: A,
    numbers: &Numbers,
) -> Result<Result<JsonObject, Invalid>, A::Error> {
    // Most objects (an event's payload) fit; a longer one grows the buffer.
    let mut out = Vec::with_capacity(256);
    let mut broken = None;
    Transcode {
        out: &mut out,
        depth: 1,
        broken: &mut broken,
        numbers,
    }
    .visit_map(map)?;
    if let Some(rule) = broken {
        return Ok(Err(rule));
    }
    match JsonObject::from_compact(out) {
        Ok(object) => Ok(Ok(object)),
        Err(TextError::Invalid(rule)) => Ok(Err(rule)),
        Err(TextError::Malformed(why)) => Err(de::Error::custom(why)),
    }
}

/// Reads the rest of an object strictly and keeps nothing.
pub(super) fn skip_map<'de, A: MapAccess<'de>>(map: A, numbers: &Numbers) -> Result<(), A::Error> {
    Transcode::discarded(numbers, |t| t.visit_map(map))
}

/// Reads the rest of an array strictly and keeps nothing.
pub(super) fn skip_seq<'de, A: SeqAccess<'de>>(seq: A, numbers: &Numbers) -> Result<(), A::Error> {
    Transcode::discarded(numbers, |t| t.visit_seq(seq))
}

/// One value at `depth` (the object read is depth 1), written to `out` as compact JSON. The
/// first object rule broken is kept in `broken` and reading goes on, so a later syntax error
/// still wins.
struct Transcode<'a> {
    out: &'a mut Vec<u8>,
    depth: usize,
    broken: &'a mut Option<Invalid>,
    numbers: &'a Numbers,
}

impl Transcode<'_> {
    /// Runs `read` with a transcoder whose text and broken rules are thrown away.
    fn discarded<R>(numbers: &Numbers, read: impl FnOnce(Transcode<'_>) -> R) -> R {
        let (mut scratch, mut broken) = (Vec::new(), None);
        read(Transcode {
            out: &mut scratch,
            depth: 1,
            broken: &mut broken,
            numbers,
        })
    }

    fn child(&mut self) -> Transcode<'_> {
        Transcode {
            out: self.out,
            depth: self.depth + 1,
            broken: self.broken,
            numbers: self.numbers,
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
        written(self.writer().serialize_bool(v))
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<(), E> {
        written(self.writer().serialize_i64(v))
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<(), E> {
        self.numbers.read_u64(v);
        written(self.writer().serialize_u64(v))
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<(), E> {
        self.numbers.read_f64(v);
        written(self.writer().serialize_f64(v))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
        written(self.writer().serialize_str(v))
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        written(self.writer().serialize_unit())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
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
