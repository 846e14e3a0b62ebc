//! `Application`: the one way to build and run the service, shared by `main` and the tests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

mod serve;

use crate::api::{self, AppState};
use crate::config::{Config, ConfigError, DatabaseConfig};
use crate::repo::{RepoError, Repositories, mongo::MongoStore, sqlite::SqliteStore};
use crate::service::live::LiveSettings;
use crate::service::webhooks::{WebhookSettings, Webhooks};
use crate::service::{Lifecycle, Maintenance, ServiceError, ServiceMetrics, SessionService};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open storage ({backend})")]
    Storage {
        backend: String,
        #[source]
        source: RepoError,
    },
    #[error("cannot give older sessions their timers")]
    Adopt {
        #[source]
        source: ServiceError,
    },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// An opened store: its repositories, and what must happen to close it cleanly.
pub struct Storage {
    pub repos: Repositories,
    pub applied_migrations: Vec<String>,
    /// MongoDB only: the commands sent to the server, counted (`mongodb_commands_total`).
    pub mongo_round_trips: Option<Arc<crate::repo::mongo::RoundTrips>>,
    closer: Closer,
}

enum Closer {
    /// The SQLite writer thread: it finishes its queue, checkpoints the WAL and closes once every
    /// handle to the store is gone.
    SqliteWriter(std::thread::JoinHandle<()>),
    /// MongoDB acknowledges every write before we answer; there is nothing to flush.
    Nothing,
}

/// Opens the configured store and runs its migrations.
pub async fn open_storage(config: &DatabaseConfig) -> Result<Storage, StartupError> {
    let recorder = crate::telemetry::metrics().recorder();
    let storage_error = |source| StartupError::Storage {
        backend: config.redacted(),
        source,
    };
    match config {
        DatabaseConfig::Sqlite(sqlite) => {
            let opened = SqliteStore::open(sqlite).map_err(storage_error)?;
            Ok(Storage {
                repos: opened.store.repositories().instrumented("sqlite", recorder),
                applied_migrations: opened.applied_migrations,
                mongo_round_trips: None,
                closer: Closer::SqliteWriter(opened.writer),
            })
        }
        DatabaseConfig::Mongo(mongo) => {
            let opened = MongoStore::open(mongo).await.map_err(storage_error)?;
            Ok(Storage {
                mongo_round_trips: Some(opened.store.round_trips()),
                repos: opened
                    .store
                    .repositories()
                    .instrumented("mongodb", recorder),
                applied_migrations: opened.applied_migrations,
                closer: Closer::Nothing,
            })
        }
    }
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    addr: SocketAddr,
    shutdown_timeout: Duration,
    closer: Closer,
    service: SessionService,
    webhooks: Webhooks,
    sweep_interval: Duration,
    key_reload: Option<KeyReload>,
    rate_limit: Option<api::RateLimit>,
    connection_limits: serve::ConnectionLimits,
}

/// What SIGHUP needs to put a re-read API_KEYS_FILE in force. The signal is listened for from
/// `build` on, so a SIGHUP right after the "listening" line cannot end the process.
struct KeyReload {
    policy: api::AuthPolicy,
    inline: api::ApiKeys,
    file: std::path::PathBuf,
    #[cfg(unix)]
    hangups: Option<tokio::signal::unix::Signal>,
}

impl KeyReload {
    fn new(policy: api::AuthPolicy, inline: api::ApiKeys, file: std::path::PathBuf) -> Self {
        #[cfg(unix)]
        let hangups = {
            use tokio::signal::unix::{SignalKind, signal};
            signal(SignalKind::hangup())
                .map_err(|e| {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP; API keys will not reload")
                })
                .ok()
        };
        Self {
            policy,
            inline,
            file,
            #[cfg(unix)]
            hangups,
        }
    }

    /// Re-reads the file; a file that cannot be read or parsed, or that would leave no key at
    /// all, changes nothing (the keys in force stay).
    fn reload(&self) {
        if self.policy.keys().is_empty() {
            tracing::warn!(
                "SIGHUP: authentication was off at startup; restart the service to turn it on"
            );
            return;
        }
        match self.inline.with_file(&self.file).map_err(ConfigError::from) {
            Ok(keys) if keys.is_empty() => {
                tracing::warn!("SIGHUP: API_KEYS_FILE has no key; the previous keys stay in force")
            }
            Ok(keys) => {
                log_key_counts(&keys, "SIGHUP: API keys reloaded");
                self.policy.replace(keys);
            }
            Err(e) => tracing::warn!("SIGHUP: {e}; the previous keys stay in force"),
        }
    }

    /// Reloads on every SIGHUP until the returned task is aborted.
    fn spawn(mut self) -> Option<tokio::task::JoinHandle<()>> {
        #[cfg(unix)]
        {
            let mut hangups = self.hangups.take()?;
            Some(tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    self.reload();
                }
            }))
        }
        #[cfg(not(unix))]
        {
            None
        }
    }
}

