//! Extractors that turn every malformed request into problem JSON instead of Axum's plain-text
//! rejections, and a small field reader that collects every violation at once.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts};
use std::fmt;
use std::ops::Range;

use serde::Deserializer as _;
use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::AppState;
use super::error::{AppError, FieldError};
use super::json::parse_strict;
use crate::domain::{Invalid, JsonObject, TextError, integers_fit_i64};

/// A request body that must be a JSON object, sent as `application/json` (or `application/*+json`),
/// read into its top-level [`Fields`].
pub struct JsonObjectBody(pub Fields);

/// Like [`JsonObjectBody`], but an empty body is allowed and gives `None`: with no `Content-Type`,
/// or with a JSON one (many HTTP clients send `Content-Type: application/json` and no body).
pub struct OptionalJsonObjectBody(pub Option<Fields>);

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let starts = |s: &str, prefix: &str| {
        s.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    let ends = |s: &str, suffix: &str| {
        s.len() >= suffix.len()
            && s.get(s.len() - suffix.len()..)
                .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
    };
    essence.eq_ignore_ascii_case("application/json")
        || (starts(essence, "application/") && ends(essence, "+json"))
}

/// The body, read up to the configured limit (`MAX_BODY_BYTES`): a longer one is refused with
/// 413 as soon as its `Content-Length` or its bytes say so, without reading the rest.
async fn read_body(req: Request, state: &AppState) -> Result<(Option<String>, Bytes), AppError> {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().map(str::to_owned).unwrap_or_default());
    let limit = state.max_body_bytes;
    let collected = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                AppError::PayloadTooLarge { limit }
            } else {
                AppError::bad_request("body_unreadable", "the request body could not be read")
            }
        })?;
    Ok((content_type, collected.to_bytes()))
}

fn parse_object(content_type: Option<String>, bytes: Bytes) -> Result<Fields, AppError> {
    require_json(content_type)?;
    Fields::parse(bytes)
}

fn require_json(content_type: Option<String>) -> Result<(), AppError> {
    match content_type {
        Some(ct) if is_json(&ct) => {}
        Some(ct) => {
            return Err(AppError::UnsupportedMediaType {
                detail: format!("expected Content-Type application/json, got {ct:?}"),
            });
        }
        None => {
            return Err(AppError::UnsupportedMediaType {
                detail: "expected Content-Type application/json".into(),
            });
        }
    }
    Ok(())
}

/// A request body sent as JSON (`application/json` or `application/*+json`), not yet read: for
/// the bodies read in one pass (`read_events`).
pub struct JsonBytes(pub Bytes);

impl FromRequest<AppState> for JsonBytes {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (content_type, bytes) = read_body(req, state).await?;
        require_json(content_type)?;
        Ok(JsonBytes(bytes))
    }
}

impl FromRequest<AppState> for JsonObjectBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (content_type, bytes) = read_body(req, state).await?;
        parse_object(content_type, bytes).map(JsonObjectBody)
    }
}

impl FromRequest<AppState> for OptionalJsonObjectBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (content_type, bytes) = read_body(req, state).await?;
        if bytes.is_empty() && content_type.as_deref().is_none_or(is_json) {
            return Ok(OptionalJsonObjectBody(None));
        }
        parse_object(content_type, bytes).map(|f| OptionalJsonObjectBody(Some(f)))
    }
}

/// Path parameters, with a problem-JSON rejection (e.g. for invalid percent-encoding).
pub struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| PathParams(t))
            .map_err(|e| AppError::bad_request("invalid_path", e.body_text()))
    }
}

/// The members of a JSON object body, read one by one, collecting every violation.
///
/// Only the top level is parsed up front: each member's value stays as its text in the body
/// until a field asks for it, as a string, a tree ([`Self::optional_value`]) or a stored object
/// ([`Self::optional_object`], read straight from its text into the compact text that is stored).
/// What is malformed anywhere (a syntax error, a duplicate key at any depth, an integer beyond 64
/// signed bits) makes the whole body `malformed_json`, as if it had been parsed at once.
pub struct Fields {
    body: Bytes,
    /// Each member in body order: its key and where its value's text is in `body`; `None` once
    /// a field took it.
    members: Vec<Member>,
    errors: Vec<FieldError>,
    /// The first malformed value found in a member (it wins over every other error).
    malformed: Option<String>,
}

/// The messages of the field rules, shared by every body reader.
pub const REQUIRED: &str = "is required";
pub const MUST_BE_STRING: &str = "must be a string";
pub const KNOWN_FIELD: &str = "is not a known field";

pub fn malformed(why: impl fmt::Display) -> AppError {
    AppError::bad_request(
        "malformed_json",
        format!("the body is not valid JSON: {why}"),
    )
}

/// Keeps a parsed value, or records in `errors` why `name` did not parse.
pub fn check<T>(errors: &mut Vec<FieldError>, name: &str, parsed: Result<T, Invalid>) -> Option<T> {
    parsed
        .map_err(|e| errors.push(FieldError::new(name, e.0)))
        .ok()
}

pub fn body_not_object() -> AppError {
    AppError::bad_request("body_not_object", "the body must be a JSON object")
}

