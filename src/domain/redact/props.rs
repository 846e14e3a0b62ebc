//! Properties: generated cards are found exactly when Luhn says so, and the prefilter never
//! misses what the full scan finds.

use proptest::prelude::*;

use super::*;

/// Luhn written the plain way, from the last digit: the oracle the scanner is checked against.
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(place, &d)| match (place % 2, u32::from(d) * 2) {
            (0, _) => u32::from(d),
            (_, twice) if twice > 9 => twice - 9,
            (_, twice) => twice,
        })
        .sum();
    sum.is_multiple_of(10)
}

/// 13–19 digits whose last digit makes the Luhn check pass.
fn card_digits() -> impl Strategy<Value = Vec<u8>> {
    (13usize..=19)
        .prop_flat_map(|len| prop::collection::vec(0u8..10, len - 1))
        .prop_map(|mut digits| {
            digits.push(0);
            let last = digits.len() - 1;
            digits[last] = (0..10)
                .find(|&d| luhn(&[&digits[..last], &[d]].concat()))
                .unwrap();
            digits
        })
}

/// The digits cut into groups of the given sizes (the last group takes what is left).
fn grouped(digits: &[u8], sizes: &[usize]) -> Vec<String> {
    let mut groups = Vec::new();
    let mut rest = digits;
    for &size in sizes {
        if rest.is_empty() {
            break;
        }
        let (group, tail) = rest.split_at(size.min(rest.len()));
        groups.push(group.iter().map(|d| char::from(b'0' + d)).collect());
        rest = tail;
    }
    if !rest.is_empty() {
        groups.push(rest.iter().map(|d| char::from(b'0' + d)).collect());
    }
    groups
}

/// The number written with no separator, or its groups joined by spaces or dashes.
fn written() -> impl Strategy<Value = (Vec<u8>, Vec<String>, &'static str)> {
    (
        card_digits(),
        prop::collection::vec(1usize..=8, 1..=19),
        prop::sample::select(vec!["", " ", "-"]),
    )
        .prop_map(|(digits, sizes, sep)| {
            let groups = match sep {
                "" => vec![digits.iter().map(|d| char::from(b'0' + d)).collect()],
                _ => grouped(&digits, &sizes),
            };
            (digits, groups, sep)
        })
}

/// Text with no digit, then something that does not glue to a number on its right.
fn before() -> impl Strategy<Value = String> {
    let end = prop::sample::select(vec!["", " ", ": ", "(", "\n", "é", "-", "#"]);
    ("[a-zA-Z ,.:;!?é☕日本\n-]{0,20}", end).prop_map(|(text, end)| match text.is_empty() {
        true => text,
        false => format!("{text}{}", if end.is_empty() { " " } else { end }),
    })
}

/// Something that does not glue to a number on its left, then text with no digit.
fn after() -> impl Strategy<Value = String> {
    let start = prop::sample::select(vec![" ", ".", ", ", ")", "\n", "é", "-", "!"]);
    (start, "[a-zA-Z ,.:;!?é☕日本\n-]{0,20}").prop_map(|(start, text)| format!("{start}{text}"))
}

/// Whether some window of whole groups of 13–19 digits passes Luhn.
fn some_window_passes(groups: &[String]) -> bool {
    let digits: Vec<Vec<u8>> = groups
        .iter()
        .map(|g| g.bytes().map(|b| b - b'0').collect())
        .collect();
    (0..digits.len()).any(|first| {
        (first..digits.len()).any(|last| {
            let window = digits[first..=last].concat();
            (13..=19).contains(&window.len()) && luhn(&window)
        })
    })
}

fn redact(text: &str, set: Redact) -> (String, [u32; 4]) {
    let mut counts = [0; 4];
    let redacted = scan::redact_str(text, set, &mut counts).unwrap_or_else(|| text.to_owned());
    (redacted, counts)
}

/// Pieces that make matches, near-matches and what sits around them.
#[rustfmt::skip]
const PIECES: &[&str] = &[
    " ", "-", ".", "(", ")", "+", "@", "a", "Z", ".com", "é", "☕", "\"", "\\", "\n", "/", "_",
    "\u{1}", "4111111111111111", "123-45-6789", "(555) 123-4567", "+44 20 7946 0958",
    "jo.e+x@mail.example.co", "555.123.4567",
];

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,5}",
        prop::sample::select(PIECES).prop_map(String::from),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..16).prop_map(|pieces| pieces.concat())
}

