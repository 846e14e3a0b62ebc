//! Seeds an embedded (SQLite) store for measuring `GET /stats` (driven by `bench/stats.sh`).
//!
//!   bench_stats [--db PATH] [--sessions N] [--until RFC3339] [--days D] [--tasks T]
//!
//! Settings also come from the environment (`DB`, `SESSIONS`, `UNTIL`, `DAYS`, `TASKS`,
//! `SQLITE_SYNCHRONOUS`); a flag wins over its variable. Defaults: 1,000,000 sessions started over
//! the 30 days before 2026-11-01T00:00:00Z, 256 writing tasks, `SQLITE_SYNCHRONOUS=normal` (the
//! only faster setting the store offers; `full` is the service's default). The file must not
//! exist yet.
//!
//! Every session goes through the store's own write path (`SqliteStore::open`, then
//! `SessionRepository::create_or_get` and `end`), so whatever the store maintains for its reads
//! (indexes, the change log, anything added for the stats) is maintained as the service would.
//! The tasks share one writer, whose group commit takes whatever they have queued.
//!
//! What is seeded, deterministically (xorshift64*, seeded per session from its index, so the
//! data does not depend on the order the tasks run in):
//! - start times uniform over the window, in rising order of the index (as calls arrive);
//! - session ids `call-<16 hex>`, a bijective mix of the index: random like real call ids, so
//!   the table (clustered by id) is in no relation to the start time;
//! - languages en-US 40%, es-ES 20%, fr-FR 15%, de-DE 15%, pt-BR 10%;
//! - metadata `{"campaign": "c-0".."c-19", "region": one of 8}`;
//! - each call lasts a log-normal duration (median 2 min, clamped to 10 s .. 2 h, millisecond
//!   precision); the calls still going at the window's end are left open (`initiated`: no
//!   events; a few hundred: the calls in progress), the others end with a reason: caller_hangup
//!   45%, agent_hangup 25%, transferred 12%, voicemail 8% (all `completed`), inactivity_timeout
//!   6%, error 3% (`failed`), and 1% `completed` without a reason;
//! - timers off, so the open sessions stay open (no sweeper end, no write while measuring);
//! - no events: `events.total` in the answers is 0.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use session_service::domain::{
    EndReason, JsonObject, Language, NewSession, SessionId, TerminalStatus, Timers, Timestamp,
};
use session_service::repo::sqlite::{SqliteConfig, SqliteStore, Synchronous};
use session_service::repo::{EndRequest, SessionRepository};

type Res<T> = Result<T, String>;

const LANGUAGES: [(&str, u32); 5] = [
    ("en-US", 40),
    ("es-ES", 20),
    ("fr-FR", 15),
    ("de-DE", 15),
    ("pt-BR", 10),
];
const REGIONS: [&str; 8] = [
    "eu-west",
    "eu-central",
    "eu-north",
    "us-east",
    "us-west",
    "sa-east",
    "ap-south",
    "ap-east",
];
const CAMPAIGNS: u64 = 20;
/// Reasons with their status and weight (per thousand ended sessions); `None`: no reason.
const REASONS: [(Option<&str>, TerminalStatus, u32); 7] = [
    (Some("caller_hangup"), TerminalStatus::Completed, 450),
    (Some("agent_hangup"), TerminalStatus::Completed, 250),
    (Some("transferred"), TerminalStatus::Completed, 120),
    (Some("voicemail"), TerminalStatus::Completed, 80),
    (Some("inactivity_timeout"), TerminalStatus::Failed, 60),
    (Some("error"), TerminalStatus::Failed, 30),
    (None, TerminalStatus::Completed, 10),
];
struct Settings {
    db: PathBuf,
    sessions: u64,
    until: Timestamp,
    days: u64,
    tasks: usize,
    synchronous: Synchronous,
}

