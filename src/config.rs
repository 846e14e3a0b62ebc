//! Every environment variable the service reads, with its default, in one place. A bad value
//! stops startup with a message naming the variable.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::domain::Timers;
use crate::repo::mongo::MongoSettings;
use crate::repo::sqlite::{SqliteConfig, Synchronous};

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
    /// How long a deleted session's tombstone keeps its id taken, in seconds.
    pub tombstone_retention_seconds: u64,
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
    /// Requests per second and burst per API key (per client IP without keys); `None`: off.
    pub rate_limit: Option<RateLimitConfig>,
    /// Live streams open at most; beyond it 503 `too_many_streams`.
    pub max_streams: usize,
    /// An idle live stream sends a comment this often.
    pub stream_keepalive: Duration,
    /// How often watched sessions are read for other processes' writes when no change feed
    /// reports them (SQLite; MongoDB while its change stream is down).
    pub stream_poll_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub per_second: std::num::NonZeroU32,
    pub burst: std::num::NonZeroU32,
}

/// What a key may do. Each scope includes the ones before it: `read` (every GET), `write`
/// (also creating, appending and completing), `admin` (also erasing a session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Read = 1,
    Write = 2,
    Admin = 3,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// The scope whose [`Scope::as_u8`] is `n`, if any.
    pub fn from_u8(n: u8) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_u8() == n)
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// The configured API keys with their scopes, held as secrets: neither `Debug` nor logs can
/// show them.
#[derive(Clone, Default)]
pub struct ApiKeys(Vec<(Scope, SecretString)>);

impl ApiKeys {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// How many keys have `scope`.
    pub fn count(&self, scope: Scope) -> usize {
        self.0.iter().filter(|(s, _)| *s == scope).count()
    }

    /// The keys' scopes and bytes, for the constant-time comparison in `api::auth` and nothing
    /// else.
    pub fn exposed(&self) -> impl Iterator<Item = (Scope, &[u8])> {
        self.0
            .iter()
            .map(|(scope, k)| (*scope, k.expose_secret().as_bytes()))
    }

    /// The keys of `API_KEYS` with those of the file at `path` (read now) added. Errors name the
    /// file, never a key. Used at startup and on SIGHUP.
    pub fn with_file(&self, path: &std::path::Path) -> Result<ApiKeys, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            variable: "API_KEYS_FILE",
            value: shown.clone(),
            reason: format!("cannot read it: {e}"),
        })?;
        let mut keys = self.0.clone();
        keys.extend(parse_keys(&text).map_err(|reason| ConfigError {
            variable: "API_KEYS_FILE",
            value: shown,
            reason,
        })?);
        Ok(ApiKeys(keys))
    }
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} configured)", self.0.len())
    }
}

/// Keys are separated by commas or newlines; blank entries and `#` comment lines are skipped.
/// An entry may start with its scope, `read:`, `write:` or `admin:`; without one it is `write`.
fn parse_keys(text: &str) -> Result<Vec<(Scope, SecretString)>, String> {
    let keys: Vec<(Scope, &str)> = text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|k| !k.is_empty() && !k.starts_with('#'))
        .map(|entry| {
            Scope::ALL
                .into_iter()
                .find_map(|scope| {
                    entry
                        .strip_prefix(scope.name())
                        .and_then(|rest| rest.strip_prefix(':'))
                        .map(|key| (scope, key))
                })
                .unwrap_or((Scope::Write, entry))
        })
        .collect();
    match keys
        .iter()
        .find(|(_, k)| k.len() < 16 || !k.bytes().all(|b| b.is_ascii_graphic()))
    {
        Some(_) => Err("every key must be at least 16 visible ASCII characters".into()),
        None => Ok(keys
            .into_iter()
            .map(|(scope, k)| (scope, SecretString::from(k)))
            .collect()),
    }
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

/// One environment variable the service reads: its name, its default as a user would write it
/// (empty: unset), and one line of help. [`VARIABLES`] lists them all; parsing reads only
/// through it, and `--help` and the deployment checks are made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/sessions.db";
pub const DEFAULT_LOG_FILTER: &str = "session_service=info,tower_http=info";

