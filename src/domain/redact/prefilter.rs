//! A cheap, conservative first look: can this text hold a match at all? It never says no when
//! the full scan would find a match; it may say maybe when the scan finds none.

use super::{PiiKind, Redact};

/// The fewest digits a match of each kind holds: card 13, phone 10, ssn 9.
fn fewest_digits(set: Redact) -> Option<usize> {
    [(PiiKind::Card, 13), (PiiKind::Phone, 10), (PiiKind::Ssn, 9)]
        .into_iter()
        .filter(|(kind, _)| set.contains(*kind))
        .map(|(_, digits)| digits)
        .min()
}

/// Watches bytes of one string for what a match needs: `@` for an email, enough digits among
/// the characters a card, phone or ssn may hold.
struct Watch {
    digits_needed: usize,
    at_needed: bool,
    digits: usize,
}

impl Watch {
    fn new(set: Redact) -> Self {
        Self {
            digits_needed: fewest_digits(set).unwrap_or(usize::MAX),
            at_needed: set.contains(PiiKind::Email),
            digits: 0,
        }
    }

    /// Takes one byte of a string; true if a match may end here.
    fn byte(&mut self, b: u8) -> bool {
        match b {
            b'0'..=b'9' => {
                self.digits += 1;
                self.digits >= self.digits_needed
            }
            b' ' | b'-' | b'.' | b'(' | b')' | b'+' => false,
            b'@' if self.at_needed => true,
            _ => {
                self.digits = 0;
                false
            }
        }
    }
}

/// Whether JSON text may hold a match in one of its strings. Any `\u` escape says maybe (it
/// may stand for a digit or `@`); the other escapes stand for characters no match holds, and
/// text outside strings (numbers) is skipped.
pub(super) fn json_may_match(text: &[u8], set: Redact) -> bool {
    let mut watch = Watch::new(set);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if !in_string {
            in_string = b == b'"';
            watch.digits = 0;
        } else if escaped {
            if b == b'u' {
                return true;
            }
            escaped = false;
            watch.digits = 0;
        } else if b == b'"' {
            in_string = false;
        } else if b == b'\\' {
            escaped = true;
        } else if watch.byte(b) {
            return true;
        }
    }
    false
}

/// Whether one (unescaped) string may hold a match.
pub(super) fn str_may_match(text: &[u8], set: Redact) -> bool {
    let mut watch = Watch::new(set);
    text.iter().any(|&b| watch.byte(b))
}
