//! Call analytics' rules, written once for both stores: the time steps of a range in a time zone,
//! the tally of the calls that started in one step (and one group), and the figures answered from
//! it. A store only counts; what a step is, which group a call is in and what a percentile is
//! are decided here.

use std::collections::{BTreeMap, HashMap};

use jiff::tz::TimeZone;
use jiff::{RoundMode, Unit, ZonedDateTimeRound};

use super::{Invalid, Status, Timestamp};

/// At most this many buckets (time steps × groups) in one answer.
pub const MAX_BUCKETS: usize = 1_000;

/// The embedded store keeps its tallies per 15-minute UTC slot: every zone's hours and days
/// since 1970 start on one (a step that does not, or a range end that does not, is counted from
/// the calls themselves).
pub const SLOT_MILLIS: i64 = 15 * 60 * 1000;

/// The slot a call that started at `t` is tallied in.
pub fn slot(t: Timestamp) -> i64 {
    t.millis().div_euclid(SLOT_MILLIS)
}

/// A call's duration in whole seconds (truncated; 0 if it ended before its start).
pub fn duration_seconds(started_at: Timestamp, ended_at: Timestamp) -> u64 {
    u64::try_from((ended_at.millis() - started_at.millis()) / 1000).unwrap_or(0)
}

/// How long one time step is, in the zone's calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Hour,
    Day,
}

impl Step {
    pub fn parse(raw: &str) -> Result<Step, Invalid> {
        match raw {
            "hour" => Ok(Step::Hour),
            "day" => Ok(Step::Day),
            _ => Err(Invalid::new("must be hour or day")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Hour => "hour",
            Step::Day => "day",
        }
    }
}

/// What calls are grouped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    Status,
    EndedReason,
    Language,
    /// A top-level metadata key (1–64 characters of `A-Z a-z 0-9 _ -`).
    Metadata(String),
}

impl GroupBy {
    pub fn parse(raw: &str) -> Result<GroupBy, Invalid> {
        match raw {
            "status" => Ok(GroupBy::Status),
            "endedReason" => Ok(GroupBy::EndedReason),
            "language" => Ok(GroupBy::Language),
            other => match other.strip_prefix("metadata.") {
                Some(key)
                    if (1..=64).contains(&key.len())
                        && key
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
                {
                    Ok(GroupBy::Metadata(key.to_owned()))
                }
                _ => Err(Invalid::new(
                    "must be status, endedReason, language or metadata.KEY (KEY: 1 to 64 \
                     characters of A-Z a-z 0-9 _ -)",
                )),
            },
        }
    }

    pub fn text(&self) -> String {
        match self {
            GroupBy::Status => "status".into(),
            GroupBy::EndedReason => "endedReason".into(),
            GroupBy::Language => "language".into(),
            GroupBy::Metadata(key) => format!("metadata.{key}"),
        }
    }

    /// The group of a call with these dimensions.
    pub fn group_of(&self, dims: &Dims) -> Option<String> {
        match self {
            GroupBy::Status => Some(dims.status.as_str().to_owned()),
            GroupBy::EndedReason => dims.ended_reason.clone(),
            GroupBy::Language => Some(dims.language.clone()),
            GroupBy::Metadata(_) => dims.metadata.clone(),
        }
    }
}

/// What a store knows of a set of calls that share them: the values a call can be grouped by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dims {
    pub status: Status,
    pub ended_reason: Option<String>,
    pub language: String,
    /// The grouped metadata key's value when it is a string (read only when grouping by it).
    pub metadata: Option<String>,
}

/// An IANA time zone, by name (`UTC`, `Europe/Paris`, `Asia/Kolkata`), from the database
/// compiled into the binary.
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    pub fn parse(raw: &str) -> Result<Zone, Invalid> {
        let unknown = || Invalid::new("must be an IANA time zone name such as UTC or Europe/Paris");
        if raw.is_empty() || raw.len() > 64 {
            return Err(unknown());
        }
        let tz = TimeZone::get(raw).map_err(|_| unknown())?;
        let name = tz.iana_name().unwrap_or(raw).to_owned();
        Ok(Zone { name, tz })
    }

    pub fn utc() -> Zone {
        Zone {
            name: "UTC".into(),
            tz: TimeZone::UTC,
        }
    }

    /// The zone's canonical name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One time step of a range: the calls that started in `[from, to)` (the step's own span,