/// Every environment variable the service reads, in the order `--help` lists them.
pub const VARIABLES: &[Var] = &[
    Var {
        name: "HOST",
        default: "127.0.0.1",
        help: "listen address (0.0.0.0: every interface)",
    },
    Var {
        name: "PORT",
        default: "3000",
        help: "listen port (0: any free port)",
    },
    Var {
        name: "DATABASE_URL",
        default: DEFAULT_DATABASE_URL,
        help: "sqlite://PATH, or mongodb://HOST[:PORT]/DB (or mongodb+srv://)",
    },
    Var {
        name: "SQLITE_SYNCHRONOUS",
        default: "full",
        help: "full | normal (full: an acknowledged write survives power loss)",
    },
    Var {
        name: "MAX_BODY_BYTES",
        default: "1048576",
        help: "larger request bodies get 413 (at least 1024)",
    },
    Var {
        name: "LOG_FORMAT",
        default: "pretty",
        help: "pretty | json",
    },
    Var {
        name: "RUST_LOG",
        default: DEFAULT_LOG_FILTER,
        help: "log filter (tracing EnvFilter syntax)",
    },
    Var {
        name: "REQUEST_TIMEOUT_MS",
        default: "15000",
        help: "a request taking longer gets 503 request_timeout",
    },
    Var {
        name: "SHUTDOWN_TIMEOUT_MS",
        default: "20000",
        help: "in-flight requests may finish this long after SIGTERM",
    },
    Var {
        name: "API_KEYS",
        default: "",
        help: "comma-separated Bearer keys (16+ visible ASCII each), each optionally read:KEY, write:KEY (the default) or admin:KEY; unset: no auth",
    },
    Var {
        name: "API_KEYS_FILE",
        default: "",
        help: "a file of keys, one per line (# comments, scopes as in API_KEYS), added to API_KEYS; re-read on SIGHUP",
    },
    Var {
        name: "METRICS_REQUIRE_KEY",
        default: "true",
        help: "true | false: whether /metrics needs a key when keys are set",
    },
    Var {
        name: "SESSION_INACTIVITY_TIMEOUT_SECONDS",
        default: "3600",
        help: "a session without events this long ends (failed, inactivity_timeout); 0: off",
    },
    Var {
        name: "SESSION_MAX_DURATION_SECONDS",
        default: "0",
        help: "a session this long after its start ends (failed, max_duration_exceeded); 0: off",
    },
    Var {
        name: "RETENTION_SECONDS",
        default: "0",
        help: "erase sessions this long after they ended; 0: keep forever",
    },
    Var {
        name: "TOMBSTONE_RETENTION_SECONDS",
        default: "2592000",
        help: "a deleted session's id stays taken (410/409) this long",
    },
    Var {
        name: "SWEEP_INTERVAL_MS",
        default: "1000",
        help: "how often timers, retention and erasure are applied",
    },
    Var {
        name: "HEADER_READ_TIMEOUT_MS",
        default: "10000",
        help: "a connection that does not send a whole request head this soon is closed",
    },
    Var {
        name: "KEEPALIVE_TIMEOUT_MS",
        default: "75000",
        help: "a connection idle this long between requests is closed",
    },
    Var {
        name: "MAX_CONNECTIONS",
        default: "10000",
        help: "open connections at most (capped by the open files limit); more wait in the backlog",
    },
    Var {
        name: "MAX_STREAMS",
        default: "10000",
        help: "live event streams open at most; beyond it 503 too_many_streams",
    },
    Var {
        name: "STREAM_KEEPALIVE_SECONDS",
        default: "15",
        help: "an idle live event stream sends a comment this often",
    },
    Var {
        name: "STREAM_POLL_INTERVAL_MS",
        default: "1000",
        help: "how often live streams look for other processes' writes without a change feed",
    },
    Var {
        name: "RATE_LIMIT_PER_SECOND",
        default: "0",
        help: "requests per second per API key (per client IP without keys), beyond it 429; 0: off",
    },
    Var {
        name: "RATE_LIMIT_BURST",
        default: "0",
        help: "requests a client may send at once above the rate; 0: RATE_LIMIT_PER_SECOND",
    },
    Var {
        name: "CORS_ALLOWED_ORIGINS",
        default: "",
        help: "comma-separated browser origins allowed (CORS); unset: none",
    },
];

