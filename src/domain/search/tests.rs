use proptest::prelude::*;

use super::*;
use crate::domain::{EventType, JsonObject};

fn folded(text: &str) -> Vec<String> {
    terms(text).into_iter().map(|t| t.folded).collect()
}

fn q(text: &str) -> TextQuery {
    match TextQuery::parse(text) {
        Ok(query) => query,
        Err(e) => panic!("{text:?} did not parse: {e}"),
    }
}

fn matches(query: &str, text: &str) -> bool {
    q(query).matches(&terms(text))
}

#[test]
fn terms_ignore_case_and_accents_and_split_on_punctuation() {
    assert_eq!(folded("Café, CAFÉ! cafe"), ["cafe", "cafe", "cafe"]);
    assert_eq!(
        folded("Don't  STOP-me now"),
        ["don", "t", "stop", "me", "now"]
    );
    assert_eq!(folded("Ça coûte 12,50 €"), ["ca", "coute", "12", "50"]);
    assert_eq!(folded("Straße ÅNGSTRÖM"), ["straße", "angstrom"]);
    assert_eq!(folded("e\u{301}te\u{301}"), ["ete"]);
    assert_eq!(folded("   "), Vec::<String>::new());
}

#[test]
fn term_offsets_are_utf16_code_units() {
    let text = "🎉 Refund? café";
    let found = terms(text);
    let utf16: Vec<u16> = text.encode_utf16().collect();
    let slice = |t: &Term| String::from_utf16_lossy(&utf16[t.start as usize..t.end as usize]);
    assert_eq!(
        found[0].start, 3,
        "the emoji is two UTF-16 units, then a space"
    );
    assert_eq!(slice(&found[0]), "Refund");
    assert_eq!(slice(&found[1]), "café");
}

#[test]
fn words_must_all_match_in_any_order() {
    assert!(matches("refund policy", "What is your POLICY on a refund?"));
    assert!(!matches("refund policy", "I want a refund"));
    assert!(matches(
        "remboursement",
        "Le rembóursement, s'il vous plaît"
    ));
}

#[test]
fn a_phrase_matches_its_terms_next_to_each_other_in_order() {
    assert!(matches("\"refund policy\"", "our Refund-Policy says"));
    assert!(!matches("\"refund policy\"", "the policy on a refund"));
    assert!(!matches("\"refund policy\"", "refund the policy"));
    assert!(
        matches("don't", "I don't know"),
        "a word with an apostrophe is a phrase"
    );
    assert!(!matches("don't", "I don know t"));
}

#[test]
fn a_prefix_matches_words_starting_with_it() {
    assert!(matches("ref*", "they REFUNDED me"));
    assert!(!matches("ref*", "a prefund"));
    assert_eq!(q("Réf*").required, [Clause::Prefix("ref".into())]);
}

#[test]
fn exclusions_leave_out_texts_holding_them() {
    assert!(matches("refund -thanks", "a refund please"));
    assert!(!matches("refund -thanks", "refund, thanks"));
    assert!(!matches("refund -\"thank you\"", "refund. Thank you!"));
    assert!(matches("refund -\"thank you\"", "refund. You, thank"));
    assert!(!matches("refund -ref*", "refund"));
    assert!(
        matches("a-b", "a b"),
        "a dash inside a word is not an exclusion"
    );
}

#[test]
fn bad_queries_are_refused_with_a_reason() {
    for (bad, why) in [
        ("", "nothing"),
        ("   ", "nothing"),
        ("?!", "no letters"),
        ("-refund", "only an exclusion"),
        ("\"open phrase", "unclosed quote"),
        ("r*", "short prefix"),
        ("o'br*", "prefix of two terms"),
        ("\"\" -x", "empty phrase"),
    ] {
        assert!(
            TextQuery::parse(bad).is_err(),
            "{bad:?} ({why}) was accepted"
        );
    }
    let long = "a".repeat(MAX_QUERY_CHARS + 1);
    assert!(TextQuery::parse(&long).is_err());
    assert!(
        TextQuery::parse(&"é".repeat(MAX_QUERY_CHARS)).is_ok(),
        "characters, not bytes"
    );
    let many = (0..=MAX_CLAUSES)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>();
    assert!(TextQuery::parse(&many.join(" ")).is_err());
}

