//! Every metric the service exports, with its help text: the one list `/metrics` describes them
//! from (`# HELP`), so that dashboards and alert rules can say what a series means. A metric
//! recorded anywhere in `src/` must be listed here (the test below reads the source).

/// What kind of series a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric: its name, kind and help text.
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn counter(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Counter,
        help,
    }
}
const fn gauge(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Gauge,
        help,
    }
}
const fn histogram(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Histogram,
        help,
    }
}

pub const METRICS: &[Metric] = &[
    // HTTP
    counter(
        "http_requests_total",
        "HTTP requests answered, by method, route (the router's path template, or `unmatched`) and status",
    ),
    histogram(
        "http_request_duration_seconds",
        "Time from a request's arrival to its answer's head, by method, route and status (streams: until the stream opened)",
    ),
    // Storage
    histogram(
        "storage_operation_duration_seconds",
        "Time one repository call took, by backend (sqlite or mongodb), operation and outcome",
    ),
    counter(
        "storage_write_failures_total",
        "Writes answered 503 because storage failed, by kind: full (storage_full: the disk or quota is full) or unavailable (storage_unavailable)",
    ),
    histogram(
        "sqlite_write_batch_size",
        "Commands committed together in one SQLite write transaction (group commit), per transaction",
    ),
    gauge(
        "sqlite_wal_frames",
        "Frames in the SQLite WAL file at the checkpointer's last run (every 100 ms); it starts over from 0 when the WAL restarts",
    ),
    counter(
        "sqlite_checkpoint_failures_total",
        "Checkpoints beside the writer that failed (their pages stay in the WAL and are copied by a later one)",
    ),
    // Sessions
    counter(
        "sessions_created_total",
        "Sessions created (a create that found the session already there is not counted)",
    ),
    counter(
        "sessions_ended_total",
        "Sessions ended, by final status (completed or failed)",
    ),
    counter(
        "sessions_ended_by_reason_total",
        "Sessions ended, by end reason (the one given to complete, inactivity_timeout, max_duration_exceeded, or none)",
    ),
    counter(
        "sessions_erased_total",
        "Sessions erased, by cause: request (DELETE) or retention",
    ),
    counter(
        "erased_events_removed_total",
        "Events of erased sessions removed from storage by the background purge",
    ),
    // Events
    counter(
        "events_stored_total",
        "Events stored (new events only; replays are counted apart)",
    ),
    counter(
        "event_replays_total",
        "Appends that repeated a stored event exactly and were answered with it (idempotent retries)",
    ),
    counter(
        "event_conflicts_total",
        "Appends refused 409 because the eventId was stored with different content, by reason",
    ),
    counter(
        "changes_written_total",
        "Changes written to the embedded store's change log (GET /changes); MongoDB's feed is its oplog, so it writes none",
    ),
    counter(
        "changes_delivered_total",
        "Changes answered by GET /changes (pages, long polls, streams, NDJSON)",
    ),
    gauge(
        "changes_consumers",
        "Change-feed readers waiting now: open streams and long polls",
    ),
    gauge(
        "changes_oldest_age_seconds",
        "Age of the oldest change the embedded store's feed keeps (0: none, or MongoDB, whose oplog is the server's)",
    ),
    counter(
        "search_indexed_events_total",
        "Events the embedded store's search index took in after they were stored (index passes, each up to 250 changes)",
    ),
    gauge(
        "search_index_pending_changes",
        "Changes the embedded store's search index had yet to follow at its last look (a search first catches up); MongoDB indexes as it stores",
    ),
    counter(
        "search_index_failures_total",
        "Index catch-ups that failed, in the background (retried 250 ms later) or before a search (which then searches the index as it is)",
    ),
    counter(
        "mongodb_commands_total",
        "MongoDB only: commands the driver sent to the server (each one round trip), by command name",
    ),
    counter(
        "redactions_total",
        "Matches of personal data replaced in stored event payloads (REDACT, a call's redact), by kind",
    ),
    counter(
        "event_batches_total",
        "Batch appends (events:batch), by outcome",
    ),
    histogram(
        "event_batch_size",
        "Events per accepted batch append request",
    ),
    // Timers and retention
    counter(
        "sweeper_runs_total",
        "Runs of the sweeper that ends sessions whose timers ran out",
    ),
    counter(
        "sweeper_sessions_ended_total",
        "Sessions the sweeper ended because a timer ran out",
    ),
    counter(
        "sweeper_failures_total",
        "Sweeper or erasure steps that failed on storage (retried on the next tick)",
    ),
    gauge(
        "sweeper_last_success_timestamp_seconds",
        "Unix time the sweeper last completed a run without a storage error (set at start-up)",
    ),
    // Live transcripts
    gauge(
        "streams_open",
        "Live transcript streams (Server-Sent Events) open on this instance",
    ),
    gauge(
        "streams_max",
        "Open live streams this instance allows (MAX_STREAMS); beyond it, 503 too_many_streams",
    ),
    counter(
        "streams_refused_total",
        "Live streams refused 503 too_many_streams because streams_max were open",
    ),
    counter(
        "stream_resumes_total",
        "Live streams opened with Last-Event-ID or after (a client resuming)",
    ),
    counter(
        "stream_events_delivered_total",
        "Events sent on live streams",
    ),
    // Webhooks
    counter(
        "webhook_messages_queued_total",
        "Webhook messages made from the change feed (one per change, for every endpoint it matches)",
    ),
    counter(
        "webhook_attempts_total",
        "Webhook delivery attempts, by outcome: delivered (2xx), gone (410: the endpoint is disabled), http_error (any other status) or no_response (timeout, refused connection, forbidden address)",
    ),
    histogram(
        "webhook_attempt_duration_seconds",
        "Time one webhook attempt took, until the receiver's status (or the failure)",
    ),
    gauge(
        "webhook_pending_messages",
        "Webhook deliveries pending (waiting for their first attempt or a retry), across all instances",
    ),
    gauge(
        "webhook_oldest_pending_age_seconds",
        "Age of the oldest pending webhook delivery (0: none pending)",
    ),
    counter(
        "webhook_endpoints_disabled_total",
        "Webhook endpoints this instance disabled (410 Gone, or every attempt failing for WEBHOOK_DISABLE_AFTER_SECONDS)",
    ),
    counter(
        "webhook_fanout_gaps_total",
        "Times the webhook fan-out fell behind the change feed's retention (changes in between were not sent)",
    ),
];