/// The variable named `name` in [`VARIABLES`].
pub fn variable(name: &str) -> Option<&'static Var> {
    VARIABLES.iter().find(|v| v.name == name)
}

/// The configuration part of `--help`: every variable with its default and help, from [`VARIABLES`].
pub fn help_text() -> String {
    let width = VARIABLES.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut text =
        String::from("Configuration is read from the environment (default in brackets):\n");
    for v in VARIABLES {
        let default = if v.default.is_empty() {
            "unset"
        } else {
            v.default
        };
        text.push_str(&format!(
            "  {:width$}  {}\n  {:width$}  [{default}]\n",
            v.name, v.help, ""
        ));
    }
    text
}

/// Reads variables through a lookup, falling back to the table's defaults. A name that is not in
/// [`VARIABLES`] is a bug; it reads as unset and a unit test catches it.
struct Env<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// `(name, value)`: the value set, or the default.
    fn get(&self, name: &'static str) -> (&'static str, String) {
        let default = variable(name).map(|v| v.default).unwrap_or_default();
        let value = (self.lookup)(name).unwrap_or_else(|| default.to_owned());
        (name, value)
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup };
        let var = |name: &'static str| env.get(name);
        let bad = |(variable, value): (&'static str, String), reason: &str| ConfigError {
            variable,
            value,
            reason: reason.to_owned(),
        };

        let host = var("HOST");
        let host = match host.1.as_str() {
            "localhost" => IpAddr::from([127, 0, 0, 1]),
            raw => raw.parse().map_err(|_| {
                bad(
                    host.clone(),
                    "expected an IP address such as 127.0.0.1 or 0.0.0.0",
                )
            })?,
        };
        let port = var("PORT");
        let port = port
            .1
            .parse::<u16>()
            .map_err(|_| bad(port.clone(), "expected a port number from 0 to 65535"))?;
        let max_body = var("MAX_BODY_BYTES");
        let max_body_bytes = match max_body.1.parse::<usize>() {
            Ok(n) if n >= 1024 => n,
            _ => {
                return Err(bad(
                    max_body,
                    "expected a whole number of bytes, at least 1024",
                ));
            }
        };
        let log_format = var("LOG_FORMAT");
        let log_format = match log_format.1.as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            _ => return Err(bad(log_format, "expected pretty or json")),
        };
        let log_filter = var("RUST_LOG");
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_filter.1) {
            return Err(bad(log_filter, &e.to_string()));
        }
        let log_filter = log_filter.1;
        let sync = var("SQLITE_SYNCHRONOUS");
        let synchronous = match sync.1.as_str() {
            "full" => Synchronous::Full,
            "normal" => Synchronous::Normal,
            _ => return Err(bad(sync, "expected full or normal")),
        };
        let url = var("DATABASE_URL");
        let database =
            parse_database_url(&url.1, synchronous).map_err(|reason| bad(url.clone(), &reason))?;

        let millis = |name: &'static str| {
            let raw = var(name);
            match raw.1.parse::<u64>() {
                Ok(ms) if ms >= 1 => Ok(Duration::from_millis(ms)),
                _ => Err(bad(
                    raw,
                    "expected a whole number of milliseconds, at least 1",
                )),
            }
        };
        let request_timeout = millis("REQUEST_TIMEOUT_MS")?;
        let shutdown_timeout = millis("SHUTDOWN_TIMEOUT_MS")?;

        // Keys are secrets: errors name the variable but never echo its value.
        let api_keys_inline =
            ApiKeys(
                parse_keys(&var("API_KEYS").1).map_err(|reason| ConfigError {
                    variable: "API_KEYS",
                    value: "<redacted>".into(),
                    reason,
                })?,
            );
        let (_, path) = var("API_KEYS_FILE");
        let api_keys_file = (!path.is_empty()).then(|| PathBuf::from(path));
        let api_keys = match &api_keys_file {
            Some(path) => api_keys_inline.with_file(path)?,
            None => api_keys_inline.clone(),
        };
        let metrics_key = var("METRICS_REQUIRE_KEY");
        let metrics_require_key = match metrics_key.1.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(bad(metrics_key, "expected true or false")),
        };
        let cors = var("CORS_ALLOWED_ORIGINS");
        let cors_allowed_origins: Vec<String> = cors
            .1
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(origin) = cors_allowed_origins.iter().find(|o| {
            !(o.starts_with("http://") || o.starts_with("https://"))
                || !o.bytes().all(|b| b.is_ascii_graphic())
        }) {
            let reason = format!("{origin:?} is not an origin such as https://app.example.com");
            return Err(bad(cors, &reason));
        }

        let timer = |name: &'static str| {
            let raw = var(name);
            raw.1
                .parse::<i64>()
                .ok()
                .and_then(|n| Timers::check(n).ok())
                .ok_or_else(|| {
                    bad(
                        raw.clone(),
                        "expected 0 (off) or whole seconds from 1 to 31536000",
                    )
                })
        };
        let default_timers = Timers {
            inactivity_seconds: timer("SESSION_INACTIVITY_TIMEOUT_SECONDS")?,
            max_duration_seconds: timer("SESSION_MAX_DURATION_SECONDS")?,
        };
        let seconds = |name: &'static str| {
            let raw = var(name);
            raw.1
                .parse::<u64>()
                .ok()
                .filter(|s| *s <= 100 * 365 * 24 * 3600)
                .ok_or_else(|| bad(raw.clone(), "expected whole seconds (at most 100 years)"))
        };
        let retention_seconds = seconds("RETENTION_SECONDS")?;
        let tombstone_retention_seconds = seconds("TOMBSTONE_RETENTION_SECONDS")?;
        let sweep_interval = millis("SWEEP_INTERVAL_MS")?;
        let header_read_timeout = millis("HEADER_READ_TIMEOUT_MS")?;
        let keepalive_timeout = millis("KEEPALIVE_TIMEOUT_MS")?;
        let max = var("MAX_CONNECTIONS");
        let max_connections = max
            .1
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| bad(max.clone(), "expected a whole number from 1 to 1000000"))?;
        let max = var("MAX_STREAMS");
        let max_streams = max
            .1
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| bad(max.clone(), "expected a whole number from 1 to 1000000"))?;
        let keepalive = var("STREAM_KEEPALIVE_SECONDS");
        let stream_keepalive = keepalive
            .1
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=3600).contains(s))
            .map(Duration::from_secs)
            .ok_or_else(|| bad(keepalive.clone(), "expected whole seconds from 1 to 3600"))?;
        let stream_poll_interval = millis("STREAM_POLL_INTERVAL_MS")?;
        let count = |name: &'static str| {
            let raw = var(name);
            raw.1
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= 1_000_000)
                .ok_or_else(|| bad(raw.clone(), "expected a whole number from 0 to 1000000"))
        };
        let per_second = count("RATE_LIMIT_PER_SECOND")?;
        let burst = count("RATE_LIMIT_BURST")?;
        let rate_limit = std::num::NonZeroU32::new(per_second).map(|per_second| RateLimitConfig {
            per_second,
            burst: std::num::NonZeroU32::new(burst).unwrap_or(per_second),
        });

        Ok(Config {
            max_streams,
            stream_keepalive,
            stream_poll_interval,
            default_timers,
            retention_seconds,
            tombstone_retention_seconds,
            sweep_interval,
            rate_limit,
            header_read_timeout,
            keepalive_timeout,
            max_connections,
            api_keys,
            api_keys_inline,
            api_keys_file,
            metrics_require_key,
            cors_allowed_origins,
            request_timeout,
            shutdown_timeout,
            host,
            port,
            database,
            max_body_bytes,
            log_format,
            log_filter,
        })
    }
}

fn parse_database_url(url: &str, synchronous: Synchronous) -> Result<DatabaseConfig, String> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err("expected sqlite://PATH with a file path".into());
        }
        return Ok(DatabaseConfig::Sqlite(SqliteConfig {
            path: PathBuf::from(path),
            synchronous,
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
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("PORT", "70000"),
            ("HOST", "nowhere"),
            ("MAX_BODY_BYTES", "ten"),
            ("LOG_FORMAT", "xml"),
            ("DATABASE_URL", "postgres://x"),
            ("SQLITE_SYNCHRONOUS", "off"),
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