impl Fields {
    /// Reads the top level of a body that must be one JSON object.
    pub fn parse(body: Bytes) -> Result<Self, AppError> {
        let members = match top_level_members(&body) {
            Ok(members) => members,
            // Not an object: malformed JSON says so first, as a full parse would.
            Err(None) => {
                return Err(match parse_strict(&body) {
                    Err(e) => malformed(e),
                    Ok(_) => body_not_object(),
                });
            }
            Err(Some(e)) => return Err(malformed(e)),
        };
        integers_fit_i64(&body).map_err(malformed)?;
        Ok(Self {
            body,
            members,
            errors: Vec::new(),
            malformed: None,
        })
    }

    /// Keeps a parsed value, or records why `name` did not parse.
    pub fn check<T>(&mut self, name: &str, parsed: Result<T, Invalid>) -> Option<T> {
        check(&mut self.errors, name, parsed)
    }

    /// The text of member `name`, taken; `None` if absent or `null`.
    fn take(&mut self, name: &str) -> Option<&str> {
        let range = self
            .members
            .iter_mut()
            .find(|(key, range)| key == name && range.is_some())
            .and_then(|(_, range)| range.take())?;
        // The range came from parsing this very body as UTF-8 text.
        let text = std::str::from_utf8(&self.body[range]).unwrap_or("null");
        (text != "null").then_some(text)
    }

    fn note_malformed(&mut self, why: impl fmt::Display) {
        if self.malformed.is_none() {
            self.malformed = Some(why.to_string());
        }
    }

    /// A field that must be present and a string.
    pub fn required_string(&mut self, name: &str) -> Option<String> {
        let value = self.optional_string(name);
        if value.is_none() && !self.errors.iter().any(|e| e.field == name) {
            self.errors.push(FieldError::new(name, REQUIRED));
        }
        value
    }

    /// A field that may be absent or null, and otherwise must be a string.
    pub fn optional_string(&mut self, name: &str) -> Option<String> {
        let text = self.take(name)?;
        if !text.starts_with('"') {
            self.errors.push(FieldError::new(name, MUST_BE_STRING));
            return None;
        }
        match serde_json::from_str::<String>(text) {
            Ok(s) => Some(s),
            Err(e) => {
                self.note_malformed(e);
                None
            }
        }
    }

    /// A field of any JSON type; `None` if absent or null.
    pub fn optional_value(&mut self, name: &str) -> Option<Value> {
        let text = self.take(name)?;
        match parse_strict(text.as_bytes()) {
            Ok(value) => Some(value),
            Err(e) => {
                self.note_malformed(e);
                None
            }
        }
    }

    /// A field that, if present and not null, must be a JSON object that [`JsonObject`] accepts,
    /// read straight from its text.
    pub fn optional_object(&mut self, name: &str) -> Option<Result<JsonObject, ()>> {
        let text = self.take(name)?;
        Some(match JsonObject::from_json_text(text) {
            Ok(object) => Ok(object),
            Err(TextError::Invalid(rule)) => {
                self.errors.push(FieldError::new(name, rule.0));
                Err(())
            }
            Err(TextError::Malformed(why)) => {
                self.note_malformed(why);
                Err(())
            }
        })
    }

    /// Records the fields nobody asked for, then fails if anything was wrong: malformed JSON
    /// first (also inside a member nobody asked for), then every violation.
    pub fn finish(mut self) -> Result<(), AppError> {
        for (key, range) in std::mem::take(&mut self.members) {
            let Some(range) = range else { continue };
            if let Err(e) = parse_strict(&self.body[range]) {
                self.note_malformed(e);
            }
            self.errors.push(FieldError::new(key, KNOWN_FIELD));
        }
        if let Some(why) = self.malformed {
            return Err(malformed(why));
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self.errors))
        }
    }
}

/// A member's key and where its value's text is in the body; `None` once taken.
type Member = (String, Option<Range<usize>>);

/// The top-level members of `body` with where each value's text is, refusing duplicate keys.
/// `Err(None)`: the body is not an object (or not JSON at all; the caller tells which).
fn top_level_members(body: &[u8]) -> Result<Vec<Member>, Option<String>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let members = de
        .deserialize_any(Members {
            base: body.as_ptr() as usize,
        })
        .map_err(|e| (!e.to_string().starts_with(NOT_OBJECT)).then(|| e.to_string()))?;
    de.end().map_err(|e| Some(e.to_string()))?;
    Ok(members)
}

const NOT_OBJECT: &str = "not an object";

struct Members {
    base: usize,
}

impl<'de> Visitor<'de> for Members {
    type Value = Vec<Member>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(NOT_OBJECT)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut members: Self::Value = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = access.next_key::<String>()? {
            // A set only for long objects: most bodies have a handful of members.
            let duplicate = if members.len() < 16 {
                members.iter().any(|(k, _)| *k == key)
            } else {
                if seen.is_empty() {
                    seen.extend(members.iter().map(|(k, _)| k.clone()));
                }
                !seen.insert(key.clone())
            };
            if duplicate {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value: &RawValue = access.next_value()?;
            let start = value.get().as_ptr() as usize - self.base;
            members.push((key, Some(start..start + value.get().len())));
        }
        Ok(members)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(E::custom(NOT_OBJECT))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(E::custom(NOT_OBJECT))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(E::custom(NOT_OBJECT))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(E::custom(NOT_OBJECT))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(E::custom(NOT_OBJECT))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(E::custom(NOT_OBJECT))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(NOT_OBJECT))
    }
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/problem+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/jsonx"));
        assert!(!is_json(""));
    }
}
