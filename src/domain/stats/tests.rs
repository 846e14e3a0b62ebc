use super::*;

fn at(raw: &str) -> Timestamp {
    Timestamp::parse(raw).unwrap()
}

fn zone(name: &str) -> Zone {
    Zone::parse(name).unwrap()
}

fn starts(steps: &[TimeStep]) -> Vec<&str> {
    steps.iter().map(|s| s.start.as_str()).collect()
}

#[test]
fn nearest_rank_percentiles_of_whole_seconds() {
    let mut tally = Tally::default();
    for d in 1..=100 {
        tally.add(&Tally::ended(d, 1, 2));
    }
    tally.add(&Tally::open(3, 1));
    let s = tally.summary();
    assert_eq!((s.calls, s.ended, s.events), (103, 100, 201));
    assert_eq!(
        s.durations,
        Some(Percentiles {
            p50: 50,
            p90: 90,
            p99: 99,
            max: 100
        })
    );
    assert_eq!(s.events_per_call, 1.95);
}

#[test]
fn one_call_is_every_percentile_and_no_ended_call_has_none() {
    let s = Tally::ended(42, 1, 0).summary();
    assert_eq!(
        s.durations,
        Some(Percentiles {
            p50: 42,
            p90: 42,
            p99: 42,
            max: 42
        })
    );
    let s = Tally::open(2, 5).summary();
    assert_eq!((s.ended, s.durations, s.events_per_call), (0, None, 2.5));
    assert_eq!(Tally::default().summary().events_per_call, 0.0);
}

#[test]
fn repeated_durations_count_once_per_call() {
    // 98 calls of 10 s and 2 of 500 s: p99 is the 99th call, 500 s; p90 10 s.
    let mut tally = Tally::ended(10, 98, 0);
    tally.add(&Tally::ended(500, 2, 0));
    let p = tally.summary().durations.unwrap();
    assert_eq!((p.p50, p.p90, p.p99, p.max), (10, 10, 500, 500));
}

#[test]
fn durations_are_truncated_to_whole_seconds_and_never_negative() {
    let start = at("2026-01-01T00:00:00Z");
    assert_eq!(duration_seconds(start, at("2026-01-01T00:01:01.999Z")), 61);
    assert_eq!(duration_seconds(start, at("2025-12-31T23:59:00Z")), 0);
}

#[test]
fn utc_days_cover_the_range_and_the_first_and_last_are_clipped() {
    let steps = time_steps(
        at("2026-11-27T10:00:00Z"),
        at("2026-11-29T06:00:00Z"),
        Step::Day,
        &Zone::utc(),
    )
    .unwrap();
    assert_eq!(
        starts(&steps),
        [
            "2026-11-27T00:00:00+00:00",
            "2026-11-28T00:00:00+00:00",
            "2026-11-29T00:00:00+00:00"
        ]
    );
    assert_eq!(steps[0].from, at("2026-11-27T10:00:00Z"));
    assert_eq!(steps[0].to, at("2026-11-28T00:00:00Z"));
    assert_eq!(steps[2].to, at("2026-11-29T06:00:00Z"));
}

#[test]
fn a_range_ending_on_a_step_boundary_has_no_empty_step_after_it() {
    let steps = time_steps(
        at("2026-11-27T00:00:00Z"),
        at("2026-11-29T00:00:00Z"),
        Step::Day,
        &Zone::utc(),
    )
    .unwrap();
    assert_eq!(steps.len(), 2);
}

#[test]
fn days_are_the_zones_days_with_its_offset() {
    let steps = time_steps(
        at("2026-11-27T00:00:00Z"),
        at("2026-11-28T00:00:00Z"),
        Step::Day,
        &zone("Asia/Kolkata"),
    )
    .unwrap();
    assert_eq!(
        starts(&steps),
        ["2026-11-27T00:00:00+05:30", "2026-11-28T00:00:00+05:30"]
    );
    assert_eq!(steps[1].from, at("2026-11-27T18:30:00Z"));
}

#[test]
fn the_day_clocks_go_back_has_25_hours_and_the_repeated_hour_twice() {
    let steps = time_steps(
        at("2026-10-24T22:00:00Z"), // midnight in Paris (+02:00)
        at("2026-10-25T23:00:00Z"), // the next midnight (+01:00)
        Step::Hour,
        &zone("Europe/Paris"),
    )
    .unwrap();
    assert_eq!(steps.len(), 25);
    assert_eq!(steps[2].start, "2026-10-25T02:00:00+02:00");
    assert_eq!(steps[3].start, "2026-10-25T02:00:00+01:00");
    let days = time_steps(
        steps[0].from,
        steps[24].to,
        Step::Day,
        &zone("Europe/Paris"),
    )
    .unwrap();
    assert_eq!(starts(&days), ["2026-10-25T00:00:00+02:00"]);
}

