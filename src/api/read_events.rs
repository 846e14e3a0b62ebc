//! The bodies of `POST /sessions/{id}/events` and `…/events:batch`, read in one pass: each member
//! is checked as it is read and each payload is written straight into the compact text that is
//! stored (no tree of the body, no second pass over it). The answers are those of the field
//! reader ([`super::extract::Fields`]) for the other bodies: every violation at once, named by
//! field (`events[3].eventId` in a batch), and malformed JSON anywhere (a syntax error, a
//! duplicate key at any depth, an integer beyond 64 signed bits) before any of them.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::dto::AddEvent;
use super::error::{AppError, FieldError};
use super::extract::{KNOWN_FIELD, MUST_BE_STRING, REQUIRED, body_not_object, check, malformed};
use crate::domain::{
    CompactSeed, EventId, EventType, Invalid, JsonObject, Keys, MAX_BATCH_EVENTS, StrictSkip,
    TextError, Timestamp, integers_fit_i64, next_new_key,
};

/// One event object of a body, as read.
pub enum ReadEvent {
    Event(AddEvent),
    Invalid(Vec<FieldError>),
    NotObject,
}

/// Reads the body of `POST /sessions/{id}/events`.
pub fn event(body: &[u8]) -> Result<AddEvent, AppError> {
    match whole(body, EventSeed)? {
        ReadEvent::Event(event) => Ok(event),
        ReadEvent::Invalid(errors) => Err(AppError::Validation(errors)),
        ReadEvent::NotObject => Err(body_not_object()),
    }
}

/// The body of `POST /sessions/{id}/events:batch`, as read: every item of `events` up to
/// [`MAX_BATCH_EVENTS`] (and how many there were), and the members nobody asked for.
pub struct ReadBatch {
    pub events: Option<Result<ReadItems, FieldError>>,
    pub unknown: Vec<String>,
}

pub struct ReadItems {
    /// The first [`MAX_BATCH_EVENTS`] items, read.
    pub items: Vec<ReadEvent>,
    /// How many items there were.
    pub count: usize,
}

/// Reads the body of `POST /sessions/{id}/events:batch`.
pub fn batch(body: &[u8]) -> Result<ReadBatch, AppError> {
    whole(body, BatchSeed)?.ok_or_else(body_not_object)
}

/// Reads all of `body` with `seed`: malformed JSON, anywhere, is the answer before anything else.
fn whole<'de, S: DeserializeSeed<'de>>(body: &'de [u8], seed: S) -> Result<S::Value, AppError> {
    integers_fit_i64(body).map_err(malformed)?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let read = seed.deserialize(&mut de).map_err(malformed)?;
    de.end().map_err(malformed)?;
    Ok(read)
}

/// A member that must be a string, as read.
enum Text<'de> {
    Str(Cow<'de, str>),
    Null,
    Other,
}

impl<'de> Text<'de> {
    /// The string of a required member, or the error of `name`.
    fn required(this: Option<Self>, name: &str, errors: &mut Vec<FieldError>) -> Option<String> {
        match this {
            Some(Text::Str(s)) => Some(s.into_owned()),
            None | Some(Text::Null) => {
                errors.push(FieldError::new(name, REQUIRED));
                None
            }
            Some(Text::Other) => {
                errors.push(FieldError::new(name, MUST_BE_STRING));
                None
            }
        }
    }
}

