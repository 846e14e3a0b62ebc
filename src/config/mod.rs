//! Every environment variable the service reads, with its default, in one place. A bad value
//! stops startup with a message naming the variable.

mod env;
mod vars;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use crate::api::auth::keys::{ApiKeys, KeyFileError};
use crate::domain::webhook::RetrySchedule;
use crate::domain::{Redact, Timers};
use crate::repo::mongo::MongoSettings;
use crate::repo::sqlite::{SqliteConfig, Synchronous};
use env::Env;
pub use vars::{DEFAULT_DATABASE_URL, DEFAULT_LOG_FILTER, VARIABLES, Var, help_text, variable};

#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub database: DatabaseConfig,
    pub max_body_bytes: usize,
    pub log_format: LogFormat,
    pub log_filter: String,
    /// The longest a request may take before it is answered with 503 `request_timeout`.
    pub request_timeout: Duration,
    /// How long in-flight requests may run on after SIGTERM/SIGINT before the process exits.
    pub shutdown_timeout: Duration,
    /// API keys; empty means no authentication (local use only).
    pub api_keys: ApiKeys,
    /// The keys of `API_KEYS` alone, and the `API_KEYS_FILE` re-read on SIGHUP.
    pub api_keys_inline: ApiKeys,
    pub api_keys_file: Option<PathBuf>,
    /// Whether `/metrics` needs an API key when keys are configured.
    pub metrics_require_key: bool,
    /// Origins allowed to call the API from a browser; empty means no CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
    /// The timers of a session created without its own.
    pub default_timers: Timers,
    /// What is replaced in event payloads before they are stored, for calls that chose nothing.
    pub redact: Redact,
    /// How long a deleted session's tombstone keeps its id taken, in seconds.
    pub tombstone_retention_seconds: u64,
    /// How long the change feed keeps changes, in seconds.
    pub changes_retention_seconds: u64,
    /// Ended sessions are erased this long after their end; `0` keeps them forever.
    pub retention_seconds: u64,
    /// How often the sweeper and the erasure work run.
    pub sweep_interval: Duration,
    /// A connection must send a complete request head this soon after its first byte.
    pub header_read_timeout: Duration,
    /// A connection idle this long between requests is closed.
    pub keepalive_timeout: Duration,
    /// At most this many connections are open; more wait in the listen backlog.
    pub max_connections: usize,
    pub http2_max_streams: u32,
    /// Requests per second and burst per API key (per client IP without keys); `None`: off.
    pub rate_limit: Option<RateLimitConfig>,
    /// Live streams open at most; beyond it 503 `too_many_streams`.
    /// Unset: as many as the connections leave room for (`app::stream_cap`).
    pub max_streams: Option<usize>,
    /// An idle live stream sends a comment this often.
    pub stream_keepalive: Duration,
    /// How often watched sessions are read for other processes' writes when no change feed
    /// reports them (SQLite; MongoDB while its change stream is down).
    pub stream_poll_interval: Duration,
    /// How webhooks are delivered (`WEBHOOK_*`).
    pub webhooks: WebhookConfig,
}

/// The `WEBHOOK_*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub timeout: Duration,
    pub retry_schedule: RetrySchedule,
    pub secret_overlap_seconds: u64,
    pub disable_after_seconds: u64,
    pub allow_private_networks: bool,
    pub max_in_flight: usize,
    pub per_endpoint: usize,
    pub retention_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

