use super::{EventId, Invalid, JsonObject, SessionId, Timestamp};

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    UserSpeech,
    BotSpeech,
    System,
}

impl EventType {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "user_speech" => Ok(EventType::UserSpeech),
            "bot_speech" => Ok(EventType::BotSpeech),
            "system" => Ok(EventType::System),
            _ => Err(Invalid::new(
                "must be one of \"user_speech\", \"bot_speech\", \"system\"",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserSpeech => "user_speech",
            EventType::BotSpeech => "bot_speech",
            EventType::System => "system",
        }
    }
}

/// A validated request to add an event. `client_timestamp` is what the client sent, if anything;
/// `received_at` is used when it sent none.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub session_id: SessionId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub payload: JsonObject,
    pub client_timestamp: Option<Timestamp>,
    pub received_at: Timestamp,
}

impl NewEvent {
    pub fn timestamp(&self) -> Timestamp {
        self.client_timestamp.unwrap_or(self.received_at)
    }

    /// Whether `stored` is what this request would have stored: same type, payload, and timestamp
    /// when the request names one. A retry that matches is answered with the stored event.
    pub fn matches(&self, stored: &Event) -> bool {
        self.event_type == stored.event_type
            && self.payload == stored.payload
            && self.client_timestamp.is_none_or(|t| t == stored.timestamp)
    }
}

/// A stored event; `seq` orders it within its session.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub session_id: SessionId,
    pub event_id: EventId,
    pub seq: u64,
    pub event_type: EventType,
    pub payload: JsonObject,
    pub timestamp: Timestamp,
}
