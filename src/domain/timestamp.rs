use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset, macros::format_description};

use super::Invalid;

/// An instant with millisecond precision, stored as milliseconds since the Unix epoch and always
/// written as RFC 3339 UTC with three fractional digits, e.g. `2025-12-21T15:30:15.123Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

// Years 0000–9999 keep RFC 3339 valid and every instant representable on both backends.
const MIN_MILLIS: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
const MAX_MILLIS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

impl Timestamp {
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Self((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn from_millis(millis: i64) -> Result<Self, Invalid> {
        if (MIN_MILLIS..=MAX_MILLIS).contains(&millis) {
            Ok(Self(millis))
        } else {
            Err(Invalid::new("is outside the years 0000 to 9999"))
        }
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// This instant plus `seconds`, saturating at the latest representable instant.
    pub fn plus_seconds(self, seconds: u32) -> Self {
        Self(
            self.0
                .saturating_add(i64::from(seconds) * 1000)
                .min(MAX_MILLIS),
        )
    }

    /// This instant minus `seconds`, saturating at the earliest representable instant.
    pub fn minus_seconds(self, seconds: u64) -> Self {
        let millis = i64::try_from(seconds).unwrap_or(i64::MAX / 1000) * 1000;
        Self(self.0.saturating_sub(millis).max(MIN_MILLIS))
    }

    /// Parses RFC 3339 with any offset; the instant is kept in UTC, truncated to milliseconds.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let invalid =
            || Invalid::new("must be an RFC 3339 date-time such as 2025-12-21T15:30:15.123Z");
        // The parser accepts any byte between date and time; RFC 3339 allows `T`, `t` and (by
        // its note) a space.
        if !matches!(raw.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
            return Err(invalid());
        }
        let parsed = OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| invalid())?;
        let millis = parsed.unix_timestamp_nanos().div_euclid(1_000_000);
        Self::from_millis(i64::try_from(millis).map_err(|_| Invalid::new("is out of range"))?)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let instant = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .map_err(|_| fmt::Error)?
            .to_offset(UtcOffset::UTC);
        let text = instant.format(&format).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_in_utc_with_milliseconds() {
        let t = Timestamp::parse("2025-12-21T17:30:15.123456+02:00").unwrap();
        assert_eq!(t.to_string(), "2025-12-21T15:30:15.123Z");
        assert_eq!(
            Timestamp::parse("2025-12-21T15:30:15Z")
                .unwrap()
                .to_string(),
            "2025-12-21T15:30:15.000Z"
        );
    }

    #[test]
    fn timestamps_round_trip_through_their_text() {
        for raw in [
            "1970-01-01T00:00:00.000Z",
            "1969-12-31T23:59:59.999Z",
            "9999-12-31T23:59:59.999Z",
        ] {
            assert_eq!(Timestamp::parse(raw).unwrap().to_string(), raw);
        }
    }

    #[test]
    fn bad_timestamps_are_refused() {
        for raw in [
            "",
            "yesterday",
            "2025-13-01T00:00:00Z",
            "2025-12-21 15:30:15",
        ] {
            assert!(Timestamp::parse(raw).is_err(), "{raw:?}");
        }
    }
}
