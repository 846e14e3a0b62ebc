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
    let (field, refused) = too_many.unwrap_err();
    assert_eq!(field, "bucket");
    assert!(refused.0.contains("more than 1000 hours"));
    assert_eq!(
        time_steps(from, from, Step::Day, &Zone::utc())
            .unwrap_err()
            .0,
        "to"
    );
}

#[test]
fn a_range_whose_steps_end_past_the_years_the_zone_can_represent_names_to() {
    // The clock's last instants cannot start a day of their own: `to` is what runs off.
    let last_day = time_steps(
        at("9999-12-30T00:00:00Z"),
        at("9999-12-31T00:00:00Z"),
        Step::Day,
        &Zone::utc(),
    );
    let (field, refused) = last_day.unwrap_err();
    assert_eq!(field, "to");
    assert!(refused.0.contains("outside the years"), "{refused:?}");
    assert!(
        time_steps(
            at("9999-12-29T00:00:00Z"),
            at("9999-12-30T00:00:00Z"),
            Step::Day,
            &Zone::utc()
        )
        .is_ok()
    );
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

fn cell(step: usize, group: Option<&str>, tally: Tally) -> Cell {
    Cell {
        step,
        group: group.map(str::to_owned),
        tally,
    }
}

#[test]
fn cells_keep_only_the_grouped_dimension() {
    let dims = |status, reason: Option<&str>, language: &str| Dims {
        status,
        ended_reason: reason.map(str::to_owned),
        language: language.into(),
        metadata: Some("x".into()),
    };
    let mut by_reason = Cells::new(Some(&GroupBy::EndedReason), 1);
    let mut ungrouped = Cells::new(None, 1);
    for cells in [&mut by_reason, &mut ungrouped] {
        cells.add(
            0,
            &dims(Status::Completed, Some("a"), "en"),
            &Tally::ended(3, 1, 1),
        );
        cells.add(
            0,
            &dims(Status::Failed, Some("a"), "de"),
            &Tally::ended(5, 1, 0),
        );
        cells.add(0, &dims(Status::Active, None, "de"), &Tally::open(1, 2));
    }
    let mut found = by_reason.into_vec();
    found.sort_by(|a, b| a.group.cmp(&b.group));
    assert_eq!(found.len(), 2);
    assert_eq!(
        (found[0].group.as_deref(), found[1].group.as_deref()),
        (None, Some("a"))
    );
    assert_eq!((found[1].tally.calls, found[1].tally.ended_calls()), (2, 2));
    let all = ungrouped.into_vec();
    assert_eq!(
        (all.len(), all[0].group.as_deref(), all[0].tally.calls),
        (1, None, 3)
    );
}

#[test]
fn figures_fill_every_step_and_group_and_put_calls_without_a_group_last() {
    let cells = [
        cell(0, Some("transferred"), Tally::ended(30, 2, 4)),
        cell(1, None, Tally::open(1, 3)),
        cell(1, Some("error"), Tally::ended(5, 1, 1)),
    ];
    let f = figures(2, &cells).unwrap();
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

    let ungrouped: Vec<Cell> = cells
        .iter()
        .map(|c| Cell {
            group: None,
            ..c.clone()
        })
        .collect();
    let ungrouped = figures(2, &ungrouped).unwrap();
    assert_eq!(ungrouped.buckets.len(), 2);
    assert_eq!(ungrouped.buckets[1].summary.calls, 2);
    assert_eq!(ungrouped.groups.len(), 1);
}

#[test]
fn no_calls_is_one_zero_bucket_per_step() {
    let f = figures(3, &[]).unwrap();
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
        .map(|r| cell(0, Some(r), Tally::ended(1, 1, 0)))
        .collect();
    assert!(figures(333, &cells).is_ok());
    let refused = figures(334, &cells).unwrap_err();
    assert!(refused.0.contains("1002 buckets"), "{refused}");
}

#[test]
fn durations_of_an_hour_and_more_count_and_order_like_shorter_ones() {
    let mut tally = Tally::ended(7_200, 1, 0);
    tally.add(&Tally::ended(3_599, 1, 0));
    tally.add(&Tally::ended(3_600, 2, 0));
    tally.add(&Tally::ended(0, 1, 0));
    assert_eq!(
        tally.durations().collect::<Vec<_>>(),
        [(0, 1), (3_599, 1), (3_600, 2), (7_200, 1)]
    );
    let p = tally.summary().durations.unwrap();
    assert_eq!((p.p50, p.p90, p.max), (3_600, 7_200, 7_200));
    // Equal counts are equal tallies, however they were added up.
    assert_eq!(Tally::ended(5, 2, 0), {
        let mut t = Tally::ended(5, 1, 0);
        t.add(&Tally::ended(5, 1, 0));
        t.add(&Tally::ended(1, 0, 0));
        t
    });
}

#[test]
fn groups_past_what_an_answer_holds_are_not_kept() {
    let mut cells = Cells::new(Some(&GroupBy::Metadata("customer".into())), 10);
    for i in 0..5_000 {
        let dims = Dims {
            status: Status::Completed,
            ended_reason: None,
            language: "en".into(),
            metadata: Some(format!("customer-{i}")),
        };
        cells.add(i % 10, &dims, &Tally::ended(1, 1, 0));
    }
    let kept = cells.into_vec();
    assert!(kept.len() <= 10 * 101, "{}", kept.len());
    let refused = figures(10, &kept).unwrap_err();
    assert!(
        refused.0.contains("10 time steps × at least 101 groups"),
        "{refused}"
    );
}
