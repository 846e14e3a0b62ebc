//! The repository contract, written once and run against every backend.

#[path = "../support/mod.rs"]
mod support;

mod cases;

on_every_backend!(crate::cases =>
    create_makes_a_session_once_and_then_returns_it_unchanged,
    concurrent_creates_make_exactly_one_session,
    unknown_sessions_are_not_found,
    appends_get_dense_seqs_and_activate_the_session,
    a_repeated_append_returns_the_stored_event_and_changes_nothing,
    concurrent_identical_appends_store_one_event,
    concurrent_distinct_appends_get_unique_dense_seqs_and_an_exact_count,
    appends_to_an_unknown_session_are_not_found,
    an_ended_session_refuses_new_events_but_returns_stored_ones,
    ending_is_idempotent_and_concurrent_ends_agree_on_one_ended_at,
    ending_an_unknown_session_is_not_found,
    event_ids_are_scoped_to_their_session,
    single_events_are_found_by_id,
    pages_by_offset_in_both_orders,
    pages_after_a_seq_in_both_orders,
    pages_past_the_end_are_empty,
    a_page_read_during_appends_never_shows_more_than_its_count,
    accepted_json_round_trips_exactly,
    everything_survives_reopening_the_store,
    ping_answers_when_the_store_is_up,
    two_instances_appending_to_one_session_keep_seqs_dense_and_counts_exact,
);
