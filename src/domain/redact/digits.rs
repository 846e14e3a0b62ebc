//! Byte helpers the kinds' finders share (kept apart so no finder imports the scan that calls it).

/// How many ASCII digits follow from `at`.
pub(super) fn digits_at(text: &[u8], at: usize) -> usize {
    text.get(at..).map_or(0, |rest| {
        rest.iter().take_while(|b| b.is_ascii_digit()).count()
    })
}