#[test]
fn highlights_cover_required_matches_merged_and_in_order() {
    let text = "Refund my refund, the refund policy";
    let query = q("\"refund policy\" refund -nothing");
    assert_eq!(query.highlights(&terms(text)), [[0, 6], [10, 16], [22, 35]]);
    let prefix = q("pol* my");
    assert_eq!(prefix.highlights(&terms(text)), [[7, 9], [29, 35]]);
}

#[test]
fn the_fts5_expression_quotes_every_term() {
    let query = q("refund \"card number\" acc* -\"thank you\" -bye");
    assert_eq!(
        query.fts5(),
        "(\"refund\" AND \"card number\" AND \"acc\" *) NOT \"thank you\" NOT \"bye\""
    );
    assert_eq!(query.required_terms(), ["card", "number", "refund"]);
}

#[test]
fn only_the_text_of_speech_is_searchable() {
    let payload = |json: &str| match JsonObject::from_json_text(json) {
        Ok(p) => p,
        Err(e) => panic!("{e:?}"),
    };
    let speech = payload(r#"{"confidence":0.9,"text":"Hello there","nested":{"text":"no"}}"#);
    assert_eq!(
        searchable_text(EventType::UserSpeech, &speech).as_deref(),
        Some("Hello there")
    );
    assert_eq!(
        searchable_text(EventType::BotSpeech, &speech).as_deref(),
        Some("Hello there")
    );
    assert_eq!(searchable_text(EventType::System, &speech), None);
    assert_eq!(
        searchable_text(EventType::UserSpeech, &payload(r#"{"text":42}"#)),
        None
    );
    assert_eq!(
        searchable_text(EventType::UserSpeech, &payload(r#"{"words":["a"]}"#)),
        None
    );
}

#[test]
fn index_forms_hold_the_folded_terms() {
    assert_eq!(index_line("Hello, WORLD, hello"), "hello world hello");
    assert_eq!(distinct_terms("Hello, WORLD, hello"), ["hello", "world"]);
    let long: String = (0..MAX_INDEXED_TERMS + 10)
        .map(|i| format!("w{i} "))
        .collect();
    assert_eq!(distinct_terms(&long).len(), MAX_INDEXED_TERMS);
}

#[test]
fn ranking_prefers_more_matches_in_shorter_texts() {
    let query = q("refund");
    let ranker = Ranker::new(6.0);
    let short = ranker.score(&query, &terms("refund please"));
    let long = ranker.score(
        &query,
        &terms("I would like a refund for the order I placed"),
    );
    let twice = ranker.score(&query, &terms("refund refund please"));
    assert!(short > long && twice > short, "{short} {long} {twice}");
}

proptest! {
    /// A text always matches a query made of its own words, and highlights lie inside it.
    #[test]
    fn a_text_matches_its_own_words(words in prop::collection::vec("[a-zA-Zéü0-9]{1,8}", 1..8)) {
        let text = words.join(" ");
        let query = q(&words.join(" "));
        let found = terms(&text);
        prop_assert!(query.matches(&found));
        let phrase = q(&format!("\"{text}\""));
        prop_assert!(phrase.matches(&found));
        let length = text.encode_utf16().count() as u32;
        for [start, end] in query.highlights(&found) {
            prop_assert!(start < end && end <= length);
        }
    }

    /// Excluding a word the text holds never matches.
    #[test]
    fn excluding_a_held_word_never_matches(words in prop::collection::vec("[a-z]{2,6}", 2..6)) {
        let text = words.join(" ");
        let query = q(&format!("{} -{}", words[0], words[words.len() - 1]));
        prop_assert!(!query.matches(&terms(&text)));
    }
}
