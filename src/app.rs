//! `Application`: the one way to build and run the service, shared by `main` and the tests.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::api::{self, AppState};
use crate::config::{Config, DatabaseConfig};
use crate::error::AppError;
use crate::repo::{RepoError, Repositories, mongo::MongoStore, sqlite::SqliteStore};
use crate::service::SessionService;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open storage ({backend})")]
    Storage {
        backend: String,
        #[source]
        source: RepoError,
    },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    addr: SocketAddr,
}

/// Opens the configured store, runs its migrations and returns its repositories.
pub async fn open_storage(config: &DatabaseConfig) -> Result<Repositories, StartupError> {
    let storage_error = |source| StartupError::Storage {
        backend: config.redacted(),
        source,
    };
    match config {
        DatabaseConfig::Sqlite(sqlite) => {
            let opened = SqliteStore::open(sqlite).map_err(storage_error)?;
            for migration in &opened.applied_migrations {
                tracing::info!(migration, "applied sqlite migration");
            }
            Ok(opened.store.repositories())
        }
        DatabaseConfig::Mongo(mongo) => {
            let opened = MongoStore::open(mongo).await.map_err(storage_error)?;
            for migration in &opened.applied_migrations {
                tracing::info!(migration, "applied mongodb migration");
            }
            Ok(opened.store.repositories())
        }
    }
}

impl Application {
    /// Opens storage and binds the listener; the service starts answering in [`Self::run_until`].
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let repos = open_storage(&config.database).await?;
        Self::with_repositories(config, repos).await
    }

    /// Builds on repositories opened elsewhere (tests share this path with `build`).
    pub async fn with_repositories(
        config: &Config,
        repos: Repositories,
    ) -> Result<Self, StartupError> {
        let state = AppState {
            service: SessionService::new(repos),
            max_body_bytes: config.max_body_bytes,
        };
        let router = api::router(state)
            .layer(DefaultBodyLimit::max(config.max_body_bytes))
            .layer(CatchPanicLayer::custom(|_| {
                axum::response::IntoResponse::into_response(AppError::Internal(
                    "a request handler panicked".into(),
                ))
            }))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                    .on_request(())
                    .on_response(DefaultOnResponse::new().level(Level::INFO)),
            );
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { addr, source })?;
        Ok(Self {
            listener,
            router,
            addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
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