/// clipped to the range), labelled by the step's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeStep {
    /// The step's start in RFC 3339 with the zone's offset then (`2026-11-27T00:00:00+01:00`).
    pub start: String,
    pub from: Timestamp,
    pub to: Timestamp,
}

/// The steps that `[from, to)` overlaps in `zone`, in order: from the one holding `from` to the
/// one holding the last instant before `to`. More than [`MAX_BUCKETS`] is refused.
pub fn time_steps(
    from: Timestamp,
    to: Timestamp,
    step: Step,
    zone: &Zone,
) -> Result<Vec<TimeStep>, Invalid> {
    if from >= to {
        return Err(Invalid::new("from must be before to"));
    }
    let out_of_range = || Invalid::new("the range is outside the years the zone can represent");
    let at = |millis: i64| {
        jiff::Timestamp::from_millisecond(millis)
            .map(|t| t.to_zoned_datetime(zone.tz.clone()))
            .map_err(|_| out_of_range())
    };
    let start_of = |z: &jiff::ZonedDateTime| match step {
        Step::Day => z.start_of_day(),
        Step::Hour => z.round(
            ZonedDateTimeRound::new()
                .smallest(Unit::Hour)
                .mode(RoundMode::Trunc),
        ),
    };
    let mut start = start_of(&at(from.millis())?).map_err(|_| out_of_range())?;
    let mut steps = Vec::new();
    loop {
        let next = next_start(&start, step, zone).ok_or_else(out_of_range)?;
        let (lo, hi) = (
            start.timestamp().as_millisecond(),
            next.timestamp().as_millisecond(),
        );
        if steps.len() == MAX_BUCKETS {
            return Err(Invalid::new(format!(
                "spans more than {MAX_BUCKETS} {}s: narrow the range or use a longer bucket",
                step.as_str()
            )));
        }
        steps.push(TimeStep {
            start: start.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            from: Timestamp::from_millis(lo.max(from.millis())).map_err(|_| out_of_range())?,
            to: Timestamp::from_millis(hi.min(to.millis())).map_err(|_| out_of_range())?,
        });
        if hi >= to.millis() {
            return Ok(steps);
        }
        start = next;
    }
}

/// The start of the step after the one starting at `start`: the next local midnight, or the
/// next local hour (an hour repeated when clocks go back is a step of its own).
fn next_start(start: &jiff::ZonedDateTime, step: Step, zone: &Zone) -> Option<jiff::ZonedDateTime> {
    match step {
        Step::Day => start.tomorrow().ok()?.start_of_day().ok(),
        Step::Hour => {
            let later = start
                .timestamp()
                .checked_add(jiff::SignedDuration::from_hours(1))
                .ok()?
                .to_zoned_datetime(zone.tz.clone());
            let truncated = later
                .round(
                    ZonedDateTimeRound::new()
                        .smallest(Unit::Hour)
                        .mode(RoundMode::Trunc),
                )
                .ok()?;
            Some(if truncated.timestamp() > start.timestamp() {
                truncated
            } else {
                later
            })
        }
    }
}

/// The calls of one step and group, counted: how many, their events, and the whole-second
/// durations of those that ended (`duration → calls`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub calls: u64,
    pub events: u64,
    pub durations: BTreeMap<u64, u64>,
}

impl Tally {
    /// `calls` open calls with `events` events between them.
    pub fn open(calls: u64, events: u64) -> Tally {
        Tally {
            calls,
            events,
            durations: BTreeMap::new(),
        }
    }

    /// `calls` ended calls of `duration` seconds each, with `events` events between them.
    pub fn ended(duration: u64, calls: u64, events: u64) -> Tally {
        Tally {
            calls,
            events,
            durations: BTreeMap::from([(duration, calls)]),
        }
    }

    pub fn add(&mut self, other: &Tally) {
        self.calls += other.calls;
        self.events += other.events;
        for (&duration, &calls) in &other.durations {
            *self.durations.entry(duration).or_default() += calls;
        }
    }

    /// The calls that ended.
    pub fn ended_calls(&self) -> u64 {
        self.durations.values().sum()
    }

    pub fn summary(&self) -> Summary {
        let ended = self.ended_calls();
        Summary {
            calls: self.calls,
            ended,
            durations: (ended > 0).then(|| Percentiles {
                p50: self.percentile(50, ended),
                p90: self.percentile(90, ended),
                p99: self.percentile(99, ended),
                max: self.durations.keys().next_back().copied().unwrap_or(0),
            }),
            events: self.events,
            events_per_call: if self.calls == 0 {
                0.0
            } else {
                (self.events as f64 / self.calls as f64 * 100.0).round() / 100.0
            },
        }
    }

