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
