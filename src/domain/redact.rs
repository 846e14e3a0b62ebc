//! Redaction of personal data in event payloads: every string value of a payload, at any depth
//! (object member values and array items; not keys, not numbers), is scanned, and each match of a
//! chosen kind is replaced, separators and all, by `[REDACTED:<kind>]`.
//!
//! # What matches
//! Digits, letters and separators are ASCII; any other character ends a match and is never glued
//! to one.
//! - `card`: 13–19 digits, single spaces or single dashes allowed between any two digits, passing
//!   the Luhn check. The digits and separators around a card make a *run*; a card is a window of
//!   the run's whole groups (a group being the digits between two separators): from the first group
//!   that can start one, the longest window that is a card, then again after it. A window may not
//!   start with a group glued to a letter on its left, nor end with one glued to a letter on its
//!   right ("4111111111111111x" is not a card); a run of 20 digits or more without separators
//!   holds no card.
//! - `ssn`: exactly `ddd-dd-dddd`, not glued to a digit, nor to a dash and a digit, on either side.
//! - `phone`: not preceded by a letter, digit, `_`, `/` or `+`, a space after a digit, or a dash or
//!   dot after a letter or digit; not followed by a letter, digit or `_`, or by a dash or dot and a
//!   digit. Either `+` and 10–15 digits in groups separated by single spaces, dashes or dots in any
//!   mix, with at most one group in parentheses ("+44 20 7946 0958", "+1 (555) 123-4567"); the
//!   longest such prefix of whole groups is taken ("+44 20 7946 0958 2024" leaves " 2024"). Or a
//!   national form of 10–15 digits in all: contiguous ("5551234567"), or groups separated by one
//!   and the same separator (space or dash: "555-123-4567", "06 12 34 56 78"; dot only in the
//!   North American shape "555.123.4567"), with at most one group in parentheses, around which
//!   the separator is free ("(555) 123-4567", "1 (555) 123-4567").
//! - `email`: a local part of `A-Z a-z 0-9 . _ % + -` neither starting nor ending with a dot (a
//!   leading dot is left as punctuation), `@`, then labels of `A-Z a-z 0-9 -` separated by dots:
//!   at least two, the last of two letters or more. The longest such domain is taken, so trailing
//!   punctuation ("write to a@b.com.") stays.
//!
//! Kinds are matched in the order card, ssn, phone, email, each in what the kinds before it left,
//! as if their replacements were already written; a replaced span is not scanned again. What a
//! later kind takes can free an earlier kind's match ("0000000(555) 123-4567jo@x.co": once the
//! email is gone, "0000000(555)" is a phone), so a string that changed is scanned again until
//! nothing matches (four passes at most).
//!
//! # Accepted mistakes
//! False positives:
//! - about one in ten digit sequences of 13–19 digits passes Luhn, so order numbers, UUIDs whose
//!   groups are all digits, or long space-separated lists of small numbers may become `card`;
//! - any contiguous 10–15 digit string is a `phone`: a Unix time as a string (10 or 13 digits),
//!   a 10–15 digit order number, a Luhn-failing 13–15 digit card;
//! - numbers with one separator throughout and 10–15 digits in all ("100 200 300 4000",
//!   "1234-5678-9012") are phones;
//! - any `ddd-dd-dddd`, even glued to letters or one no SSN could be (000-, 666-, 9xx-), is an ssn.
//!
//! False negatives:
//! - digits other than ASCII (full-width, Arabic-Indic), and numbers spoken as words;
//! - a card whose digits are separated by anything but single spaces or dashes ("4111  1111…",
//!   "4111.1111…"), glued to a letter, or in a run of 20 digits or more without separators; in a
//!   grouped run, a window starting before the card that passes Luhn by chance takes the card's
//!   first groups and leaves the rest;
//! - national phones with mixed separators ("555 123-4567"), dotted ones not shaped 3-3-4, over 15
//!   digits, or glued to letters ("tel555-123-4567");
//! - internationalised email addresses (non-ASCII domains are not matched; a non-ASCII local part
//!   is matched only after its last non-ASCII character), and an address whose local part a
//!   card, ssn or phone was taken from ("5551234567@sms.example.com" keeps "@sms.example.com");
//! - keys of objects, and numbers (a card sent as a JSON number stays).
//!
//! # Cost
//! A payload whose JSON text cannot hold a match (no `@` in a string for email; no run of 9, 10
//! or 13 digits among `0-9 ( ) + - .` and spaces in a string for ssn, phone, card; no `\u`
//! escape) is returned as is, without building its tree. Otherwise the tree is walked, and only
//! a payload where something matched is rebuilt and checked again.

mod card;
mod digits;
mod email;
mod phone;
mod prefilter;
mod scan;
mod ssn;
mod walk;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use serde_json::Value;

use super::{Invalid, JsonObject};

/// A kind of personal data that can be redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PiiKind {
    Card,
    Email,
    Phone,
    Ssn,
}