struct TextSeed;

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = Text<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Text<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextSeed {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Text::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Text::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Text<'de>, E> {
        Ok(Text::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Text<'de>, E> {
        Ok(Text::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Text<'de>, E> {
        Ok(Text::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Text<'de>, E> {
        Ok(Text::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Text<'de>, E> {
        Ok(Text::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Text<'de>, A::Error> {
        StrictSkip::rest_of_seq(seq).map(|()| Text::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Text<'de>, A::Error> {
        StrictSkip::rest_of_map(map).map(|()| Text::Other)
    }
}

/// A payload member: `None` for `null`, else its compact text or the rule it breaks.
struct PayloadSeed;

impl<'de> DeserializeSeed<'de> for PayloadSeed {
    type Value = Option<Result<Vec<u8>, Invalid>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for PayloadSeed {
    type Value = Option<Result<Vec<u8>, Invalid>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        CompactSeed { capacity: 256 }.deserialize(d).map(Some)
    }
}

/// Calls `read` for each key of an object, refusing a key seen before (malformed JSON).
fn each_member<'de, A: MapAccess<'de>>(
    mut access: A,
    mut read: impl FnMut(&str, &mut A) -> Result<(), A::Error>,
) -> Result<(), A::Error> {
    let mut keys = Keys::default();
    while let Some(key) = next_new_key(&mut access, &mut keys)? {
        read(&key, &mut access)?;
    }
    Ok(())
}

/// One event object.
struct EventSeed;

impl<'de> DeserializeSeed<'de> for EventSeed {
    type Value = ReadEvent;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ReadEvent, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EventSeed {
    type Value = ReadEvent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<ReadEvent, A::Error> {
        let (mut event_id, mut kind, mut timestamp) = (None, None, None);
        let mut payload = None;
        let mut unknown = Vec::new();
        each_member(access, |key, access| {
            match key {
                "eventId" => event_id = Some(access.next_value_seed(TextSeed)?),
                "type" => kind = Some(access.next_value_seed(TextSeed)?),
                "timestamp" => timestamp = Some(access.next_value_seed(TextSeed)?),
                "payload" => payload = access.next_value_seed(PayloadSeed)?,
                _ => {
                    access.next_value_seed(StrictSkip)?;
                    unknown.push(key.to_owned());
                }
            }
            Ok(())
        })?;
        // The fields in the order the field reader checks them, then the unknown ones.
        let mut errors = Vec::new();
        let event_id = Text::required(event_id, "eventId", &mut errors)
            .and_then(|s| check(&mut errors, "eventId", EventId::parse(s)));
        let event_type = Text::required(kind, "type", &mut errors)
            .and_then(|s| check(&mut errors, "type", EventType::parse(&s)));
        let payload = match payload {
            None => {
                errors.push(FieldError::new("payload", REQUIRED));
                None
            }
            Some(Err(rule)) => check(&mut errors, "payload", Err::<JsonObject, _>(rule)),
            Some(Ok(compact)) => match JsonObject::from_compact(compact) {
                Ok(object) => Some(object),
                Err(TextError::Invalid(rule)) => check(&mut errors, "payload", Err(rule)),
                Err(TextError::Malformed(why)) => return Err(de::Error::custom(why)),
            },
        };
        let timestamp = match timestamp {
            None | Some(Text::Null) => Some(None),
            Some(Text::Other) => {
                errors.push(FieldError::new("timestamp", MUST_BE_STRING));
                None
            }
            Some(Text::Str(t)) => check(&mut errors, "timestamp", Timestamp::parse(&t)).map(Some),
        };
        errors.extend(
            unknown
                .into_iter()
                .map(|key| FieldError::new(key, KNOWN_FIELD)),
        );
        Ok(match (event_id, event_type, payload, timestamp) {
            (Some(event_id), Some(event_type), Some(payload), Some(timestamp))
                if errors.is_empty() =>
            {
                ReadEvent::Event(AddEvent {
                    event_id,
                    event_type,
                    payload,
                    timestamp,
                })
            }
            _ => ReadEvent::Invalid(errors),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ReadEvent, A::Error> {
        StrictSkip::rest_of_seq(seq).map(|()| ReadEvent::NotObject)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<ReadEvent, E> {
        Ok(ReadEvent::NotObject)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<ReadEvent, E> {
        Ok(ReadEvent::NotObject)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<ReadEvent, E> {
        Ok(ReadEvent::NotObject)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<ReadEvent, E> {
        Ok(ReadEvent::NotObject)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<ReadEvent, E> {
        Ok(ReadEvent::NotObject)
    }

    fn visit_unit<E: de::Error>(self) -> Result<ReadEvent, E> {
        Ok(ReadEvent::NotObject)
    }
}

/// A batch body: its `events` and the members nobody asked for. `None` if it is not an object.
struct BatchSeed;

impl<'de> DeserializeSeed<'de> for BatchSeed {
    type Value = Option<ReadBatch>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BatchSeed {
    type Value = Option<ReadBatch>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a batch object")
    }

    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<Self::Value, A::Error> {
        let mut events = None;
        let mut unknown = Vec::new();
        each_member(access, |key, access| {
            if key == "events" {
                events = access.next_value_seed(ItemsSeed)?;
            } else {
                access.next_value_seed(StrictSkip)?;
                unknown.push(key.to_owned());
            }
            Ok(())
        })?;
        Ok(Some(ReadBatch { events, unknown }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        StrictSkip::rest_of_seq(seq).map(|()| None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// The `events` member: `None` for `null`, else its items or why it is not an array.
struct ItemsSeed;

impl<'de> DeserializeSeed<'de> for ItemsSeed {
    type Value = Option<Result<ReadItems, FieldError>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn not_array<E>() -> Result<Option<Result<ReadItems, FieldError>>, E> {
    Ok(Some(Err(FieldError::new("events", "must be an array"))))
}

impl<'de> Visitor<'de> for ItemsSeed {
    type Value = Option<Result<ReadItems, FieldError>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        let mut count = 0;
        loop {
            // Past the limit the answer is the count alone; the rest is only checked as JSON.
            let more = if count < MAX_BATCH_EVENTS {
                seq.next_element_seed(EventSeed)?
                    .map(|item| items.push(item))
                    .is_some()
            } else {
                seq.next_element_seed(StrictSkip)?.is_some()
            };
            if !more {
                break;
            }
            count += 1;
        }
        Ok(Some(Ok(ReadItems { items, count })))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        StrictSkip::rest_of_map(map)?;
        not_array()
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        not_array()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        not_array()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        not_array()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        not_array()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        not_array()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::dto::AddEvents;

    /// The code of the answer, and the fields it names (in order) if it is a validation error.
    fn answer<T>(read: Result<T, AppError>) -> (&'static str, Vec<String>) {
        match read {
            Ok(_) => ("ok", Vec::new()),
            Err(AppError::Validation(errors)) => (
                "validation_failed",
                errors
                    .into_iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect(),
            ),
            Err(other) => (other.code(), Vec::new()),
        }
    }

    fn single(body: &str) -> (&'static str, Vec<String>) {
        answer(event(body.as_bytes()))
    }

    fn batch_of(body: &str) -> (&'static str, Vec<String>) {
        answer(AddEvents::parse(body.as_bytes()))
    }

    #[test]
    fn every_violation_is_named_in_field_order() {
        let (code, fields) = single(
            r#"{"extra": 1, "timestamp": 5, "payload": {"$set": 1}, "type": "shout", "eventId": 7}"#,
        );
        assert_eq!(code, "validation_failed");
        assert_eq!(
            fields,
            [
                "eventId: must be a string",
                r#"type: must be one of "user_speech", "bot_speech", "system""#,
                "payload: has a key starting with '$': \"$set\"",
                "timestamp: must be a string",
                "extra: is not a known field",
            ]
        );
        let (_, fields) = single(r#"{"eventId": null, "payload": null}"#);
        assert_eq!(
            fields,
            [
                "eventId: is required",
                "type: is required",
                "payload: is required"
            ]
        );
        assert_eq!(
            single(r#"{"eventId": "e", "type": "system", "payload": {}, "timestamp": null}"#).0,
            "ok"
        );
    }

    #[test]
    fn malformed_json_anywhere_wins_over_every_violation() {
        for body in [
            r#"{"eventId": 1, "eventId": 2}"#,
            r#"{"eventId": 1, "payload": {"a": {"b": 1, "b": 2}}}"#,
            r#"{"eventId": 1, "extra": [{"k": 1, "k": 1}]}"#,
            r#"{"eventId": {"k": 1, "k": 1}}"#,
            r#"{"eventId": 1, "payload": {"n": 99999999999999999999}}"#,
            r#"{"eventId": 1, "payload": {"#,
            r#"[1, 2"#,
            r#"{} {}"#,
        ] {
            assert_eq!(single(body).0, "malformed_json", "{body}");
        }
        assert_eq!(single("[1, 2]").0, "body_not_object");
        assert_eq!(single("\"event\"").0, "body_not_object");
    }

    #[test]
    fn a_batch_names_each_event_by_its_index() {
        let good = r#"{"eventId": "a", "type": "system", "payload": {}}"#;
        let (code, fields) = batch_of(&format!(
            r#"{{"events": [{good}, 5, {{"eventId": "b"}}], "x": 1}}"#
        ));
        assert_eq!(code, "validation_failed");
        assert_eq!(
            fields,
            [
                "events[1]: must be an object",
                "events[2].type: is required",
                "events[2].payload: is required",
                "x: is not a known field",
            ]
        );
        let many = vec![good; MAX_BATCH_EVENTS + 1].join(",");
        let (_, fields) = batch_of(&format!(r#"{{"events": [{many}]}}"#));
        assert_eq!(fields, ["events: must hold 1 to 100 events, not 101"]);
        assert_eq!(
            batch_of(r#"{"events": []}"#).1,
            ["events: must hold 1 to 100 events, not 0"]
        );
        assert_eq!(
            batch_of(r#"{"events": {}}"#).1,
            ["events: must be an array"]
        );
        assert_eq!(batch_of(r#"{"events": null}"#).1, ["events: is required"]);
        assert_eq!(
            batch_of(r#"{"events": [{"k": 1, "k": 2}]}"#).0,
            "malformed_json"
        );
        assert_eq!(batch_of(r#"[]"#).0, "body_not_object");
        assert_eq!(batch_of(&format!(r#"{{"events": [{good}]}}"#)).0, "ok");
    }
}
