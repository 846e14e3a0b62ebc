//! One string's scan: each kind's matches in what the kinds before it left, then the rewrite.

use std::ops::Range;

use super::{PiiKind, Redact, card, email, phone, prefilter, ssn};

/// The order kinds are matched in; each is matched only where the ones before it did not match.
const PRECEDENCE: [PiiKind; 4] = [PiiKind::Card, PiiKind::Ssn, PiiKind::Phone, PiiKind::Email];

type Find = fn(&[u8], &mut Vec<Range<usize>>);

fn finder(kind: PiiKind) -> Find {
    match kind {
        PiiKind::Card => card::find,
        PiiKind::Email => email::find,
        PiiKind::Phone => phone::find,
        PiiKind::Ssn => ssn::find,
    }
}

/// How many times a string is scanned at most; see [`redact_str`].
const MAX_PASSES: usize = 4;

/// `text` with every match of the set's kinds replaced, each counted in `counts` (indexed like
/// [`PiiKind::ALL`]); `None` if nothing matched. What a later kind took can free a match of an
/// earlier one (an email swallowing what made a phone too long), so a changed string is scanned
/// again until nothing matches, at most [`MAX_PASSES`] times in all.
pub(super) fn redact_str(text: &str, set: Redact, counts: &mut [u32; 4]) -> Option<String> {
    if !prefilter::str_may_match(text.as_bytes(), set) {
        return None;
    }
    let mut redacted: Option<String> = None;
    for _ in 0..MAX_PASSES {
        let current = redacted.as_deref().unwrap_or(text);
        let spans = spans(current.as_bytes(), set);
        if spans.is_empty() {
            break;
        }
        redacted = Some(rewrite(current, spans, counts));
    }
    redacted
}

/// `text` with each span replaced by its kind's replacement, counted.
fn rewrite(text: &str, spans: Vec<(Range<usize>, PiiKind)>, counts: &mut [u32; 4]) -> String {
    let grown: usize = spans.iter().map(|(_, kind)| kind.replacement().len()).sum();
    let mut out = String::with_capacity(text.len() + grown);
    let mut at = 0;
    for (span, kind) in spans {
        // Every match starts and ends with an ASCII character, so these are character bounds.
        out.push_str(&text[at..span.start]);
        out.push_str(kind.replacement());
        counts[kind.index()] += 1;
        at = span.end;
    }
    out.push_str(&text[at..]);
    out
}

/// The spans of `text` to replace, in order and apart, each with its kind. A kind is matched in
/// each gap the kinds before it left, as if it were the whole text: the edges of a gap are the
/// brackets of a replacement, which glue to nothing.
pub(super) fn spans(text: &[u8], set: Redact) -> Vec<(Range<usize>, PiiKind)> {
    let mut spans: Vec<(Range<usize>, PiiKind)> = Vec::new();
    let mut found = Vec::new();
    for kind in PRECEDENCE.into_iter().filter(|kind| set.contains(*kind)) {
        let find = finder(kind);
        let mut gap_start = 0;
        for taken in 0..=spans.len() {
            let gap_end = spans.get(taken).map_or(text.len(), |(span, _)| span.start);
            let before = found.len();
            find(&text[gap_start..gap_end], &mut found);
            for span in &mut found[before..] {
                *span = span.start + gap_start..span.end + gap_start;
            }
            gap_start = spans.get(taken).map_or(text.len(), |(span, _)| span.end);
        }
        spans.extend(found.drain(..).map(|span| (span, kind)));
        spans.sort_unstable_by_key(|(span, _)| span.start);
    }
    spans
}
