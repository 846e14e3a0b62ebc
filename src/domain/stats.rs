//! Call analytics' rules, written once for both stores: the time steps of a range in a time zone,
//! the tally of the calls that started in one step (and one group), and the figures answered from
//! it. A store only counts; what a step is, which group a call is in and what a percentile is
//! are decided here.

use std::collections::{BTreeMap, HashMap, HashSet};

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
                Some(key) if super::is_metadata_key(key) => Ok(GroupBy::Metadata(key.to_owned())),
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
/// one holding the last instant before `to`. More than [`MAX_BUCKETS`] is refused. A refusal
/// names the parameter it is about (`from`, `to` or `bucket`).
pub fn time_steps(
    from: Timestamp,
    to: Timestamp,
    step: Step,
    zone: &Zone,
) -> Result<Vec<TimeStep>, (&'static str, Invalid)> {
    if from >= to {
        return Err(("to", Invalid::new("from must be before to")));
    }
    // The step holding `from` begins before the years the zone can represent, or the last
    // step would end after them.
    let beyond = |field| {
        move || {
            (
                field,
                Invalid::new("the range's steps reach outside the years the zone can represent"),
            )
        }
    };
    let at = |millis: i64| {
        jiff::Timestamp::from_millisecond(millis)
            .map(|t| t.to_zoned_datetime(zone.tz.clone()))
            .map_err(|_| beyond("from")())
    };
    let start_of = |z: &jiff::ZonedDateTime| match step {
        Step::Day => z.start_of_day(),
        Step::Hour => z.round(
            ZonedDateTimeRound::new()
                .smallest(Unit::Hour)
                .mode(RoundMode::Trunc),
        ),
    };
    let mut start = start_of(&at(from.millis())?).map_err(|_| beyond("from")())?;
    let mut steps = Vec::new();
    loop {
        let next = next_start(&start, step, zone).ok_or_else(beyond("to"))?;
        let (lo, hi) = (
            start.timestamp().as_millisecond(),
            next.timestamp().as_millisecond(),
        );
        if steps.len() == MAX_BUCKETS {
            return Err((
                "bucket",
                Invalid::new(format!(
                    "spans more than {MAX_BUCKETS} {}s: narrow the range or use a longer bucket",
                    step.as_str()
                )),
            ));
        }
        steps.push(TimeStep {
            start: start.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            from: Timestamp::from_millis(lo.max(from.millis())).map_err(|_| beyond("from")())?,
            to: Timestamp::from_millis(hi.min(to.millis())).map_err(|_| beyond("to")())?,
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

/// Durations below this many seconds (half an hour: most calls) are counted in a plain array,
/// the rest in a sorted map: adding up a month of calls is mostly incrementing counters, and a
/// tally holds at most 14 KB of array.
const DENSE_SECONDS: u64 = 1_800;

/// The calls of one step and group, counted: how many, their events, and the whole-second
/// durations of those that ended (`duration → calls`).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub calls: u64,
    pub events: u64,
    /// `dense[s]`: the calls of `s` seconds, for `s < DENSE_SECONDS` (as long as needed).
    dense: Vec<u64>,
    long: BTreeMap<u64, u64>,
}

impl PartialEq for Tally {
    fn eq(&self, other: &Self) -> bool {
        (self.calls, self.events) == (other.calls, other.events)
            && self.durations().eq(other.durations())
    }
}

impl Tally {
    /// `calls` open calls with `events` events between them.
    pub fn open(calls: u64, events: u64) -> Tally {
        Tally {
            calls,
            events,
            ..Tally::default()
        }
    }

    /// `calls` ended calls of `duration` seconds each, with `events` events between them.
    pub fn ended(duration: u64, calls: u64, events: u64) -> Tally {
        let mut tally = Tally::open(calls, events);
        tally.add_durations(duration, calls);
        tally
    }

    /// Counts `calls` more ended calls of `seconds` (their number and events are the caller's
    /// to add).
    pub fn add_durations(&mut self, seconds: u64, calls: u64) {
        if seconds < DENSE_SECONDS {
            let at = seconds as usize;
            if self.dense.len() <= at {
                self.dense.resize(at + 1, 0);
            }
            self.dense[at] += calls;
        } else {
            *self.long.entry(seconds).or_default() += calls;
        }
    }

    pub fn add(&mut self, other: &Tally) {
        self.calls += other.calls;
        self.events += other.events;
        if self.dense.len() < other.dense.len() {
            self.dense.resize(other.dense.len(), 0);
        }
        for (mine, theirs) in self.dense.iter_mut().zip(&other.dense) {
            *mine += theirs;
        }
        for (&seconds, &calls) in &other.long {
            *self.long.entry(seconds).or_default() += calls;
        }
    }

    /// `(seconds, calls)` of the ended calls, shortest first.
    pub fn durations(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let dense = self.dense.iter().enumerate();
        dense
            .filter(|(_, calls)| **calls > 0)
            .map(|(seconds, calls)| (seconds as u64, *calls))
            .chain(self.long.iter().map(|(s, c)| (*s, *c)))
    }

    /// The calls that ended.
    pub fn ended_calls(&self) -> u64 {
        self.dense.iter().sum::<u64>() + self.long.values().sum::<u64>()
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
                max: self.durations().last().map_or(0, |(seconds, _)| seconds),
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
        for (duration, calls) in self.durations() {
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

/// What a store counted: the calls of step `step` in group `group` (`None` without a grouping).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub step: usize,
    pub group: Option<String>,
    pub tally: Tally,
}

/// The step of `bounds` (`bounds[i] <= t < bounds[i + 1]`) that `t` falls in, if any.
pub fn step_of(bounds: &[Timestamp], t: Timestamp) -> Option<usize> {
    let after = bounds.partition_point(|b| *b <= t);
    (after >= 1 && after < bounds.len()).then(|| after - 1)
}

/// Cells added up as a store reads them, by step and group (the calls' other dimensions are
/// dropped as they are read), so that what it holds grows with the steps, groups and distinct
/// durations, not with the calls read. Groups past what an answer can hold are not kept: once
/// there are more than [`MAX_BUCKETS`] / steps, the calls of further groups are dropped (the
/// answer is refused anyway), so a grouping by a key with a value per call stays bounded.
#[derive(Debug, Default)]
pub struct Cells {
    group_by: Option<GroupBy>,
    max_groups: usize,
    groups: HashSet<Option<String>>,
    cells: HashMap<(usize, Option<String>), Tally>,
    dropped: Tally,
}

impl Cells {
    /// For `steps` steps grouped by `group_by`.
    pub fn new(group_by: Option<&GroupBy>, steps: usize) -> Cells {
        Cells {
            group_by: group_by.cloned(),
            max_groups: MAX_BUCKETS / steps.max(1) + 1,
            ..Cells::default()
        }
    }

    pub fn add(&mut self, step: usize, dims: &Dims, tally: &Tally) {
        self.tally(step, dims).add(tally);
    }

    /// The tally of `step` and the group of `dims`, to add to in place.
    pub fn tally(&mut self, step: usize, dims: &Dims) -> &mut Tally {
        let group = self.group_by.as_ref().and_then(|g| g.group_of(dims));
        if !self.groups.contains(&group) {
            if self.groups.len() == self.max_groups {
                return &mut self.dropped;
            }
            self.groups.insert(group.clone());
        }
        self.cells.entry((step, group)).or_default()
    }

    pub fn into_vec(self) -> Vec<Cell> {
        self.cells
            .into_iter()
            .map(|((step, group), tally)| Cell { step, group, tally })
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
pub fn figures(steps: usize, cells: &[Cell]) -> Result<Figures, Invalid> {
    let mut by_group: BTreeMap<GroupKey, Vec<Tally>> = BTreeMap::new();
    let mut totals = Tally::default();
    for cell in cells {
        let per_step = by_group
            .entry(GroupKey(cell.group.clone()))
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
            "{steps} time steps × {}{} groups is {count} buckets, more than {MAX_BUCKETS}: \
             narrow the range, use a longer bucket or group by something with fewer values",
            // As many as `Cells` keeps: there may have been more.
            if by_group.len() == MAX_BUCKETS / steps.max(1) + 1 {
                "at least "
            } else {
                ""
            },
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
