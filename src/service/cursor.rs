use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::domain::{Order, SessionId, Timestamp};

/// How a cursor spells the order it was made for.
fn order_code(order: Order) -> char {
    match order {
        Order::Asc => 'a',
        Order::Desc => 'd',
    }
}

fn order_from_code(code: &str) -> Option<Order> {
    match code {
        "a" => Some(Order::Asc),
        "d" => Some(Order::Desc),
        _ => None,
    }
}

/// An opaque position in a session's events: the `seq` of the last event a page returned, and the
/// order it was read in. Clients see it only as a URL-safe string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub order: Order,
    pub seq: u64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let order = order_code(self.order);
        URL_SAFE_NO_PAD.encode(format!("v1.{order}.{}", self.seq))
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let mut parts = text.split('.');
        let (Some("v1"), Some(order), Some(seq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let order = order_from_code(order)?;
        // Only canonical digits, so each position has exactly one spelling.
        if seq.is_empty()
            || (seq.len() > 1 && seq.starts_with('0'))
            || !seq.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(Cursor {
            order,
            seq: seq.parse().ok()?,
        })
    }
}

/// An opaque position in a list of sessions: the `(startedAt, sessionId)` of the last session a
/// page returned, and the order it was read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    pub order: Order,
    pub started_at: Timestamp,
    pub session_id: SessionId,
}

impl SessionCursor {
    pub fn encode(&self) -> String {
        let order = order_code(self.order);
        URL_SAFE_NO_PAD.encode(format!(
            "s1.{order}.{}.{}",
            self.started_at.millis(),
            self.session_id
        ))
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        // The id comes last: it may itself contain dots.
        let mut parts = text.splitn(4, '.');
        let (Some("s1"), Some(order), Some(millis), Some(id)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let order = order_from_code(order)?;
        // Only the canonical spelling of the number, so each position has one cursor.
        let parsed: i64 = millis.parse().ok()?;
        if parsed.to_string() != millis {
            return None;
        }
        let millis = parsed;
        Some(SessionCursor {
            order,
            started_at: Timestamp::from_millis(millis).ok()?,
            session_id: SessionId::parse(id).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for cursor in [
            Cursor {
                order: Order::Asc,
                seq: 0,
            },
            Cursor {
                order: Order::Desc,
                seq: u64::MAX,
            },
        ] {
            assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        }
    }

    #[test]
    fn session_cursors_round_trip_and_refuse_foreign_strings() {
        let cursor = SessionCursor {
            order: Order::Desc,
            started_at: Timestamp::from_millis(1_700_000_000_123).unwrap(),
            session_id: SessionId::parse("call.1:x").unwrap(),
        };
        assert_eq!(SessionCursor::decode(&cursor.encode()), Some(cursor));
        let event_cursor = Cursor {
            order: Order::Asc,
            seq: 3,
        };
        assert_eq!(SessionCursor::decode(&event_cursor.encode()), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("s1.a.1.x")), None);
        assert_eq!(SessionCursor::decode("!!"), None);
    }

    #[test]
    fn foreign_strings_are_not_cursors() {
        for raw in ["", "abc", "djEuYS4", "djEueC4x", "djEuYS4wMQ", "!!!"] {
            assert_eq!(Cursor::decode(raw), None, "{raw}");
        }
    }
}
