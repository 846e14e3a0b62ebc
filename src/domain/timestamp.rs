use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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

impl Timestamp {
    /// The RFC 3339 text, `YYYY-MM-DDTHH:MM:SS.mmmZ`, written without allocating: every event
    /// and session in every answer carries one or two, so this is on the hot path.
    pub fn rfc3339(self) -> [u8; 24] {
        let days = self.0.div_euclid(MILLIS_PER_DAY);
        let in_day = self.0.rem_euclid(MILLIS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let fields = [
            (year, 4, 0),
            (month, 2, 5),
            (day, 2, 8),
            (in_day / 3_600_000, 2, 11),
            (in_day / 60_000 % 60, 2, 14),
            (in_day / 1000 % 60, 2, 17),
            (in_day % 1000, 3, 20),
        ];
        let mut out = *b"0000-00-00T00:00:00.000Z";
        for (value, width, at) in fields {
            let mut value = value;
            for i in (at..at + width).rev() {
                out[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        out
    }
}

const MILLIS_PER_DAY: i64 = 86_400_000;

/// The proleptic Gregorian (year, month, day) of a day counted from 1970-01-01, after Howard
/// Hinnant's `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.rfc3339();
        // Only ASCII digits and separators are written.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self.rfc3339();
        s.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
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

    /// What `time`'s formatter writes, the reference for the hand-written one.
    fn reference(millis: i64) -> String {
        let format = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .unwrap()
            .format(&format)
            .unwrap()
    }

    #[test]
    fn timestamps_are_written_as_the_time_crate_writes_them() {
        // Both ends, every day boundary around the epoch and leap days, and a spread of instants
        // across the whole range (a fixed-seed LCG: no two runs differ).
        let mut cases = vec![
            MIN_MILLIS,
            MIN_MILLIS + 1,
            MAX_MILLIS,
            MAX_MILLIS - 1,
            0,
            -1,
        ];
        for day in -800..800 {
            cases.extend([day * MILLIS_PER_DAY - 1, day * MILLIS_PER_DAY]);
        }
        for leap in [
            "2000-02-29T23:59:59.999Z",
            "1900-03-01T00:00:00.000Z",
            "0000-02-29T12:00:00.000Z",
        ] {
            cases.push(Timestamp::parse(leap).unwrap().millis());
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let span = (MAX_MILLIS - MIN_MILLIS) as u64;
        for _ in 0..200_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            cases.push(MIN_MILLIS + ((x >> 11) % span) as i64);
        }
        for millis in cases {
            let t = Timestamp::from_millis(millis).unwrap();
            assert_eq!(t.to_string(), reference(millis), "{millis}");
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", reference(millis))
            );
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
