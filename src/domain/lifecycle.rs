//! How a call ends by itself: its timers, the reasons a session ended, and the deadline that
//! follows from them.

use std::fmt;

use super::{Invalid, Timestamp};

/// The longest timer: one year, in seconds.
pub const MAX_TIMER_SECONDS: u32 = 31_536_000;

/// A session's timers, in seconds; `0` turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timers {
    /// The session ends this long after its last event (or its start, before the first).
    pub inactivity_seconds: u32,
    /// The session ends this long after its start, whatever happens.
    pub max_duration_seconds: u32,
}

impl Timers {
    /// A timer value: `0` (off) or 1 to [`MAX_TIMER_SECONDS`].
    pub fn check(seconds: i64) -> Result<u32, Invalid> {
        u32::try_from(seconds)
            .ok()
            .filter(|s| *s <= MAX_TIMER_SECONDS)
            .ok_or_else(|| {
                Invalid::new(format!(
                    "must be 0 (off) or a whole number of seconds from 1 to {MAX_TIMER_SECONDS}"
                ))
            })
    }
}

/// Why a session ended: a client's reason (`caller_hangup`, `transferred`, …) or a timer's.
/// 1–64 characters of `a-z 0-9 _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndReason(String);

pub const MAX_REASON_LEN: usize = 64;

impl EndReason {
    pub fn parse(raw: impl Into<String>) -> Result<Self, Invalid> {
        let raw = raw.into();
        if raw.is_empty() || raw.len() > MAX_REASON_LEN {
            return Err(Invalid::new(format!(
                "must be 1 to {MAX_REASON_LEN} characters"
            )));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(Invalid::new("may contain only a-z 0-9 _"));
        }
        Ok(Self(raw))
    }

    /// The session had no event for its inactivity timeout.
    pub fn inactivity_timeout() -> Self {
        Self("inactivity_timeout".into())
    }

    /// The session ran for its maximum duration.
    pub fn max_duration_exceeded() -> Self {
        Self("max_duration_exceeded".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// When an open session ends by itself, and why, if nothing more happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    pub at: Timestamp,
    pub reason: EndReason,
}

/// The deadline of an open session: the earlier of `(last event, or start) + inactivity` and
/// `start + max duration`, where "start" is `timers_since` (the session's start, or for sessions
/// older than timers, the upgrade that gave them timers). On a tie, the maximum duration is the
/// reason. `None` when both timers are off.
pub fn deadline(
    timers: Timers,
    timers_since: Timestamp,
    last_event_at: Option<Timestamp>,
) -> Option<Deadline> {
    let inactivity = (timers.inactivity_seconds > 0).then(|| {
        let base = last_event_at.map_or(timers_since, |t| t.max(timers_since));
        base.plus_seconds(timers.inactivity_seconds)
    });
    let max_duration = (timers.max_duration_seconds > 0)
        .then(|| timers_since.plus_seconds(timers.max_duration_seconds));
    match (inactivity, max_duration) {
        (Some(i), Some(m)) if i < m => Some(Deadline {
            at: i,
            reason: EndReason::inactivity_timeout(),
        }),
        (_, Some(m)) => Some(Deadline {
            at: m,
            reason: EndReason::max_duration_exceeded(),
        }),
        (Some(i), None) => Some(Deadline {
            at: i,
            reason: EndReason::inactivity_timeout(),
        }),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_millis(seconds * 1000).unwrap()
    }

    #[test]
    fn the_earlier_timer_decides_the_deadline_and_its_reason() {
        let both = Timers {
            inactivity_seconds: 60,
            max_duration_seconds: 600,
        };
        let d = deadline(both, at(0), Some(at(100))).unwrap();
        assert_eq!((d.at, d.reason.as_str()), (at(160), "inactivity_timeout"));
        let d = deadline(both, at(0), Some(at(580))).unwrap();
        assert_eq!(
            (d.at, d.reason.as_str()),
            (at(600), "max_duration_exceeded")
        );
        let d = deadline(both, at(0), None).unwrap();
        assert_eq!(d.at, at(60));
    }

    #[test]
    fn no_timer_no_deadline_and_a_tie_is_the_maximum_duration() {
        assert_eq!(deadline(Timers::default(), at(0), Some(at(5))), None);
        let tie = Timers {
            inactivity_seconds: 10,
            max_duration_seconds: 10,
        };
        let d = deadline(tie, at(0), None).unwrap();
        assert_eq!(d.reason, EndReason::max_duration_exceeded());
    }

    #[test]
    fn timers_count_from_the_upgrade_for_older_sessions() {
        let t = Timers {
            inactivity_seconds: 60,
            max_duration_seconds: 0,
        };
        // Its last event was long before the upgrade at 1,000 s.
        assert_eq!(deadline(t, at(1000), Some(at(10))).unwrap().at, at(1060));
    }

    #[test]
    fn reasons_and_timer_values_are_checked() {
        assert!(EndReason::parse("caller_hangup").is_ok());
        for bad in ["", "Caller", "a-b", &"x".repeat(65)] {
            assert!(EndReason::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Timers::check(0), Ok(0));
        assert_eq!(Timers::check(31_536_000), Ok(31_536_000));
        assert!(Timers::check(31_536_001).is_err());
        assert!(Timers::check(-1).is_err());
    }
}