fn settings() -> Res<Settings> {
    let mut flags = HashMap::new();
    let mut raw = std::env::args().skip(1);
    while let Some(key) = raw.next() {
        let Some(name) = key.strip_prefix("--") else {
            return Err(format!(
                "unexpected argument {key:?} (flags are --name value)"
            ));
        };
        let value = raw.next().ok_or_else(|| format!("{key} needs a value"))?;
        flags.insert(name.to_owned(), value);
    }
    let setting = |flag: &str, var: &str, default: &str| {
        flags
            .get(flag)
            .cloned()
            .or_else(|| std::env::var(var).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| default.to_owned())
    };
    let number = |flag: &str, var: &str, default: &str| {
        let raw = setting(flag, var, default);
        raw.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            format!("--{flag} ({var}): expected a positive whole number, got {raw:?}")
        })
    };
    let known = ["db", "sessions", "until", "days", "tasks"];
    if let Some(unknown) = flags.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!(
            "unknown flag --{unknown} (known: --{})",
            known.join(", --")
        ));
    }
    let until = setting("until", "UNTIL", "2026-11-01T00:00:00Z");
    let synchronous = match setting("", "SQLITE_SYNCHRONOUS", "normal").as_str() {
        "normal" => Synchronous::Normal,
        "full" => Synchronous::Full,
        other => {
            return Err(format!(
                "SQLITE_SYNCHRONOUS: expected full or normal, got {other:?}"
            ));
        }
    };
    Ok(Settings {
        db: PathBuf::from(setting("db", "DB", "bench-stats.db")),
        sessions: number("sessions", "SESSIONS", "1000000")?,
        until: Timestamp::parse(&until).map_err(|e| format!("--until {until:?}: {e}"))?,
        days: number("days", "DAYS", "30")?,
        tasks: usize::try_from(number("tasks", "TASKS", "256")?).map_err(|e| e.to_string())?,
        synchronous,
    })
}

/// splitmix64's finalizer: a bijection on u64, so distinct indexes give distinct values.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn for_session(index: u64) -> Self {
        // Never zero: xorshift stays at zero.
        Rng(mix(index ^ 0x5eed_2026_1101_0000) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn weighted<'a, T>(&mut self, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
        let total: u64 = items.iter().map(|i| u64::from(weight(i))).sum();
        let mut pick = self.below(total);
        for item in items {
            let w = u64::from(weight(item));
            if pick < w {
                return item;
            }
            pick -= w;
        }
        &items[items.len() - 1]
    }
}

/// One seeded session: what to create, and how it ends (if it does).
struct Planned {
    new: NewSession,
    end: Option<EndRequest>,
}

fn plan(index: u64, s: &Settings) -> Res<Planned> {
    let mut rng = Rng::for_session(index);
    let window_ms = s.days * 86_400_000;
    let from = s.until.millis() - window_ms as i64;
    // Stratified: session i starts in the i-th of N equal slices of the window, anywhere in it.
    let slice_start = u128::from(index) * u128::from(window_ms) / u128::from(s.sessions);
    let slice_end = u128::from(index + 1) * u128::from(window_ms) / u128::from(s.sessions);
    let offset = slice_start as u64 + rng.below((slice_end - slice_start).max(1) as u64);
    let started_at = Timestamp::from_millis(from + offset as i64).map_err(|e| e.to_string())?;
    let language = rng.weighted(&LANGUAGES, |(_, w)| *w).0;
    let metadata = json!({
        "campaign": format!("c-{}", rng.below(CAMPAIGNS)),
        "region": REGIONS[rng.below(REGIONS.len() as u64) as usize],
    });
    let new = NewSession {
        session_id: SessionId::parse(format!("call-{:016x}", mix(index)))
            .map_err(|e| e.to_string())?,
        language: Language::parse(language).map_err(|e| e.to_string())?,
        metadata: JsonObject::parse(metadata).map_err(|e| e.to_string())?,
        started_at,
        timers: Timers::default(),
        redact: None,
    };
    // Log-normal: median 120 s, sigma 1.1 (about 1 in 10 over 8 min), clamped to 10 s .. 2 h.
    let seconds = (120f64.ln() + 1.1 * rng.normal()).exp().clamp(10.0, 7200.0);
    let millis = (seconds * 1000.0) as i64;
    let (reason, status, _) = rng.weighted(&REASONS, |(_, _, w)| *w);
    // A call still going at the window's end stays open: the calls in progress now.
    let end = if started_at.millis() + millis > s.until.millis() {
        None
    } else {
        Some(EndRequest {
            status: *status,
            at: Timestamp::from_millis(started_at.millis() + millis).map_err(|e| e.to_string())?,
            reason: reason
                .map(EndReason::parse)
                .transpose()
                .map_err(|e| e.to_string())?,
        })
    };
    Ok(Planned { new, end })
}

