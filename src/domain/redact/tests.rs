use serde_json::json;

use super::*;
use crate::domain::json::MAX_JSON_BYTES;

fn only(kind: PiiKind) -> Redact {
    Redact::from_kinds([kind])
}

/// The string as redacted, or itself when nothing matched.
fn redact(text: &str, set: Redact) -> String {
    scan::redact_str(text, set, &mut [0; 4]).unwrap_or_else(|| text.to_owned())
}

const CARD: PiiKind = PiiKind::Card;
const EMAIL: PiiKind = PiiKind::Email;
const PHONE: PiiKind = PiiKind::Phone;
const SSN: PiiKind = PiiKind::Ssn;

#[test]
fn tricky_strings_are_redacted_as_the_rules_say() {
    let all = Redact::all();
    #[rustfmt::skip]
    let table: &[(&str, Redact, &str)] = &[
        // Cards.
        ("order 4111111111111112 shipped", only(CARD), "order 4111111111111112 shipped"),
        ("order 4111111111111112 shipped", all, "order 4111111111111112 shipped"),
        ("card 4111111111111111, thanks", only(CARD), "card [REDACTED:card], thanks"),
        ("amex 3782 822463 10005 ok", only(CARD), "amex [REDACTED:card] ok"),
        ("4012 8888 8888 1881 888", only(CARD), "[REDACTED:card]"),
        ("4111-1111 1111-1111", only(CARD), "[REDACTED:card]"),
        ("4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", only(CARD), "[REDACTED:card]"),
        ("ref x4111111111111111", all, "ref x4111111111111111"),
        ("4111111111111111x", all, "4111111111111111x"),
        ("4111 1111 1111 1111x", only(CARD), "4111 1111 1111 1111x"),
        ("41111111111111112024", all, "41111111111111112024"),
        ("4111 1111 1111 1111 2024", only(CARD), "[REDACTED:card] 2024"),
        ("my card is 4111 1111 1111 1111 and the year 2024", all,
            "my card is [REDACTED:card] and the year 2024"),
        ("4111111111111111 5555-5555-5555-4444", all, "[REDACTED:card] [REDACTED:card]"),
        ("4111  1111 1111 1111", only(CARD), "4111  1111 1111 1111"),
        ("4111111111111111", only(PHONE), "4111111111111111"),
        ("378282246310005", only(PHONE), "[REDACTED:phone]"),
        ("378282246310005", all, "[REDACTED:card]"),
        ("4111111111111111", Redact::NONE, "4111111111111111"),
        ("4111111111111111-123-45-6789", all, "[REDACTED:card]-[REDACTED:ssn]"),
        // Things that are none of them.
        ("at 2024-12-05T10:00:00Z", all, "at 2024-12-05T10:00:00Z"),
        ("2024-12-05 10:30:00.123", all, "2024-12-05 10:30:00.123"),
        ("id 550e8400-e29b-41d4-a716-446655440000", all, "id 550e8400-e29b-41d4-a716-446655440000"),
        ("123456789", all, "123456789"),
        ("192.168.100.200 on v10.0.19041.1234", all, "192.168.100.200 on v10.0.19041.1234"),
        ("INV-2024-000123-45", all, "INV-2024-000123-45"),
        ("https://x.test/orders/1234567890", all, "https://x.test/orders/1234567890"),
        ("price 3.50 at 10:30, 12 items", all, "price 3.50 at 10:30, 12 items"),
        // SSNs.
        ("ssn 123-45-6789.", only(SSN), "ssn [REDACTED:ssn]."),
        ("123-45-67890 1123-45-6789 123-45-6789-1 0-123-45-6789", only(SSN),
            "123-45-67890 1123-45-6789 123-45-6789-1 0-123-45-6789"),
        ("123 45 6789", only(SSN), "123 45 6789"),
        // Phones.
        ("(555) 123-4567", only(PHONE), "[REDACTED:phone]"),
        ("call +44 20 7946 0958 now", only(PHONE), "call [REDACTED:phone] now"),
        ("+1 (555) 123-4567", only(PHONE), "[REDACTED:phone]"),
        ("1 (555) 123-4567", only(PHONE), "[REDACTED:phone]"),
        ("555-123-4567, 555.123.4567 or 5551234567", only(PHONE),
            "[REDACTED:phone], [REDACTED:phone] or [REDACTED:phone]"),
        ("555-123-4567 555-123-4567", only(PHONE), "[REDACTED:phone] [REDACTED:phone]"),
        ("tel:+15551234567.", only(PHONE), "tel:[REDACTED:phone]."),
        ("0612345678 / 06 12 34 56 78", only(PHONE), "[REDACTED:phone] / [REDACTED:phone]"),
        ("+44 20 7946 0958 2024", only(PHONE), "[REDACTED:phone] 2024"),
        ("123-456-789", all, "123-456-789"),
        ("call 555 123-4567", only(PHONE), "call 555 123-4567"),
        ("tel555-123-4567", only(PHONE), "tel555-123-4567"),
        // Emails.
        ("write to john.doe+calls@mail.example.co.uk.", only(EMAIL),
            "write to [REDACTED:email]."),
        ("JOHN.DOE@EXAMPLE.COM", only(EMAIL), "[REDACTED:email]"),
        ("mailto:a@b.co, then", all, "mailto:[REDACTED:email], then"),
        ("a@b and a@b.c and x@y.c1 and @x.com", all, "a@b and a@b.c and x@y.c1 and @x.com"),
        ("john.@x.com and .jane@x.com", only(EMAIL), "john.@x.com and .[REDACTED:email]"),
        ("5551234567@sms.example.com", all, "[REDACTED:phone]@sms.example.com"),
        ("0000000(555) 123-4567jo@x.co", all, "[REDACTED:phone] [REDACTED:email]"),
        // Mixed, unicode, edges.
        ("Reach me at jane@example.com or +1-555-123-4567.", all,
            "Reach me at [REDACTED:email] or [REDACTED:phone]."),
        ("café ☕ 4111111111111111 日本 a@b.co", all, "café ☕ [REDACTED:card] 日本 [REDACTED:email]"),
        ("é4111111111111111é", only(CARD), "é[REDACTED:card]é"),
        ("\t4111111111111111\n", all, "\t[REDACTED:card]\n"),
        ("", all, ""),
        ("4111111111111111", all, "[REDACTED:card]"),
        ("a@b.co", all, "[REDACTED:email]"),
        ("123-45-6789", all, "[REDACTED:ssn]"),
    ];
    for (input, set, expected) in table {
        let redacted = redact(input, *set);
        assert_eq!(redacted, *expected, "{input:?} with {:?}", set.names());
        assert_eq!(redact(&redacted, *set), redacted, "{input:?} again");
    }
}