    /// The nearest-rank percentile: the smallest duration that at least `p` % of the `ended`
    /// calls did not exceed.
    fn percentile(&self, p: u64, ended: u64) -> u64 {
        let rank = (p * ended).div_ceil(100).max(1);
        let mut seen = 0;
        for (&duration, &calls) in &self.durations {
            seen += calls;
            if seen >= rank {
                return duration;
            }
        }
        0
    }
}

/// The figures answered for one bucket, a group, or the whole range.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub calls: u64,
    pub ended: u64,
    /// `None` when no call ended.
    pub durations: Option<Percentiles>,
    pub events: u64,
    /// Rounded to two decimals; 0 without calls.
    pub events_per_call: f64,
}

/// Exact percentiles of whole-second durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// What a store counted: the calls of step `step` whose dimensions are `dims`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub step: usize,
    pub dims: Dims,
    pub tally: Tally,
}

/// The step of `bounds` (`bounds[i] <= t < bounds[i + 1]`) that `t` falls in, if any.
pub fn step_of(bounds: &[Timestamp], t: Timestamp) -> Option<usize> {
    let after = bounds.partition_point(|b| *b <= t);
    (after >= 1 && after < bounds.len()).then(|| after - 1)
}

/// Cells added up as a store reads them, so that what it holds grows with the steps, groups and
/// distinct durations, not with the calls read.
#[derive(Debug, Default)]
pub struct Cells(HashMap<(usize, Dims), Tally>);

impl Cells {
    pub fn add(&mut self, step: usize, dims: Dims, tally: &Tally) {
        self.tally(step, dims).add(tally);
    }

    /// The tally of `step` and `dims`, to add to in place.
    pub fn tally(&mut self, step: usize, dims: Dims) -> &mut Tally {
        self.0.entry((step, dims)).or_default()
    }

    pub fn into_vec(self) -> Vec<Cell> {
        self.0
            .into_iter()
            .map(|((step, dims), tally)| Cell { step, dims, tally })
            .collect()
    }
}

/// One bucket of the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub step: usize,
    pub group: Option<String>,
    pub summary: Summary,
}

/// The answer's figures: buckets (every step, and with a grouping every group seen in the
/// range, zeros filled, groups by name with none last), the totals, and each group's totals.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub buckets: Vec<Bucket>,
    pub totals: Summary,
    pub groups: Vec<(Option<String>, Summary)>,
}

/// Adds up a store's cells into the answer's figures; more than [`MAX_BUCKETS`] buckets (steps
/// × groups) is refused.
pub fn figures(
    steps: usize,
    cells: &[Cell],
    group_by: Option<&GroupBy>,
) -> Result<Figures, Invalid> {
    let mut by_group: BTreeMap<GroupKey, Vec<Tally>> = BTreeMap::new();
    let mut totals = Tally::default();
    for cell in cells {
        let group = group_by.and_then(|g| g.group_of(&cell.dims));
        let per_step = by_group
            .entry(GroupKey(group))
            .or_insert_with(|| vec![Tally::default(); steps]);
        if let Some(tally) = per_step.get_mut(cell.step) {
            tally.add(&cell.tally);
            totals.add(&cell.tally);
        }
    }
    if by_group.is_empty() {
        by_group.insert(GroupKey(None), vec![Tally::default(); steps]);
    }
    let count = steps * by_group.len();
    if count > MAX_BUCKETS {
        return Err(Invalid::new(format!(
            "{steps} time steps × {} groups is {count} buckets, more than {MAX_BUCKETS}: narrow \
             the range, use a longer bucket or group by something with fewer values",
            by_group.len()
        )));
    }
    let mut buckets = Vec::with_capacity(count);
    for step in 0..steps {
        for (key, per_step) in &by_group {
            buckets.push(Bucket {
                step,
                group: key.0.clone(),
                summary: per_step[step].summary(),
            });
        }
    }
    let groups = by_group
        .into_iter()
        .map(|(key, per_step)| {
            let mut sum = Tally::default();
            per_step.iter().for_each(|t| sum.add(t));
            (key.0, sum.summary())
        })
        .collect();
    Ok(Figures {
        buckets,
        totals: totals.summary(),
        groups,
    })
}

/// Groups by name, the calls without one last.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupKey(Option<String>);

impl Ord for GroupKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
    }
}

impl PartialOrd for GroupKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests;