#[test]
fn the_day_clocks_go_forward_has_23_hours() {
    let steps = time_steps(
        at("2026-03-28T23:00:00Z"),
        at("2026-03-29T22:00:00Z"),
        Step::Hour,
        &zone("Europe/Paris"),
    )
    .unwrap();
    assert_eq!(steps.len(), 23);
    assert_eq!(steps[2].start, "2026-03-29T03:00:00+02:00");
}

#[test]
fn more_than_a_thousand_steps_and_empty_ranges_are_refused() {
    let from = at("2026-01-01T00:00:00Z");
    assert!(time_steps(from, at("2026-02-11T16:00:00Z"), Step::Hour, &Zone::utc()).is_ok());
    let too_many = time_steps(from, at("2026-02-11T16:00:01Z"), Step::Hour, &Zone::utc());
    assert!(too_many.unwrap_err().0.contains("more than 1000 hours"));
    assert!(time_steps(from, from, Step::Day, &Zone::utc()).is_err());
}

#[test]
fn zones_are_iana_names_in_any_case() {
    assert_eq!(zone("utc").name(), "UTC");
    assert_eq!(zone("europe/paris").name(), "Europe/Paris");
    for bad in [
        "",
        "Mars/Olympus",
        "+05:00",
        "EST5EDT,M3.2.0,M11.1.0",
        &"A".repeat(65),
    ] {
        assert!(Zone::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn group_by_parses_the_four_kinds() {
    assert_eq!(GroupBy::parse("endedReason").unwrap(), GroupBy::EndedReason);
    assert_eq!(
        GroupBy::parse("metadata.campaign-1").unwrap(),
        GroupBy::Metadata("campaign-1".into())
    );
    for bad in ["", "reason", "metadata.", "metadata.a b", "metadata.a.b"] {
        assert!(GroupBy::parse(bad).is_err(), "{bad:?}");
    }
}

fn dims(status: Status, reason: Option<&str>) -> Dims {
    Dims {
        status,
        ended_reason: reason.map(str::to_owned),
        language: "en".into(),
        metadata: None,
    }
}

#[test]
fn figures_fill_every_step_and_group_and_put_calls_without_a_group_last() {
    let cells = [
        Cell {
            step: 0,
            dims: dims(Status::Completed, Some("transferred")),
            tally: Tally::ended(30, 2, 4),
        },
        Cell {
            step: 1,
            dims: dims(Status::Active, None),
            tally: Tally::open(1, 3),
        },
        Cell {
            step: 1,
            dims: dims(Status::Failed, Some("error")),
            tally: Tally::ended(5, 1, 1),
        },
    ];
    let f = figures(2, &cells, Some(&GroupBy::EndedReason)).unwrap();
    let keys: Vec<_> = f
        .buckets
        .iter()
        .map(|b| (b.step, b.group.as_deref(), b.summary.calls))
        .collect();
    assert_eq!(
        keys,
        [
            (0, Some("error"), 0),
            (0, Some("transferred"), 2),
            (0, None, 0),
            (1, Some("error"), 1),
            (1, Some("transferred"), 0),
            (1, None, 1),
        ]
    );
    assert_eq!((f.totals.calls, f.totals.ended, f.totals.events), (4, 3, 8));
    let groups: Vec<_> = f
        .groups
        .iter()
        .map(|(g, s)| (g.as_deref(), s.calls))
        .collect();
    assert_eq!(
        groups,
        [(Some("error"), 1), (Some("transferred"), 2), (None, 1)]
    );

    let ungrouped = figures(2, &cells, None).unwrap();
    assert_eq!(ungrouped.buckets.len(), 2);
    assert_eq!(ungrouped.buckets[1].summary.calls, 2);
    assert_eq!(ungrouped.groups.len(), 1);
}

#[test]
fn no_calls_is_one_zero_bucket_per_step() {
    let f = figures(3, &[], Some(&GroupBy::Status)).unwrap();
    assert_eq!(f.buckets.len(), 3);
    assert!(
        f.buckets
            .iter()
            .all(|b| b.group.is_none() && b.summary.calls == 0)
    );
}

#[test]
fn more_than_a_thousand_buckets_of_steps_times_groups_are_refused() {
    let cells: Vec<Cell> = ["a", "b", "c"]
        .iter()
        .map(|r| Cell {
            step: 0,
            dims: dims(Status::Completed, Some(r)),
            tally: Tally::ended(1, 1, 0),
        })
        .collect();
    assert!(figures(333, &cells, Some(&GroupBy::EndedReason)).is_ok());
    let refused = figures(334, &cells, Some(&GroupBy::EndedReason)).unwrap_err();
    assert!(refused.0.contains("1002 buckets"), "{refused}");
}