#[test]
fn each_match_is_counted_by_kind() {
    let mut counts = [0; 4];
    let text = "a@b.co 4111111111111111 123-45-6789 x@y.org 555-123-4567";
    assert!(scan::redact_str(text, Redact::all(), &mut counts).is_some());
    assert_eq!(counts, [1, 2, 1, 1]);
    assert!(scan::redact_str("nothing here", Redact::all(), &mut counts).is_none());
    assert_eq!(counts, [1, 2, 1, 1]);
}

#[test]
fn string_values_are_redacted_at_any_depth_and_nothing_else_is() {
    let payload = JsonObject::parse(json!({
        "text": "card 4111111111111111",
        "meta": {
            "emails": ["a@b.co", "x", 5551234567_i64, {"ssn": "123-45-6789"}],
            "4111111111111111": 1,
        },
        "n": 4111111111111111_i64,
        "phone": "(555) 123-4567",
        "ok": true,
    }))
    .unwrap();
    let redacted = redact_payload(&payload, Redact::all()).unwrap();
    let expected = json!({
        "text": "card [REDACTED:card]",
        "meta": {
            "emails": ["[REDACTED:email]", "x", 5551234567_i64, {"ssn": "[REDACTED:ssn]"}],
            "4111111111111111": 1,
        },
        "n": 4111111111111111_i64,
        "phone": "[REDACTED:phone]",
        "ok": true,
    });
    assert_eq!(
        redacted.payload.json(),
        serde_json::to_string(&expected).unwrap()
    );
    assert_eq!(redacted.counts, [1, 1, 1, 1]);
    assert_eq!(redacted.total(), 4);
    assert_eq!(redacted.count(PiiKind::Ssn), 1);

    let only_cards = redact_payload(&payload, only(CARD)).unwrap();
    assert_eq!(only_cards.counts, [1, 0, 0, 0]);
    assert_eq!(only_cards.payload.as_map()["phone"], "(555) 123-4567");
}

