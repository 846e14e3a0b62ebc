use std::fmt;

use super::Invalid;

const MAX_ID_LEN: usize = 128;
const MAX_LANGUAGE_LEN: usize = 35;

fn parse_id(raw: &str) -> Result<(), Invalid> {
    if raw.is_empty() || raw.len() > MAX_ID_LEN {
        return Err(Invalid::new(format!(
            "must be 1 to {MAX_ID_LEN} characters"
        )));
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(Invalid::new("may contain only A-Z a-z 0-9 . _ : -"));
    }
    // URL clients resolve these as path steps, so such an id could never be addressed.
    if raw == "." || raw == ".." {
        return Err(Invalid::new("may not be \".\" or \"..\""));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: impl Into<String>) -> Result<Self, Invalid> {
                let raw = raw.into();
                parse_id(&raw)?;
                Ok(Self(raw))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A client-chosen session (call) identifier: 1–128 characters of `A–Z a–z 0–9 . _ : -`.
    SessionId
);
id_type!(
    /// A client-chosen event identifier, unique within its session; it is the event's idempotency key.
    EventId
);

/// A BCP 47-style language tag such as `en`, `en-US` or `pt-BR`: subtags of 1–8 letters or digits
/// separated by `-`, starting with a 2–8 letter primary subtag, at most 35 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language(String);

impl Language {
    pub fn parse(raw: impl Into<String>) -> Result<Self, Invalid> {
        let raw = raw.into();
        let invalid = || Invalid::new("must be a BCP 47 language tag such as en, en-US or pt-BR");
        if raw.is_empty() || raw.len() > MAX_LANGUAGE_LEN {
            return Err(Invalid::new(format!(
                "must be 1 to {MAX_LANGUAGE_LEN} characters"
            )));
        }
        let mut subtags = raw.split('-');
        let primary = subtags.next().unwrap_or_default();
        if !(2..=8).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(invalid());
        }
        for sub in subtags {
            if !(1..=8).contains(&sub.len()) || !sub.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(invalid());
            }
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_charset_and_lengths() {
        assert!(SessionId::parse("call-1.2_3:x").is_ok());
        assert!(SessionId::parse("...").is_ok());
        assert!(SessionId::parse("a".repeat(128)).is_ok());
        assert!(SessionId::parse("a".repeat(129)).is_err());
        assert!(SessionId::parse("").is_err());
        for bad in ["a b", "a/b", "é", "a\0b", "a%2F", ".", ".."] {
            assert!(EventId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn languages_follow_bcp47_shape() {
        for good in ["en", "en-US", "pt-BR", "zh-Hant-TW", "es-419"] {
            assert!(Language::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "e",
            "en_US",
            "en-",
            "-en",
            "1a",
            "en-toolongsubtag",
            &"a".repeat(36),
        ] {
            assert!(Language::parse(bad).is_err(), "{bad:?}");
        }
    }
}
