use super::{EventId, Invalid, JsonObject, Redact, SessionId, Timestamp};

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
/// `received_at` is used when it sent none. With `expected_seq` (`Expected-Seq`), a new event is
/// stored only if the session's last seq is that one (`0`: no events yet); a replay is answered
/// as stored whatever it says.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub session_id: SessionId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub payload: JsonObject,
    pub client_timestamp: Option<Timestamp>,
    pub received_at: Timestamp,
    pub expected_seq: Option<u64>,
    /// The session's `redact` as the service took it to be when it redacted `payload` (which is
    /// already redacted): the store refuses the event if the session's is another
    /// (`RedactionChanged`), so nothing is stored redacted under the wrong rules.
    pub redact: Option<Redact>,
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

    /// The event as stored with `seq`: the one place a stored event is made from a request.
    pub fn stored(&self, seq: u64) -> Event {
        Event {
            session_id: self.session_id.clone(),
            event_id: self.event_id.clone(),
            seq,
            event_type: self.event_type,
            payload: self.payload.clone(),
            timestamp: self.timestamp(),
        }
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

/// The most events one batch append takes.
pub const MAX_BATCH_EVENTS: usize = 100;

/// Events to append to one session at once, in request order: 1 to [`MAX_BATCH_EVENTS`] of
/// them, all for the same session, received at the same instant with the same `expected_seq`
/// and `redact` (the batch's), with distinct `eventId`s.
/// (Identical copies of one event in a request are the service's to fold into one.)
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvents {
    events: Vec<NewEvent>,
}

impl NewEvents {
    /// Checks the invariants above.
    pub fn new(events: Vec<NewEvent>) -> Result<Self, Invalid> {
        let Some(first) = events.first() else {
            return Err(Invalid::new("must hold at least one event"));
        };
        if events.len() > MAX_BATCH_EVENTS {
            return Err(Invalid::new(format!(
                "must hold at most {MAX_BATCH_EVENTS} events"
            )));
        }
        if events.iter().any(|e| {
            e.session_id != first.session_id
                || e.received_at != first.received_at
                || e.expected_seq != first.expected_seq
                || e.redact != first.redact
        }) {
            return Err(Invalid::new(
                "must be for one session, received at one instant, with one expected seq and \
                 one redaction",
            ));
        }
        let mut ids: Vec<&EventId> = events.iter().map(|e| &e.event_id).collect();
        ids.sort();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(Invalid::new("must not name one eventId twice"));
        }
        Ok(Self { events })
    }

    /// Folds identical copies of one event (same `eventId`, type, payload and timestamp or none)
    /// into its first, for [`Self::new`]; also returns, for each of `events`, the position of its
    /// event in the batch. Copies with other content are refused.
    pub fn folding_copies(events: Vec<NewEvent>) -> Result<(Self, Vec<usize>), Invalid> {
        let mut unique: Vec<NewEvent> = Vec::with_capacity(events.len());
        let mut positions = Vec::with_capacity(events.len());
        for event in events {
            match unique.iter().position(|u| u.event_id == event.event_id) {
                Some(at) if unique[at] == event => positions.push(at),
                Some(_) => {
                    return Err(Invalid::new(format!(
                        "eventId {:?} is sent twice with different content",
                        event.event_id.as_str()
                    )));
                }
                None => {
                    positions.push(unique.len());
                    unique.push(event);
                }
            }
        }
        Ok((Self::new(unique)?, positions))
    }

    pub fn session_id(&self) -> &SessionId {
        &self.events[0].session_id
    }

    /// When the batch arrived: the instant its timers are checked at.
    pub fn received_at(&self) -> Timestamp {
        self.events[0].received_at
    }

    /// The seq the session's last event must have for the new events to be stored, if any.
    pub fn expected_seq(&self) -> Option<u64> {
        self.events[0].expected_seq
    }

    /// The session's `redact` the payloads were redacted under (see [`NewEvent::redact`]).
    pub fn redact(&self) -> Option<Redact> {
        self.events[0].redact
    }

    /// The events, in request order (never empty).
    pub fn events(&self) -> &[NewEvent] {
        &self.events
    }
}