/// A JSON string literal of `text` with the characters at the chosen places written as `\u`
/// escapes (surrogate pairs beyond the first plane), the rest as `serde_json` writes them.
fn escaped(text: &str, places: &[bool]) -> String {
    let mut out = String::from("\"");
    for (index, c) in text.chars().enumerate() {
        if places.get(index).copied().unwrap_or(false) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            let one = serde_json::to_string(&c.to_string()).unwrap();
            out.push_str(&one[1..one.len() - 1]);
        }
    }
    out.push('"');
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A valid card, however grouped, in text that does not glue to it, is replaced whole and
    /// the text around it is left as it was.
    #[test]
    fn valid_cards_are_redacted_and_nothing_else((_, groups, sep) in written(),
                                                 before in before(), after in after()) {
        let text = format!("{before}{}{after}", groups.join(sep));
        let (redacted, counts) = redact(&text, Redact::from_kinds([PiiKind::Card]));
        prop_assert_eq!(redacted, format!("{before}[REDACTED:card]{after}"));
        prop_assert_eq!(counts, [1, 0, 0, 0]);
    }

    /// The same number with its check digit changed stays, unless some window of its groups
    /// is a card of its own.
    #[test]
    fn luhn_failing_numbers_stay((digits, _, sep) in written(), sizes in prop::collection::vec(1usize..=8, 1..=19),
                                 change in 1u8..10, before in before(), after in after()) {
        let mut digits = digits;
        let last = digits.len() - 1;
        digits[last] = (digits[last] + change) % 10;
        prop_assert!(!luhn(&digits));
        let groups = match sep {
            "" => grouped(&digits, &[digits.len()]),
            _ => grouped(&digits, &sizes),
        };
        let text = format!("{before}{}{after}", groups.join(sep));
        let (redacted, _) = redact(&text, Redact::from_kinds([PiiKind::Card]));
        prop_assert_eq!(redacted == text, !some_window_passes(&groups), "{}", text);
    }

    /// A valid card glued to a letter is no card.
    #[test]
    fn cards_glued_to_a_letter_stay(digits in card_digits(), letter in "[a-zA-Z]", left in any::<bool>()) {
        let number: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
        let text = if left { format!("{letter}{number}") } else { format!("{number}{letter}") };
        prop_assert_eq!(redact(&text, Redact::all()).0, text);
    }

    /// Whenever the full scan finds a match, the prefilter says maybe: on the string itself, on
    /// a payload's compact text, and on stored text with `\u` escapes anywhere.
    #[test]
    fn the_prefilter_never_misses(text in text(), bits in 1u8..=15,
                                  places in prop::collection::vec(prop::bool::weighted(0.1), 0..64)) {
        let set = Redact::from_bits(bits).unwrap();
        let matches = scan::spans(text.as_bytes(), set).len();
        let compact = JsonObject::parse(serde_json::json!({ "k": text })).unwrap();
        let stored = JsonObject::from_stored_json(&format!("{{\"k\":{}}}", escaped(&text, &places))).unwrap();
        prop_assert_eq!(stored.as_map()["k"].as_str(), Some(text.as_str()));
        if matches > 0 {
            prop_assert!(prefilter::str_may_match(text.as_bytes(), set));
            prop_assert!(prefilter::json_may_match(compact.json().as_bytes(), set));
            prop_assert!(prefilter::json_may_match(stored.json().as_bytes(), set));
        }
        for payload in [compact, stored] {
            let total = redact_payload(&payload, set).unwrap().total() as usize;
            prop_assert!(total >= matches && (total == 0) == (matches == 0));
        }
    }

    /// What redaction leaves holds no match: redacting it again changes nothing.
    #[test]
    fn redaction_is_idempotent(text in text(), bits in 1u8..=15) {
        let set = Redact::from_bits(bits).unwrap();
        let (once, _) = redact(&text, set);
        prop_assert!(scan::spans(once.as_bytes(), set).is_empty(), "{:?} left in {:?}", once, text);
        prop_assert_eq!(redact(&once, set), (once.clone(), [0; 4]));
    }

}
