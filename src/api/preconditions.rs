//! Conditional requests: `Expected-Seq` on appends (append only if the session's last seq is
//! still N, as KurrentDB's expected revision and NATS's expected last sequence).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::AppError;

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
    use super::ExpectedSeq;

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