#[derive(Debug, Clone)]
pub enum DatabaseConfig {
    Sqlite(SqliteConfig),
    Mongo(MongoSettings),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(lookup);
        let whole_number = "expected a whole number from 1 to 1000000";
        let rate = "expected a whole number from 0 to 1000000";
        let seconds = "expected whole seconds (at most 100 years)";
        let timer = |name| {
            env.with(name, |raw| {
                raw.parse::<i64>()
                    .ok()
                    .and_then(|n| Timers::check(n).ok())
                    .ok_or_else(|| "expected 0 (off) or whole seconds from 1 to 31536000".into())
            })
        };
        let synchronous = env.one_of(
            "SQLITE_SYNCHRONOUS",
            &[("full", Synchronous::Full), ("normal", Synchronous::Normal)],
            "expected full or normal",
        )?;
        let reader_threads = env
            .optional_ranged(
                "SQLITE_READER_THREADS",
                1..=256,
                "expected a whole number from 1 to 256",
                "one per core",
            )?
            .unwrap_or_else(crate::repo::sqlite::default_reader_threads);
        let keys = api_keys(&env)?;
        Ok(Config {
            host: env.with("HOST", parse_host)?,
            port: env.ranged(
                "PORT",
                0..=u16::MAX,
                "expected a port number from 0 to 65535",
            )?,
            database: env.with("DATABASE_URL", |url| {
                parse_database_url(url, synchronous, reader_threads)
            })?,
            max_body_bytes: env.ranged(
                "MAX_BODY_BYTES",
                1024..=usize::MAX,
                "expected a whole number of bytes, at least 1024",
            )?,
            log_format: env.one_of(
                "LOG_FORMAT",
                &[("pretty", LogFormat::Pretty), ("json", LogFormat::Json)],
                "expected pretty or json",
            )?,
            log_filter: env.with("RUST_LOG", |filter| {
                tracing_subscriber::EnvFilter::try_new(filter)
                    .map(|_| filter.to_owned())
                    .map_err(|e| e.to_string())
            })?,
            request_timeout: env.millis("REQUEST_TIMEOUT_MS")?,
            shutdown_timeout: env.millis("SHUTDOWN_TIMEOUT_MS")?,
            api_keys: keys.all,
            api_keys_inline: keys.inline,
            api_keys_file: keys.file,
            metrics_require_key: env.one_of(
                "METRICS_REQUIRE_KEY",
                &[("true", true), ("false", false)],
                "expected true or false",
            )?,
            cors_allowed_origins: env.with("CORS_ALLOWED_ORIGINS", parse_origins)?,
            default_timers: Timers {
                inactivity_seconds: timer("SESSION_INACTIVITY_TIMEOUT_SECONDS")?,
                max_duration_seconds: timer("SESSION_MAX_DURATION_SECONDS")?,
            },
            redact: env.with("REDACT", |raw| Redact::parse_list(raw).map_err(|e| e.0))?,
            retention_seconds: env.ranged("RETENTION_SECONDS", 0..=CENTURY_SECONDS, seconds)?,
            tombstone_retention_seconds: env.ranged(
                "TOMBSTONE_RETENTION_SECONDS",
                0..=CENTURY_SECONDS,
                seconds,
            )?,
            changes_retention_seconds: env.ranged(
                "CHANGES_RETENTION_SECONDS",
                1..=CENTURY_SECONDS,
                seconds,
            )?,
            sweep_interval: env.millis("SWEEP_INTERVAL_MS")?,
            header_read_timeout: env.millis("HEADER_READ_TIMEOUT_MS")?,
            keepalive_timeout: env.millis("KEEPALIVE_TIMEOUT_MS")?,
            max_connections: env.ranged("MAX_CONNECTIONS", 1..=1_000_000, whole_number)?,
            http2_max_streams: env.ranged("HTTP2_MAX_STREAMS", 1..=1_000_000, whole_number)?,
            max_streams: env.optional_ranged(
                "MAX_STREAMS",
                1..=1_000_000,
                whole_number,
                "nine tenths of the connections",
            )?,
            stream_keepalive: Duration::from_secs(env.ranged(
                "STREAM_KEEPALIVE_SECONDS",
                1..=3600,
                "expected whole seconds from 1 to 3600",
            )?),
            stream_poll_interval: env.millis("STREAM_POLL_INTERVAL_MS")?,
            rate_limit: RateLimitConfig::from_counts(
                env.ranged("RATE_LIMIT_PER_SECOND", 0..=1_000_000, rate)?,
                env.ranged("RATE_LIMIT_BURST", 0..=1_000_000, rate)?,
            ),
            webhooks: WebhookConfig {
                timeout: env.millis("WEBHOOK_TIMEOUT_MS")?,
                retry_schedule: env.with("WEBHOOK_RETRY_SCHEDULE", |raw| {
                    RetrySchedule::parse(raw).map_err(|e| e.0)
                })?,
                secret_overlap_seconds: env.ranged(
                    "WEBHOOK_SECRET_OVERLAP_SECONDS",
                    0..=CENTURY_SECONDS,
                    seconds,
                )?,
                disable_after_seconds: env.ranged(
                    "WEBHOOK_DISABLE_AFTER_SECONDS",
                    1..=CENTURY_SECONDS,
                    seconds,
                )?,
                allow_private_networks: env.one_of(
                    "WEBHOOK_ALLOW_PRIVATE_NETWORKS",
                    &[("true", true), ("false", false)],
                    "expected true or false",
                )?,
                max_in_flight: env.ranged(
                    "WEBHOOK_MAX_IN_FLIGHT",
                    1..=10_000,
                    "expected a whole number from 1 to 10000",
                )?,
                per_endpoint: env.ranged(
                    "WEBHOOK_ENDPOINT_CONCURRENCY",
                    1..=1_000,
                    "expected a whole number from 1 to 1000",
                )?,
                retention_seconds: env.ranged(
                    "WEBHOOK_RETENTION_SECONDS",
                    1..=CENTURY_SECONDS,
                    seconds,
                )?,
            },
        })
    }
}