async fn seed_one(store: &SqliteStore, index: u64, s: &Settings) -> Res<bool> {
    let planned = plan(index, s)?;
    let id = planned.new.session_id.clone();
    let created = store
        .create_or_get(planned.new)
        .await
        .map_err(|e| format!("create {id}: {e} ({e:?})"))?;
    if !created.created {
        return Err(format!("{id} was already stored: seed an empty file"));
    }
    let Some(end) = planned.end else {
        return Ok(false);
    };
    let ended = store
        .end(&id, end)
        .await
        .map_err(|e| format!("end {id}: {e} ({e:?})"))?;
    if !ended.ended_now {
        return Err(format!("{id} was not ended by this call"));
    }
    Ok(true)
}

async fn seed(store: SqliteStore, s: Arc<Settings>) -> Res<(u64, u64)> {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let ended = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let reporter = {
        let (done, total) = (done.clone(), s.sessions);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                let n = done.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64();
                println!(
                    "  {n}/{total} sessions ({:.0}%) in {secs:.0} s: {:.0} sessions/s",
                    n as f64 * 100.0 / total as f64,
                    n as f64 / secs
                );
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..s.tasks {
        let (store, s, next, done, ended) = (
            store.clone(),
            s.clone(),
            next.clone(),
            done.clone(),
            ended.clone(),
        );
        tasks.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= s.sessions {
                    return Ok::<(), String>(());
                }
                if seed_one(&store, index, &s).await? {
                    ended.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(()) => {}
            Err(e) => {
                // Stop handing out work; the other tasks finish the session they are on.
                next.store(s.sessions, Ordering::Relaxed);
                failure.get_or_insert(e);
            }
        }
    }
    reporter.abort();
    match failure {
        Some(e) => Err(e),
        None => Ok((done.load(Ordering::Relaxed), ended.load(Ordering::Relaxed))),
    }
}

fn run() -> Res<()> {
    let s = Arc::new(settings()?);
    if s.db.exists() {
        return Err(format!(
            "{} exists already: seeding needs a new file",
            s.db.display()
        ));
    }
    let from = Timestamp::from_millis(s.until.millis() - (s.days * 86_400_000) as i64)
        .map_err(|e| e.to_string())?;
    println!(
        "seeding {} sessions started in [{from}, {}) into {} through the store's write path \
         ({} tasks, SQLITE_SYNCHRONOUS={}); no events are appended",
        s.sessions,
        s.until,
        s.db.display(),
        s.tasks,
        match s.synchronous {
            Synchronous::Normal => "normal",
            Synchronous::Full => "full",
        },
    );
    let opened = SqliteStore::open(&SqliteConfig::new(s.db.clone(), s.synchronous))
        .map_err(|e| format!("open {}: {e} ({e:?})", s.db.display()))?;
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (done, ended) = runtime.block_on(seed(opened.store, s.clone()))?;
    drop(runtime);
    let written = started.elapsed();
    // Every clone of the store is gone: the writer checkpoints, closes, and ends.
    opened
        .writer
        .join()
        .map_err(|_| "the writer thread panicked".to_owned())?;
    let total = started.elapsed();
    println!(
        "seeded {done} sessions ({ended} ended, {} open, 0 events) in {:.1} s: {:.0} sessions/s \
         ({:.0} writes/s: creates and ends); closing took {:.1} s",
        done - ended,
        written.as_secs_f64(),
        done as f64 / written.as_secs_f64(),
        (done + ended) as f64 / written.as_secs_f64(),
        (total - written).as_secs_f64(),
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_stats: {e}");
            ExitCode::FAILURE
        }
    }
}
