//! Typed reads of one environment variable each, in the spirit of crates.io's
//! `crates_io_env_vars`: the value set or the table's default, parsed, checked, and on failure a
//! [`ConfigError`] naming the variable and its value.

use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use super::ConfigError;
use super::vars::variable;

/// Reads variables through a lookup, falling back to the table's defaults. A name that is not in
/// [`super::VARIABLES`] is a bug; it reads as unset and a unit test catches it.
pub(super) struct Env<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(lookup: F) -> Self {
        Self { lookup }
    }

    /// The value set, or the default.
    pub fn var(&self, name: &'static str) -> String {
        (self.lookup)(name).unwrap_or_else(|| {
            variable(name)
                .map(|v| v.default)
                .unwrap_or_default()
                .to_owned()
        })
    }

    /// The value made into a `T` by `parse`, whose error is the reason given for refusing it.
    pub fn with<T>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let value = self.var(name);
        parse(&value).map_err(|reason| ConfigError {
            variable: name,
            value,
            reason,
        })
    }

    /// The value parsed as a `T` and within `range`; `expected` says what was wanted.
    pub fn ranged<T: FromStr + PartialOrd>(
        &self,
        name: &'static str,
        range: RangeInclusive<T>,
        expected: &str,
    ) -> Result<T, ConfigError> {
        self.with(name, |raw| {
            raw.parse::<T>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| expected.to_owned())
        })
    }

    /// `None` when unset (empty), else the value parsed as a `T` within `range`; `expected` says
    /// what was wanted and `unset` what leaving it out means.
    pub fn optional_ranged<T: FromStr + PartialOrd>(
        &self,
        name: &'static str,
        range: RangeInclusive<T>,
        expected: &str,
        unset: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.with(name, |raw| match raw {
            "" => Ok(None),
            raw => raw
                .parse::<T>()
                .ok()
                .filter(|n| range.contains(n))
                .map(Some)
                .ok_or_else(|| format!("{expected} (unset: {unset})")),
        })
    }

    /// A time in whole milliseconds, at least 1.
    pub fn millis(&self, name: &'static str) -> Result<Duration, ConfigError> {
        let expected = "expected a whole number of milliseconds, at least 1";
        self.ranged(name, 1..=u64::MAX, expected)
            .map(Duration::from_millis)
    }

    /// One of the `choices`, by name; `expected` lists them.
    pub fn one_of<T: Copy>(
        &self,
        name: &'static str,
        choices: &[(&str, T)],
        expected: &str,
    ) -> Result<T, ConfigError> {
        self.with(name, |raw| {
            choices
                .iter()
                .find(|(choice, _)| *choice == raw)
                .map(|(_, value)| *value)
                .ok_or_else(|| expected.to_owned())
        })
    }
}

/// The comma-separated entries of `raw`, trimmed, without empty ones.
pub(super) fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Env;

    #[test]
    fn an_optional_number_is_none_unset_and_says_what_unset_means_when_refused() {
        let read = |value: &'static str| {
            Env::new(move |_: &str| Some(value.to_owned())).optional_ranged(
                "MAX_STREAMS",
                1..=10u32,
                "expected 1 to 10",
                "as many as fit",
            )
        };
        assert_eq!(read("").ok(), Some(None));
        assert_eq!(read("10").ok(), Some(Some(10)));
        for bad in ["0", "11", "ten", " 5"] {
            let err = read(bad).unwrap_err();
            assert_eq!(
                err.reason, "expected 1 to 10 (unset: as many as fit)",
                "{bad}"
            );
        }
    }
}