/// The longest retention the settings take, in seconds.
const CENTURY_SECONDS: u64 = 100 * 365 * 24 * 3600;

impl RateLimitConfig {
    /// `None` (off) for a rate of 0; a burst of 0 is the rate.
    fn from_counts(per_second: u32, burst: u32) -> Option<Self> {
        NonZeroU32::new(per_second).map(|per_second| RateLimitConfig {
            per_second,
            burst: NonZeroU32::new(burst).unwrap_or(per_second),
        })
    }
}

/// The keys of `API_KEYS`, the file of `API_KEYS_FILE` and both together.
struct Keys {
    all: ApiKeys,
    inline: ApiKeys,
    file: Option<PathBuf>,
}

fn api_keys<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Keys, ConfigError> {
    // Keys are secrets: errors name the variable but never echo its value.
    let inline = ApiKeys::parse(&env.var("API_KEYS")).map_err(|reason| ConfigError {
        variable: "API_KEYS",
        value: "<redacted>".into(),
        reason,
    })?;
    let path = env.var("API_KEYS_FILE");
    let file = (!path.is_empty()).then(|| PathBuf::from(path));
    let all = match &file {
        Some(path) => inline.with_file(path)?,
        None => inline.clone(),
    };
    Ok(Keys { all, inline, file })
}

impl From<KeyFileError> for ConfigError {
    fn from(e: KeyFileError) -> Self {
        ConfigError {
            variable: "API_KEYS_FILE",
            value: e.path,
            reason: e.reason,
        }
    }
}

fn parse_host(raw: &str) -> Result<IpAddr, String> {
    match raw {
        "localhost" => Ok(IpAddr::from([127, 0, 0, 1])),
        raw => raw
            .parse()
            .map_err(|_| "expected an IP address such as 127.0.0.1 or 0.0.0.0".into()),
    }
}

/// Browser origins: each `http://` or `https://` and visible ASCII.
fn parse_origins(raw: &str) -> Result<Vec<String>, String> {
    let origins = env::list(raw);
    match origins.iter().find(|o| {
        !(o.starts_with("http://") || o.starts_with("https://"))
            || !o.bytes().all(|b| b.is_ascii_graphic())
    }) {
        Some(origin) => Err(format!(
            "{origin:?} is not an origin such as https://app.example.com"
        )),
        None => Ok(origins),
    }
}

fn parse_database_url(
    url: &str,
    synchronous: Synchronous,
    reader_threads: usize,
) -> Result<DatabaseConfig, String> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err("expected sqlite://PATH with a file path".into());
        }
        return Ok(DatabaseConfig::Sqlite(SqliteConfig {
            path: PathBuf::from(path),
            synchronous,
            reader_threads,
        }));
    }
    if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") {
        return Ok(DatabaseConfig::Mongo(MongoSettings {
            uri: url.to_owned(),
            database: mongo_database_name(url)?,
        }));
    }
    Err("expected sqlite://PATH, mongodb://HOST[:PORT]/DB or mongodb+srv://HOST/DB".into())
}

/// The database named in the URI's path, or `conversations`.
fn mongo_database_name(uri: &str) -> Result<String, String> {
    let after_scheme = uri
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let path = after_scheme
        .split_once('/')
        .map(|(_, p)| p)
        .unwrap_or_default();
    let name = path.split('?').next().unwrap_or_default();
    if name.is_empty() {
        return Ok("conversations".into());
    }
    if name.len() > 63
        || name.contains(['/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?'])
    {
        return Err(format!("{name:?} is not a valid MongoDB database name"));
    }
    Ok(name.to_owned())
}