impl PiiKind {
    /// Every kind, in the order of [`Redacted::counts`] and of [`Redact::bits`].
    pub const ALL: [PiiKind; 4] = [PiiKind::Card, PiiKind::Email, PiiKind::Phone, PiiKind::Ssn];

    /// The kind's name: `card`, `email`, `phone` or `ssn`.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::Card => "card",
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::Ssn => "ssn",
        }
    }

    /// The kind named exactly `raw` (lowercase), or `Invalid` listing the names.
    pub fn parse(raw: &str) -> Result<PiiKind, Invalid> {
        PiiKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == raw)
            .ok_or_else(|| Invalid::new(format!("unknown kind {raw:?}: must be one of {NAMES}")))
    }

    /// The kind's position in [`PiiKind::ALL`].
    fn index(self) -> usize {
        self as usize
    }

    /// What a match of this kind is replaced by.
    fn replacement(self) -> &'static str {
        match self {
            PiiKind::Card => "[REDACTED:card]",
            PiiKind::Email => "[REDACTED:email]",
            PiiKind::Phone => "[REDACTED:phone]",
            PiiKind::Ssn => "[REDACTED:ssn]",
        }
    }
}

const NAMES: &str = "card, email, phone, ssn";

/// A set of kinds to redact. The default is the empty set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Redact(u8);

impl Redact {
    /// The empty set: nothing is redacted.
    pub const NONE: Redact = Redact(0);

    /// Every kind.
    pub fn all() -> Redact {
        Redact::from_kinds(PiiKind::ALL)
    }

    pub fn from_kinds(kinds: impl IntoIterator<Item = PiiKind>) -> Redact {
        Redact(kinds.into_iter().fold(0, |bits, kind| bits | bit(kind)))
    }

    /// A comma-separated list as in the env var `REDACT`: `"card,email"`; spaces around names
    /// are ignored and a repeated name is fine. `""` (or only spaces) and `"none"` mean the empty
    /// set. An unknown or empty name, or `none` among other names, is `Invalid` naming it and the
    /// allowed names.
    pub fn parse_list(raw: &str) -> Result<Redact, Invalid> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed == "none" {
            return Ok(Redact::NONE);
        }
        trimmed
            .split(',')
            .map(str::trim)
            .try_fold(Redact::NONE, |set, name| {
                PiiKind::parse(name)
                    .map(|kind| Redact(set.0 | bit(kind)))
                    .map_err(|_| {
                        Invalid::new(format!(
                            "unknown kind {name:?} in {raw:?}: must be a comma-separated list of \
                         {NAMES}, or none"
                        ))
                    })
            })
    }

    pub fn contains(self, kind: PiiKind) -> bool {
        self.0 & bit(kind) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set's kinds, in [`PiiKind::ALL`] order.
    pub fn kinds(self) -> impl Iterator<Item = PiiKind> {
        PiiKind::ALL
            .into_iter()
            .filter(move |kind| self.contains(*kind))
    }

    /// The set's names in [`PiiKind::ALL`] order, e.g. `["card", "ssn"]`.
    pub fn names(self) -> Vec<&'static str> {
        self.kinds().map(PiiKind::as_str).collect()
    }

    /// The storage form: card = 1, email = 2, phone = 4, ssn = 8, or'ed.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set stored as [`Redact::bits`]; `None` for bits outside `0..=15`.
    pub fn from_bits(bits: u8) -> Option<Redact> {
        (bits <= Redact::all().0).then_some(Redact(bits))
    }
}

fn bit(kind: PiiKind) -> u8 {
    1 << kind.index()
}

/// The outcome of redacting one payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Redacted {
    /// The payload with every match replaced; the same [`JsonObject`] (a clone: one reference
    /// count, no re-serialization) when nothing matched.
    pub payload: JsonObject,
    /// How many matches of each kind were replaced, indexed like [`PiiKind::ALL`].
    pub counts: [u32; 4],
}

impl Redacted {
    /// How many matches were replaced, of every kind.
    pub fn total(&self) -> u32 {
        self.counts.iter().sum()
    }

    /// How many matches of `kind` were replaced.
    pub fn count(&self, kind: PiiKind) -> u32 {
        self.counts[kind.index()]
    }
}

/// Replaces every match of the set's kinds in every string value of `payload`, at any depth
/// (object member values and array items; not keys, not numbers); the rules are the module's.
/// `Invalid` only if the redacted payload breaks [`JsonObject`]'s rules: a replacement can be
/// longer than what it replaces, so a payload near the size limit can grow past it.
pub fn redact_payload(payload: &JsonObject, set: Redact) -> Result<Redacted, Invalid> {
    let unchanged = || Redacted {
        payload: payload.clone(),
        counts: [0; 4],
    };
    if set.is_empty() || !prefilter::json_may_match(payload.json().as_bytes(), set) {
        return Ok(unchanged());
    }
    let mut counts = [0; 4];
    match walk::object(payload.as_map(), set, &mut counts) {
        None => Ok(unchanged()),
        Some(map) => Ok(Redacted {
            payload: JsonObject::parse(Value::Object(map))?,
            counts,
        }),
    }
}
