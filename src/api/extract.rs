//! Extractors that turn every malformed request into problem JSON instead of Axum's plain-text
//! rejections, and a small field reader that collects every violation at once.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::AppState;
use super::error::{AppError, FieldError};
use super::json::parse_strict;
use crate::domain::Invalid;

/// A request body that must be a JSON object, sent as `application/json` (or `application/*+json`).
pub struct JsonObjectBody(pub Map<String, Value>);

/// Like [`JsonObjectBody`], but an empty body is allowed and gives `None`: with no `Content-Type`,
/// or with a JSON one (many HTTP clients send `Content-Type: application/json` and no body).
pub struct OptionalJsonObjectBody(pub Option<Map<String, Value>>);

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn read_body(req: Request, state: &AppState) -> Result<(Option<String>, Bytes), AppError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().map(str::to_owned).unwrap_or_default());
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge {
                limit: state.max_body_bytes,
            }
        } else {
            AppError::bad_request("body_unreadable", "the request body could not be read")
        }
    })?;
    Ok((content_type, bytes))
}

fn parse_object(
    content_type: Option<String>,
    bytes: &[u8],
) -> Result<Map<String, Value>, AppError> {
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
    let value = parse_strict(bytes).map_err(|e| {
        AppError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(AppError::bad_request(
            "body_not_object",
            "the body must be a JSON object",
        )),
    }
}

impl FromRequest<AppState> for JsonObjectBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (content_type, bytes) = read_body(req, state).await?;
        parse_object(content_type, &bytes).map(JsonObjectBody)
    }
}

impl FromRequest<AppState> for OptionalJsonObjectBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (content_type, bytes) = read_body(req, state).await?;
        if bytes.is_empty() && content_type.as_deref().is_none_or(is_json) {
            return Ok(OptionalJsonObjectBody(None));
        }
        parse_object(content_type, &bytes).map(|m| OptionalJsonObjectBody(Some(m)))
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

/// Reads the fields of a JSON object one by one, collecting every violation.
pub struct Fields {
    map: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Fields {
    pub fn new(map: Map<String, Value>) -> Self {
        Self {
            map,
            errors: Vec::new(),
        }
    }

    /// Keeps a parsed value, or records why `name` did not parse.
    pub fn check<T>(&mut self, name: &str, parsed: Result<T, Invalid>) -> Option<T> {
        parsed
            .map_err(|e| self.errors.push(FieldError::new(name, e.0)))
            .ok()
    }

    /// A field that must be present and a string.
    pub fn required_string(&mut self, name: &str) -> Option<String> {
        match self.map.remove(name) {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) => {
                self.errors.push(FieldError::new(name, "is required"));
                None
            }
            Some(_) => {
                self.errors.push(FieldError::new(name, "must be a string"));
                None
            }
        }
    }

    /// A field that may be absent or null, and otherwise must be a string.
    pub fn optional_string(&mut self, name: &str) -> Option<String> {
        match self.map.remove(name) {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) => None,
            Some(_) => {
                self.errors.push(FieldError::new(name, "must be a string"));
                None
            }
        }
    }

    /// A field of any JSON type; `None` if absent or null.
    pub fn optional_value(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    /// A field of any JSON type that must be present.
    pub fn required_value(&mut self, name: &str) -> Option<Value> {
        let value = self.optional_value(name);
        if value.is_none() {
            self.errors.push(FieldError::new(name, "is required"));
        }
        value
    }

    /// Records the fields nobody asked for, then fails if anything was wrong.
    pub fn finish(mut self) -> Result<(), AppError> {
        for key in self.map.keys() {
            self.errors
                .push(FieldError::new(key.clone(), "is not a known field"));
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self.errors))
        }
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