impl DatabaseConfig {
    /// A description for logs, with credentials removed.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseConfig::Sqlite(c) => format!("sqlite ({})", c.path.display()),
            DatabaseConfig::Mongo(m) => {
                let (scheme, rest) = m.uri.split_once("://").unwrap_or(("mongodb", &m.uri));
                let hosts = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
                let hosts = hosts.split(['/', '?']).next().unwrap_or_default();
                format!("mongodb ({scheme}://{hosts}, database {})", m.database)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::api::auth::keys::Scope;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_give_a_local_sqlite_service_on_port_3000() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.max_body_bytes, 1_048_576);
        let DatabaseConfig::Sqlite(s) = c.database else {
            panic!("expected sqlite")
        };
        assert_eq!(s.path, PathBuf::from("data/sessions.db"));
        assert_eq!(s.synchronous, Synchronous::Full);
    }

    #[test]
    fn the_table_lists_exactly_the_variables_parsing_reads() {
        let asked = std::cell::RefCell::new(Vec::new());
        Config::from_lookup(|name| {
            asked.borrow_mut().push(name.to_owned());
            None
        })
        .unwrap();
        let mut asked = asked.into_inner();
        asked.sort();
        asked.dedup();
        let mut listed: Vec<String> = VARIABLES.iter().map(|v| v.name.to_owned()).collect();
        listed.sort();
        assert_eq!(asked, listed);
    }

    #[test]
    fn help_names_every_variable_with_its_default() {
        let help = help_text();
        for v in VARIABLES {
            assert!(help.contains(v.name), "{} is missing from --help", v.name);
            assert!(help.contains(v.default), "{}'s default is missing", v.name);
        }
    }

    #[test]
    fn the_embedded_store_has_a_reader_per_core_unless_told_otherwise() {
        let readers = |vars: &[(&str, &str)]| match Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
        .map(|c| c.database)
        {
            Ok(DatabaseConfig::Sqlite(s)) => s.reader_threads,
            other => panic!("{other:?}"),
        };
        assert_eq!(readers(&[]), crate::repo::sqlite::default_reader_threads());
        assert!(readers(&[]) >= 1);
        assert_eq!(readers(&[("SQLITE_READER_THREADS", "7")]), 7);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("PORT", "70000"),
            ("HOST", "nowhere"),
            ("MAX_BODY_BYTES", "ten"),
            ("LOG_FORMAT", "xml"),
            ("DATABASE_URL", "postgres://x"),
            ("SQLITE_SYNCHRONOUS", "off"),
            ("SQLITE_READER_THREADS", "0"),
            ("SQLITE_READER_THREADS", "257"),
            ("SQLITE_READER_THREADS", "many"),
            ("CHANGES_RETENTION_SECONDS", "0"),
            ("REDACT", "iban"),
            ("RUST_LOG", "session_service=loud"),
            ("REQUEST_TIMEOUT_MS", "0"),
            ("SHUTDOWN_TIMEOUT_MS", "soon"),
            ("API_KEYS", "short"),
            ("API_KEYS_FILE", "/nonexistent/keys"),
            ("METRICS_REQUIRE_KEY", "maybe"),
            ("CORS_ALLOWED_ORIGINS", "*"),
            ("SESSION_INACTIVITY_TIMEOUT_SECONDS", "31536001"),
            ("SESSION_MAX_DURATION_SECONDS", "-1"),
            ("RETENTION_SECONDS", "soon"),
            ("TOMBSTONE_RETENTION_SECONDS", "-5"),
            ("SWEEP_INTERVAL_MS", "0"),
            ("RATE_LIMIT_PER_SECOND", "-1"),
            ("HEADER_READ_TIMEOUT_MS", "0"),
            ("KEEPALIVE_TIMEOUT_MS", "x"),
            ("MAX_CONNECTIONS", "0"),
            ("MAX_STREAMS", "0"),
            ("STREAM_KEEPALIVE_SECONDS", "0"),
            ("STREAM_POLL_INTERVAL_MS", "never"),
            ("RATE_LIMIT_BURST", "lots"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var);
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn api_keys_are_read_from_the_variable_and_never_shown() {
        let c = config(&[("API_KEYS", "key-aaaaaaaaaaaaaaaa, key-bbbbbbbbbbbbbbbb")]).unwrap();
        assert_eq!(c.api_keys.len(), 2);
        assert!(!format!("{c:?}").contains("key-aaaa"));
        let err = config(&[("API_KEYS", "tooshort")]).unwrap_err();
        assert!(!err.to_string().contains("tooshort"), "{err}");
        assert!(config(&[]).unwrap().api_keys.is_empty());
    }

    #[test]
    fn api_keys_carry_a_scope_and_default_to_write() {
        let c = config(&[(
            "API_KEYS",
            "read:key-aaaaaaaaaaaaaaaa,key-bbbbbbbbbbbbbbbb, admin:key-cccccccccccccccc,write:key-dddddddddddddddd",
        )])
        .unwrap();
        let scopes: Vec<(Scope, Vec<u8>)> =
            c.api_keys.exposed().map(|(s, k)| (s, k.to_vec())).collect();
        assert_eq!(
            scopes,
            vec![
                (Scope::Read, b"key-aaaaaaaaaaaaaaaa".to_vec()),
                (Scope::Write, b"key-bbbbbbbbbbbbbbbb".to_vec()),
                (Scope::Admin, b"key-cccccccccccccccc".to_vec()),
                (Scope::Write, b"key-dddddddddddddddd".to_vec()),
            ]
        );
        assert_eq!(c.api_keys.count(Scope::Write), 2);
        assert!(
            config(&[("API_KEYS", "read:short")]).is_err(),
            "the key after the scope must still be 16+ characters"
        );
    }

    #[test]
    fn api_keys_file_is_added_and_can_be_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "# rotated\nread:file-key-aaaaaaaaaaaa\n").unwrap();
        let shown = path.display().to_string();
        let c = config(&[
            ("API_KEYS", "key-bbbbbbbbbbbbbbbb"),
            ("API_KEYS_FILE", &shown),
        ])
        .unwrap();
        assert_eq!(c.api_keys.len(), 2);
        assert_eq!(c.api_keys.count(Scope::Read), 1);
        std::fs::write(
            &path,
            "admin:file-key-cccccccccccc\nfile-key-dddddddddddd\n",
        )
        .unwrap();
        let reread = c.api_keys_inline.with_file(&path).unwrap();
        assert_eq!(reread.len(), 3);
        assert_eq!(reread.count(Scope::Admin), 1);
        assert_eq!(reread.count(Scope::Write), 2);
    }

    #[test]
    fn rate_limits_are_off_by_default_and_the_burst_defaults_to_the_rate() {
        assert_eq!(config(&[]).unwrap().rate_limit, None);
        let limit = config(&[("RATE_LIMIT_PER_SECOND", "20")])
            .unwrap()
            .rate_limit
            .unwrap();
        assert_eq!((limit.per_second.get(), limit.burst.get()), (20, 20));
        let limit = config(&[("RATE_LIMIT_PER_SECOND", "5"), ("RATE_LIMIT_BURST", "50")])
            .unwrap()
            .rate_limit
            .unwrap();
        assert_eq!((limit.per_second.get(), limit.burst.get()), (5, 50));
    }

    #[test]
    fn mongodb_urls_name_their_database() {
        let db = |url: &str| match config(&[("DATABASE_URL", url)]).unwrap().database {
            DatabaseConfig::Mongo(m) => m.database,
            DatabaseConfig::Sqlite(_) => panic!("expected mongo"),
        };
        assert_eq!(db("mongodb://localhost:27017/calls"), "calls");
        assert_eq!(db("mongodb://localhost:27017"), "conversations");
        assert_eq!(db("mongodb://u:p@h1,h2/?replicaSet=rs0"), "conversations");
        assert_eq!(
            db("mongodb+srv://cluster.example.net/calls?retryWrites=true"),
            "calls"
        );
    }

    #[test]
    fn redaction_hides_credentials() {
        let c = config(&[("DATABASE_URL", "mongodb://user:secret@db:27017/calls")]).unwrap();
        let shown = c.database.redacted();
        assert!(
            !shown.contains("secret") && !shown.contains("user"),
            "{shown}"
        );
        assert!(shown.contains("db:27017"));
    }
}
