//! Conditional requests: `Expected-Seq` on appends (append only if the session's last seq is
//! still N, as KurrentDB's expected revision and NATS's expected last sequence), and a session's
//! `ETag` with `If-Match` on `PATCH` (RFC 9110 strong comparison).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::Response;

use super::error::AppError;
use crate::domain::Session;

/// Adds the session's `ETag` (its [`crate::domain::SessionVersion`], quoted) to an answer that
/// shows it: any change to the session (its metadata, an event, its end) gives another one.
pub fn with_etag(mut response: Response, session: &Session) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", session.version())) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// `If-Match`: `None` without the header; else the versions it names (`*` for any), unquoted.
/// A weak tag (`W/"…"`) never matches: `If-Match` compares strongly.
pub struct IfMatch(pub Option<Vec<String>>);

impl IfMatch {
    fn parse(raw: &str) -> Result<Vec<String>, AppError> {
        let invalid = || {
            AppError::invalid(
                "If-Match",
                "must be * or a comma-separated list of entity tags (\"…\", as ETag gives)",
            )
        };
        let mut tags = Vec::new();
        for item in raw.split(',').map(str::trim) {
            let (weak, quoted) = match item.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, item),
            };
            if item == "*" {
                tags.push("*".to_owned());
            } else if let Some(tag) = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
                if tag.contains('"') {
                    return Err(invalid());
                }
                // A weak tag is kept marked, so it equals no version.
                tags.push(if weak {
                    format!("W/{tag}")
                } else {
                    tag.to_owned()
                });
            } else {
                return Err(invalid());
            }
        }
        Ok(tags)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut tags = Vec::new();
        let mut any = false;
        for value in parts.headers.get_all(header::IF_MATCH) {
            any = true;
            let text = value.to_str().map_err(|_| {
                AppError::invalid("If-Match", "must be visible ASCII (entity tags)")
            })?;
            tags.extend(Self::parse(text)?);
        }
        Ok(Self(any.then_some(tags)))
    }
}

/// The request header naming the seq a writer expects the session's last event to have.
pub const EXPECTED_SEQ: &str = "expected-seq";

/// `Expected-Seq: N` (a decimal `u64`; `0`: no events yet), if the request sent it.
pub struct ExpectedSeq(pub Option<u64>);

impl ExpectedSeq {
    fn parse(raw: &[u8]) -> Result<u64, AppError> {
        let invalid = || {
            AppError::invalid(
                "Expected-Seq",
                "must be the session's last seq as a decimal number (0: no events yet)",
            )
        };
        let text = std::str::from_utf8(raw).map_err(|_| invalid())?;
        if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        text.parse().map_err(|_| invalid())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ExpectedSeq {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(EXPECTED_SEQ).iter();
        let Some(value) = values.next() else {
            return Ok(Self(None));
        };
        if values.next().is_some() {
            return Err(AppError::invalid("Expected-Seq", "must be sent once"));
        }
        Self::parse(value.as_bytes()).map(|seq| Self(Some(seq)))
    }
}

#[cfg(test)]
mod tests {
    use super::{ExpectedSeq, IfMatch};

    #[test]
    fn if_match_reads_entity_tags_and_star() {
        let tags = |raw: &str| IfMatch::parse(raw).ok();
        assert_eq!(tags("\"1.2.active\""), Some(vec!["1.2.active".to_owned()]));
        assert_eq!(tags("*"), Some(vec!["*".to_owned()]));
        assert_eq!(
            tags("\"a\", W/\"b\""),
            Some(vec!["a".to_owned(), "W/b".to_owned()])
        );
        for bad in ["1.2.active", "\"a", "a\"", "W/b", "\"a\"b\"", ""] {
            assert_eq!(tags(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn expected_seq_is_a_plain_decimal() {
        for (raw, want) in [("0", Some(0)), ("17", Some(17)), ("007", Some(7))] {
            assert_eq!(ExpectedSeq::parse(raw.as_bytes()).ok(), want, "{raw}");
        }
        for raw in [
            "",
            "-1",
            "+1",
            " 1",
            "1.0",
            "0x10",
            "18446744073709551616",
            "abc",
        ] {
            assert!(ExpectedSeq::parse(raw.as_bytes()).is_err(), "{raw:?}");
        }
    }
}