fn webhook_settings(config: &crate::config::WebhookConfig) -> WebhookSettings {
    WebhookSettings {
        timeout: config.timeout,
        schedule: config.retry_schedule.clone(),
        secret_overlap_seconds: config.secret_overlap_seconds,
        disable_after_seconds: config.disable_after_seconds,
        allow_private_networks: config.allow_private_networks,
        max_in_flight: config.max_in_flight,
        per_endpoint: config.per_endpoint,
        retention_seconds: config.retention_seconds,
    }
}

/// Logs how many keys of each scope are in force; never a key.
fn log_key_counts(keys: &api::ApiKeys, message: &str) {
    use api::Scope;
    tracing::info!(
        keys = keys.len(),
        read = keys.count(Scope::Read),
        write = keys.count(Scope::Write),
        admin = keys.count(Scope::Admin),
        "{message}"
    );
}

impl Application {
    /// Opens storage and binds the listener; the service starts answering in [`Self::run_until`].
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let storage = open_storage(&config.database).await?;
        for migration in &storage.applied_migrations {
            tracing::info!(migration, "applied migration");
        }
        let mut app = Self::with_repositories(config, storage.repos).await?;
        app.closer = storage.closer;
        Ok(app)
    }

    /// Builds on repositories opened elsewhere (tests share this path with `build`).
    pub async fn with_repositories(
        config: &Config,
        repos: Repositories,
    ) -> Result<Self, StartupError> {
        let metrics = crate::telemetry::metrics();
        let lifecycle = Lifecycle {
            default_timers: config.default_timers,
            tombstone_retention_seconds: config.tombstone_retention_seconds,
            retention_seconds: config.retention_seconds,
            changes_retention_seconds: config.changes_retention_seconds,
        };
        let limits = connection_limits(config);
        let service = SessionService::new(repos, lifecycle)
            .with_live(LiveSettings {
                max_streams: stream_cap(config.max_streams, limits.max_connections),
                keepalive: config.stream_keepalive,
                poll_interval: config.stream_poll_interval,
            })
            .with_metrics(ServiceMetrics::new(metrics.recorder()))
            .with_redaction(config.redact);
        let adopted = service
            .adopt_legacy_sessions()
            .await
            .map_err(|source| StartupError::Adopt { source })?;
        if adopted > 0 {
            tracing::info!(
                sessions = adopted,
                "sessions from before timers got the default timers, counted from now"
            );
        }
        let webhooks = Webhooks::new(
            service.repositories().clone(),
            webhook_settings(&config.webhooks),
            api::webhook_body,
        );
        let state = AppState {
            service: service.clone(),
            max_body_bytes: config.max_body_bytes,
            metrics,
            webhooks: webhooks.clone(),
        };
        let auth = api::AuthPolicy::new(config.api_keys.clone(), config.metrics_require_key);
        if config.api_keys.is_empty() {
            tracing::warn!(
                "API_KEYS is not set: anyone who can reach this port can read and write sessions"
            );
        } else {
            log_key_counts(&config.api_keys, "API key authentication is on");
        }
        let key_reload = config
            .api_keys_file
            .clone()
            .map(|file| KeyReload::new(auth.clone(), config.api_keys_inline.clone(), file));
        // Outermost last: `observe` sees every request, including 401s and panics turned into
        // 500s; CORS answers preflights before authentication (a route layer inside).
        let rate_limit = config.rate_limit.map(|limit| {
            tracing::info!(
                per_second = limit.per_second.get(),
                burst = limit.burst.get(),
                "rate limits are on"
            );
            api::RateLimit::new(limit.per_second, limit.burst)
        });
        let storage_health = api::StorageHealth::default();
        let router = api::router(
            state,
            auth.clone(),
            rate_limit.clone(),
            storage_health.clone(),
        );
        let router = match cors_layer(&config.cors_allowed_origins) {
            Some(cors) => router.layer(cors),
            None => router,
        };
        let observe = api::Observe {
            timeout: config.request_timeout,
            storage_health,
            metrics,
        };
        let router = router.layer(observe);
        let addr = SocketAddr::new(config.host, config.port);
        let listener = bind(addr).map_err(|source| StartupError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { addr, source })?;
        Ok(Self {
            listener,
            router,
            addr,
            shutdown_timeout: config.shutdown_timeout,
            closer: Closer::Nothing,
            service,
            webhooks,
            sweep_interval: config.sweep_interval,
            key_reload,
            rate_limit,
            connection_limits: limits,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets in-flight requests finish for
    /// up to the configured shutdown timeout, and closes storage.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let maintenance = Maintenance::start(self.service.clone(), self.sweep_interval);
        let delivering = self.webhooks.start();
        // The loops hold their own handle; this one would keep storage open past the drain.
        drop(self.webhooks);
        let watchers = self.service.watch_changes();
        let hub = self.service.hub().clone();
        let key_reload = self.key_reload.and_then(KeyReload::spawn);
        let limiter_cleanup = self.rate_limit.as_ref().map(api::RateLimit::spawn_cleanup);
        drop(self.service);
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            // Live streams end now (clients resume elsewhere with Last-Event-ID), so they do
            // not hold the drain.
            hub.close();
            let _ = stopping_tx.send(());
        };
        let drained = {
            let server = serve::serve(self.listener, self.router, self.connection_limits, signal);
            let drain_deadline = async {
                if stopping_rx.await.is_ok() {
                    tokio::time::sleep(self.shutdown_timeout).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = server => true,
                () = drain_deadline => {
                    tracing::warn!(
                        timeout_ms = self.shutdown_timeout.as_millis() as u64,
                        "in-flight requests did not finish in time; they end with the process"
                    );
                    false
                }
            }
        };
        maintenance.stop().await;
        // Attempts in flight end here, and their leases are released: another instance (or this
        // one, restarted) sends them again at once.
        delivering.stop().await;
        drop(watchers);
        for task in [key_reload, limiter_cleanup].into_iter().flatten() {
            task.abort();
        }
        // Connections still open after the deadline keep storage handles alive, so the writer
        // is waited for only briefly then; everything acknowledged is already durable.
        if let Closer::SqliteWriter(writer) = self.closer {
            let wait = if drained {
                Duration::from_secs(5)
            } else {
                Duration::from_millis(500)
            };
            let started = std::time::Instant::now();
            while !writer.is_finished() && started.elapsed() < wait {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if writer.is_finished() {
                let _ = writer.join();
                tracing::info!("storage flushed and closed");
            } else {
                tracing::warn!(
                    "storage is still held by unfinished connections; it closes with the process"
                );
            }
        }
        Ok(())
    }
}

/// The listener, with a listen backlog of 4,096 (the kernel caps it at `somaxconn`): connections
/// beyond MAX_CONNECTIONS wait there until one ends.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// The configured limits, with the connection cap kept below the open files limit (less some
/// descriptors for storage and logs), so accepting never runs out of descriptors.
fn connection_limits(config: &Config) -> serve::ConnectionLimits {
    const RESERVED_FDS: u64 = 64;
    let mut max_connections = config.max_connections;
    if let Ok((soft, _)) = rlimit::Resource::NOFILE.get() {
        let room = usize::try_from(soft.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
        if room < max_connections {
            tracing::warn!(
                max_connections,
                open_files_limit = soft,
                capped = room,
                "MAX_CONNECTIONS is above what the open files limit allows; capped"
            );
            max_connections = room;
        }
    }
    serve::ConnectionLimits {
        header_read_timeout: config.header_read_timeout,
        keepalive_timeout: config.keepalive_timeout,
        max_connections,
        http2_max_streams: config.http2_max_streams,
    }
}

/// Live streams hold their connection for as long as they run: at most all but a tenth of the
/// connections (and at least 16 left over) may be streams, so probes, reads and writes always
/// find a connection. `MAX_STREAMS` unset is that many; set higher, it is capped, with a warning.
fn stream_cap(max_streams: Option<usize>, max_connections: usize) -> usize {
    let room = max_connections
        .saturating_sub((max_connections / 10).max(16))
        .max(1);
    let Some(max_streams) = max_streams else {
        return room;
    };
    if max_streams > room {
        tracing::warn!(
            max_streams,
            max_connections,
            capped = room,
            "MAX_STREAMS would leave too few connections for other requests; capped"
        );
        return room;
    }
    max_streams
}

/// CORS for the configured origins only; none configured, no CORS headers at all.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let request_id = HeaderName::from_static(api::REQUEST_ID_HEADER);
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::IF_MATCH,
                HeaderName::from_static("expected-seq"),
                HeaderName::from_static("last-event-id"),
                request_id.clone(),
            ])
            .expose_headers([
                header::LOCATION,
                header::ETAG,
                header::RETRY_AFTER,
                request_id,
            ]),
    )
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::stream_cap;

    #[test]
    fn streams_always_leave_connections_for_other_requests() {
        assert_eq!(stream_cap(Some(10_000), 10_000), 9_000);
        assert_eq!(stream_cap(Some(100), 10_000), 100);
        assert_eq!(stream_cap(Some(10_000), 100), 84);
        assert_eq!(stream_cap(Some(5), 10), 1);
        assert_eq!(stream_cap(None, 10_000), 9_000);
        assert_eq!(stream_cap(None, 100), 84);
    }
}