/// The same object: equal, and its text the very same (shared, not written again).
fn assert_same(redacted: &Redacted, payload: &JsonObject) {
    assert_eq!(redacted.total(), 0);
    assert_eq!(&redacted.payload, payload);
    assert!(std::ptr::eq(redacted.payload.json(), payload.json()));
}

#[test]
fn a_payload_with_nothing_to_redact_comes_back_as_the_same_object() {
    let texts = [
        r#"{"text":"hello there","turn":7}"#,
        r#"{"text":"order 41111111111111112024","at":"2024-12-05T10:00:00Z"}"#,
        r#"{"ms":1733392800000,"id":"550e8400-e29b-41d4-a716-446655440000"}"#,
    ];
    for text in texts {
        let payload = JsonObject::from_json_text(text).unwrap();
        assert_same(&redact_payload(&payload, Redact::all()).unwrap(), &payload);
    }
    let cards = JsonObject::from_json_text(r#"{"t":"4111111111111111"}"#).unwrap();
    assert_same(&redact_payload(&cards, Redact::NONE).unwrap(), &cards);
    assert_same(&redact_payload(&cards, only(EMAIL)).unwrap(), &cards);
}

#[test]
fn the_prefilter_passes_only_text_that_may_hold_a_match() {
    let maybe = |text: &str, set| prefilter::json_may_match(text.as_bytes(), set);
    assert!(!maybe(r#"{"t":"hello","n":1733392800000}"#, Redact::all()));
    assert!(!maybe(r#"{"t":"2024-12-05T10:00:00Z"}"#, Redact::all()));
    assert!(maybe(r#"{"t":"12345678-9"}"#, only(SSN)));
    assert!(!maybe(r#"{"t":"12345678-9"}"#, only(PHONE)));
    assert!(maybe(r#"{"t":"(555) 123-4567"}"#, only(PHONE)));
    assert!(!maybe(r#"{"t":"(555) 123-4567"}"#, only(CARD)));
    assert!(maybe(r#"{"t":"a@b"}"#, only(EMAIL)));
    assert!(!maybe(r#"{"t":"a@b"}"#, only(CARD)));
    assert!(maybe(r#"{"t":"\u0040"}"#, only(CARD)));
    assert!(!maybe(
        r#"{"t":"\\u0040"}"#,
        Redact::from_kinds([EMAIL, CARD])
    ));
    assert!(!maybe(r#"{"t":"12345\n6789"}"#, only(SSN)));
}

#[test]
fn escaped_characters_are_redacted_as_the_characters_they_stand_for() {
    let payload =
        JsonObject::from_stored_json(r#"{"t":"\u0034111111111111111 a\u0040b.co"}"#).unwrap();
    let redacted = redact_payload(&payload, Redact::all()).unwrap();
    assert_eq!(
        redacted.payload.json(),
        r#"{"t":"[REDACTED:card] [REDACTED:email]"}"#
    );
}

#[test]
fn a_payload_that_grows_past_the_size_limit_is_refused() {
    // Each "a@b.co " (7 bytes) becomes "[REDACTED:email] " (17 bytes).
    let reps = (MAX_JSON_BYTES - 100) / 7;
    let near = |unit: &str| JsonObject::parse(json!({ "t": unit.repeat(reps) })).unwrap();
    let emails = near("a@b.co ");
    assert!(emails.json().len() <= MAX_JSON_BYTES);
    assert!(redact_payload(&emails, Redact::all()).is_err());
    assert!(redact_payload(&emails, only(CARD)).is_ok());
    let plain = near("abcdef ");
    assert_same(&redact_payload(&plain, Redact::all()).unwrap(), &plain);
    // Shrinking is fine: "4111111111111111 " (17) becomes "[REDACTED:card] " (16).
    let cards = JsonObject::parse(json!({ "t": "4111111111111111 ".repeat(reps / 3) })).unwrap();
    assert_eq!(
        redact_payload(&cards, only(CARD)).unwrap().count(CARD),
        reps as u32 / 3
    );
}

#[test]
fn lists_of_kinds_parse_as_the_env_var_is_written() {
    let parse = |raw| Redact::parse_list(raw).unwrap();
    assert_eq!(parse("card,email"), Redact::from_kinds([CARD, EMAIL]));
    assert_eq!(parse(" ssn , card "), Redact::from_kinds([CARD, SSN]));
    assert_eq!(parse("phone,phone"), only(PHONE));
    assert_eq!(parse("card,email,phone,ssn"), Redact::all());
    for empty in ["", "   ", "none", " none "] {
        assert_eq!(parse(empty), Redact::NONE, "{empty:?}");
        assert!(parse(empty).is_empty());
    }
    for bad in ["cards", "card,", "Card", "card,,ssn", "none,card", "all"] {
        let error = Redact::parse_list(bad).unwrap_err().to_string();
        assert!(
            error.contains("card, email, phone, ssn"),
            "{bad:?}: {error}"
        );
    }
    let error = Redact::parse_list("card, mail").unwrap_err().to_string();
    assert!(error.contains("\"mail\""), "{error}");
}

#[test]
fn kinds_have_names_and_sets_have_bits() {
    for kind in PiiKind::ALL {
        assert_eq!(PiiKind::parse(kind.as_str()), Ok(kind));
    }
    let error = PiiKind::parse("CARD").unwrap_err().to_string();
    assert!(error.contains("\"CARD\"") && error.contains("card, email, phone, ssn"));
    for bits in 0..=15 {
        let set = Redact::from_bits(bits).unwrap();
        assert_eq!(set.bits(), bits);
        assert_eq!(Redact::from_kinds(set.kinds()), set);
        assert_eq!(Redact::parse_list(&set.names().join(",")), Ok(set));
    }
    assert_eq!(Redact::from_bits(16), None);
    assert_eq!(Redact::from_bits(255), None);
    let set = Redact::from_kinds([SSN, CARD]);
    assert_eq!((set.bits(), set.names()), (9, vec!["card", "ssn"]));
    assert!(set.contains(CARD) && !set.contains(EMAIL));
    assert_eq!(Redact::all().bits(), 15);
    assert_eq!(Redact::default(), Redact::NONE);
    assert_eq!(PiiKind::ALL.map(|kind| only(kind).bits()), [1, 2, 4, 8]);
}

#[test]
fn long_repetitive_strings_are_scanned_in_one_pass() {
    let units = [
        "1 ",
        "1-",
        "(1)",
        "+1",
        "a@",
        "a.",
        "1",
        "123-45-",
        "4111 1111 ",
    ];
    for unit in units {
        let text = unit.repeat(200_000 / unit.len());
        let payload = JsonObject::parse(json!({ "t": text })).unwrap();
        assert!(redact_payload(&payload, Redact::all()).is_ok(), "{unit:?}");
    }
}
