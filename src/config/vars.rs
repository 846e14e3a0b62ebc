//! The table of every environment variable: name, default and help. Parsing reads only through
//! it, and `--help` and the deployment checks are made from it.

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
        name: "SQLITE_READER_THREADS",
        default: "",
        help: "reader threads of the embedded store, 1 to 256 (unset: one per core this process may use, at least 2)",
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
        name: "REDACT",
        default: "",
        help: "card,email,phone,ssn (any of): replaced in event payloads before they are stored; a call's own redact overrides it",
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
        name: "CHANGES_RETENTION_SECONDS",
        default: "604800",
        help: "the change feed (GET /changes) keeps changes this long; older cursors get 410",
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
        name: "HTTP2_MAX_STREAMS",
        default: "200",
        help: "HTTP/2 (prior knowledge): requests and live streams open at once on one connection",
    },
    Var {
        name: "MAX_STREAMS",
        default: "",
        help: "live event streams open at most (unset: nine tenths of MAX_CONNECTIONS); beyond it 503 too_many_streams",
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
    Var {
        name: "WEBHOOK_TIMEOUT_MS",
        default: "15000",
        help: "how long a webhook attempt waits for the receiver's answer",
    },
    Var {
        name: "WEBHOOK_RETRY_SCHEDULE",
        default: "0,5,300,1800,7200,18000,36000,36000",
        help: "seconds before each webhook attempt (the first, then after each failure), ±10 % jitter",
    },
    Var {
        name: "WEBHOOK_SECRET_OVERLAP_SECONDS",
        default: "86400",
        help: "after a secret rotation, how long messages are also signed with the old secret",
    },
    Var {
        name: "WEBHOOK_DISABLE_AFTER_SECONDS",
        default: "432000",
        help: "a webhook endpoint whose every attempt failed this long is disabled",
    },
    Var {
        name: "WEBHOOK_ALLOW_PRIVATE_NETWORKS",
        default: "false",
        help: "true: webhook receivers on loopback and private addresses are allowed",
    },
    Var {
        name: "WEBHOOK_MAX_IN_FLIGHT",
        default: "64",
        help: "webhook attempts in flight at once, per instance (1 to 10000)",
    },
    Var {
        name: "WEBHOOK_ENDPOINT_CONCURRENCY",
        default: "8",
        help: "webhook attempts in flight at once to one endpoint, per instance (1 to 1000)",
    },
    Var {
        name: "WEBHOOK_RETENTION_SECONDS",
        default: "604800",
        help: "how long delivered and failed webhook messages stay in the log (and can be recovered)",
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
