//! Extractors that turn every malformed request into problem JSON instead of Axum's plain-text
//! rejections.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::AppError;
use super::fields::Fields;

/// A request body that may be empty (`None`: with no `Content-Type`, or with a JSON one; many HTTP
/// clients send `Content-Type: application/json` and no body), or else must be a JSON object sent
/// as `application/json` (or `application/*+json`), read into its [`Fields`]: malformed JSON or a
/// body that is not an object is the rejection.
pub struct OptionalJsonObjectBody(pub Option<Fields<'static>>);

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

fn parse_object(content_type: Option<String>, bytes: Bytes) -> Result<Fields<'static>, AppError> {
    require_json(content_type)?;
    Fields::read(&bytes).map(Fields::into_owned)
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
/// the event and batch bodies, read where they are used ([`super::dto::AddEvent::parse`]) with
/// their strings borrowed from these bytes.
pub struct JsonBytes(pub Bytes);

impl FromRequest<AppState> for JsonBytes {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (content_type, bytes) = read_body(req, state).await?;
        require_json(content_type)?;
        Ok(JsonBytes(bytes))
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

/// A JSON Merge Patch body (RFC 7396): `Content-Type: application/merge-patch+json` only (any
/// other, `application/json` included, is 415: a client sending that may mean another kind of
/// patch), read into its [`Fields`] like every JSON body.
pub struct MergePatchBody(pub Fields<'static>);

impl FromRequest<AppState> for MergePatchBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (content_type, bytes) = read_body(req, state).await?;
        let essence = content_type
            .as_deref()
            .and_then(|ct| ct.split(';').next())
            .map(str::trim);
        if !essence.is_some_and(|e| e.eq_ignore_ascii_case("application/merge-patch+json")) {
            return Err(AppError::UnsupportedMediaType {
                detail: format!(
                    "expected Content-Type application/merge-patch+json (RFC 7396), got {}",
                    content_type.map_or("none".to_owned(), |ct| format!("{ct:?}"))
                ),
            });
        }
        Fields::read(&bytes).map(|f| MergePatchBody(f.into_owned()))
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
            .map_err(path_problem)
    }
}

/// The rejection of a path, naming its parameter as the API does (`sessionId`, not the route's
/// `{session_id}`, which stays as it is because it is the metrics' `route` label).
fn path_problem(rejection: PathRejection) -> AppError {
    let detail = match &rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => format!(
                "the path parameter {} is not UTF-8 once percent-decoded",
                api_name(key)
            ),
            _ => rejection.body_text(),
        },
        _ => rejection.body_text(),
    };
    AppError::bad_request("invalid_path", detail)
}

fn api_name(key: &str) -> &str {
    match key {
        "session_id" => "sessionId",
        "event_id" => "eventId",
        other => other,
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