/// Counter series that alert rules take `increase()` of (deploy/prometheus/alerts.yml), exported
/// at 0 from start-up: a series that first appears at 1 shows no increase, so the first failure
/// would go unseen.
const FROM_ZERO: &[(&str, &[(&str, &str)])] = &[
    ("changes_delivered_total", &[]),
    ("redactions_total", &[("kind", "card")]),
    ("redactions_total", &[("kind", "email")]),
    ("redactions_total", &[("kind", "phone")]),
    ("redactions_total", &[("kind", "ssn")]),
    ("storage_write_failures_total", &[("kind", "full")]),
    ("storage_write_failures_total", &[("kind", "unavailable")]),
    ("search_index_failures_total", &[]),
    ("streams_refused_total", &[]),
    ("sweeper_failures_total", &[]),
    ("webhook_endpoints_disabled_total", &[]),
    ("webhook_fanout_gaps_total", &[]),
];

/// Gives every metric of [`METRICS`] its help text in `recorder`, and registers the series of
/// [`FROM_ZERO`] at 0.
pub fn describe(recorder: &dyn metrics::Recorder) {
    let metadata = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
    for (name, labels) in FROM_ZERO {
        let labels: Vec<metrics::Label> = labels
            .iter()
            .map(|(k, v)| metrics::Label::new(*k, *v))
            .collect();
        let key = metrics::Key::from_parts(*name, labels);
        recorder.register_counter(&key, &metadata).increment(0);
    }
    for metric in METRICS {
        let (name, help) = (metric.name.into(), metric.help.into());
        match metric.kind {
            Kind::Counter => recorder.describe_counter(name, None, help),
            Kind::Gauge => recorder.describe_gauge(name, None, help),
            Kind::Histogram => recorder.describe_histogram(name, None, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `metrics::counter!("name"`, `gauge!` and `histogram!` in `src/`, with its kind.
    fn recorded_in_source() -> Vec<(String, Kind)> {
        let mut found = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                // This file names the macros in its own text.
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("catalog.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (macro_name, kind) in [
                    ("counter!(", Kind::Counter),
                    ("gauge!(", Kind::Gauge),
                    ("histogram!(", Kind::Histogram),
                ] {
                    for (at, _) in text.match_indices(macro_name) {
                        let rest = text[at + macro_name.len()..].trim_start();
                        if let Some(rest) = rest.strip_prefix('"') {
                            let name = &rest[..rest.find('"').unwrap()];
                            found.push((name.to_owned(), kind));
                        }
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_metric_recorded_in_the_source_is_listed_with_its_kind() {
        let recorded = recorded_in_source();
        assert!(
            recorded.len() > 20,
            "the source scan found too little: {recorded:?}"
        );
        for (name, kind) in &recorded {
            let listed = METRICS.iter().find(|m| m.name == name);
            assert!(listed.is_some(), "{name} is recorded but not in METRICS");
            assert_eq!(listed.map(|m| m.kind), Some(*kind), "{name}'s kind");
        }
        for metric in METRICS {
            assert!(
                recorded.iter().any(|(name, _)| name == metric.name),
                "{} is listed but never recorded",
                metric.name
            );
        }
    }

    #[test]
    fn names_are_unique_and_follow_prometheus_conventions() {
        for (i, metric) in METRICS.iter().enumerate() {
            assert!(
                METRICS[i + 1..].iter().all(|m| m.name != metric.name),
                "{} twice",
                metric.name
            );
            let total = metric.name.ends_with("_total");
            assert_eq!(
                total,
                metric.kind == Kind::Counter,
                "{}: _total is for counters",
                metric.name
            );
            assert!(!metric.help.is_empty() && !metric.help.contains('\n'));
        }
        for (name, _) in FROM_ZERO {
            let listed = METRICS.iter().find(|m| m.name == *name).map(|m| m.kind);
            assert_eq!(
                listed,
                Some(Kind::Counter),
                "{name} starts at zero: a listed counter"
            );
        }
    }
}
