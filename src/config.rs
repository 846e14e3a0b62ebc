//! Every environment variable the service reads, with its default, in one place. A bad value
//! stops startup with a message naming the variable.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Whether `/metrics` needs an API key when keys are configured.
    pub metrics_require_key: bool,
    /// Origins allowed to call the API from a browser; empty means no CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
}

/// The configured API keys. Its `Debug` never shows them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKeys(Vec<String>);

impl ApiKeys {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.iter()
    }
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} configured)", self.0.len())
    }
}

/// Keys are separated by commas or newlines; blank entries and `#` comment lines are skipped.
fn parse_keys(text: &str) -> Result<Vec<String>, String> {
    let keys: Vec<String> = text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|k| !k.is_empty() && !k.starts_with('#'))
        .map(str::to_owned)
        .collect();
    match keys
        .iter()
        .find(|k| k.len() < 16 || !k.bytes().all(|b| b.is_ascii_graphic()))
    {
        Some(_) => Err("every key must be at least 16 visible ASCII characters".into()),
        None => Ok(keys),
    }
}

#[derive(Debug, Clone)]
pub enum DatabaseConfig {
    Sqlite(SqliteConfig),
    Mongo(MongoSettings),
}

/// Where MongoDB lives; the rest of its settings come from the URI's options.
#[derive(Debug, Clone)]
pub struct MongoSettings {
    pub uri: String,
    pub database: String,
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

/// Every environment variable the service reads (checked against `docker-compose.yml` in CI).
pub const VARIABLES: &[&str] = &[
    "HOST",
    "PORT",
    "DATABASE_URL",
    "SQLITE_SYNCHRONOUS",
    "MAX_BODY_BYTES",
    "LOG_FORMAT",
    "RUST_LOG",
    "REQUEST_TIMEOUT_MS",
    "SHUTDOWN_TIMEOUT_MS",
    "API_KEYS",
    "API_KEYS_FILE",
    "METRICS_REQUIRE_KEY",
    "CORS_ALLOWED_ORIGINS",
];

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/sessions.db";
pub const DEFAULT_LOG_FILTER: &str = "session_service=info,tower_http=info";

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &'static str, default: &str| {
            let value = lookup(name).unwrap_or_else(|| default.to_owned());
            (name, value)
        };
        let bad = |(variable, value): (&'static str, String), reason: &str| ConfigError {
            variable,
            value,
            reason: reason.to_owned(),
        };

        let host = var("HOST", "127.0.0.1");
        let host = match host.1.as_str() {
            "localhost" => IpAddr::from([127, 0, 0, 1]),
            raw => raw.parse().map_err(|_| {
                bad(
                    host.clone(),
                    "expected an IP address such as 127.0.0.1 or 0.0.0.0",
                )
            })?,
        };
        let port = var("PORT", "3000");
        let port = port
            .1
            .parse::<u16>()
            .map_err(|_| bad(port.clone(), "expected a port number from 0 to 65535"))?;
        let max_body = var("MAX_BODY_BYTES", "1048576");
        let max_body_bytes = match max_body.1.parse::<usize>() {
            Ok(n) if n >= 1024 => n,
            _ => {
                return Err(bad(
                    max_body,
                    "expected a whole number of bytes, at least 1024",
                ));
            }
        };
        let log_format = var("LOG_FORMAT", "pretty");
        let log_format = match log_format.1.as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            _ => return Err(bad(log_format, "expected pretty or json")),
        };
        let log_filter = var("RUST_LOG", DEFAULT_LOG_FILTER);
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_filter.1) {
            return Err(bad(log_filter, &e.to_string()));
        }
        let log_filter = log_filter.1;
        let sync = var("SQLITE_SYNCHRONOUS", "full");
        let synchronous = match sync.1.as_str() {
            "full" => Synchronous::Full,
            "normal" => Synchronous::Normal,
            _ => return Err(bad(sync, "expected full or normal")),
        };
        let url = var("DATABASE_URL", DEFAULT_DATABASE_URL);
        let database =
            parse_database_url(&url.1, synchronous).map_err(|reason| bad(url.clone(), &reason))?;

        let millis = |name: &'static str, default: &str| {
            let raw = var(name, default);
            match raw.1.parse::<u64>() {
                Ok(ms) if ms >= 1 => Ok(Duration::from_millis(ms)),
                _ => Err(bad(
                    raw,
                    "expected a whole number of milliseconds, at least 1",
                )),
            }
        };
        let request_timeout = millis("REQUEST_TIMEOUT_MS", "15000")?;
        let shutdown_timeout = millis("SHUTDOWN_TIMEOUT_MS", "20000")?;

        // Keys are secrets: errors name the variable but never echo its value.
        let mut api_keys = match lookup("API_KEYS") {
            Some(raw) => parse_keys(&raw).map_err(|reason| ConfigError {
                variable: "API_KEYS",
                value: "<redacted>".into(),
                reason,
            })?,
            None => Vec::new(),
        };
        if let Some(path) = lookup("API_KEYS_FILE") {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                bad(
                    ("API_KEYS_FILE", path.clone()),
                    &format!("cannot read it: {e}"),
                )
            })?;
            api_keys.extend(parse_keys(&text).map_err(|reason| ConfigError {
                variable: "API_KEYS_FILE",
                value: path.clone(),
                reason,
            })?);
        }
        let metrics_key = var("METRICS_REQUIRE_KEY", "true");
        let metrics_require_key = match metrics_key.1.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(bad(metrics_key, "expected true or false")),
        };
        let cors = var("CORS_ALLOWED_ORIGINS", "");
        let cors_allowed_origins: Vec<String> = cors
            .1
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(origin) = cors_allowed_origins.iter().find(|o| {
            !(o.starts_with("http://") || o.starts_with("https://"))
                || axum::http::HeaderValue::from_str(o).is_err()
        }) {
            let reason = format!("{origin:?} is not an origin such as https://app.example.com");
            return Err(bad(cors, &reason));
        }

        Ok(Config {
            api_keys: ApiKeys(api_keys),
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
