//! What both test binaries share: a fresh store per test on either backend, and the runner that
//! cleans it up afterwards, even when the test panics.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use session_service::app::open_storage;
use session_service::config::DatabaseConfig;
use session_service::repo::Repositories;
use session_service::repo::mongo::MongoSettings;
use session_service::repo::sqlite::{SqliteConfig, Synchronous};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mongo,
}

/// A store of its own for one test: a temp SQLite file, or a uniquely named MongoDB database on
/// the server `MONGODB_URI` names (`./run-tests.sh` starts one and sets it).
pub struct TestStore {
    pub backend: Backend,
    pub config: DatabaseConfig,
    pub repos: Repositories,
    _dir: Option<tempfile::TempDir>,
}

pub fn mongodb_uri() -> String {
    std::env::var("MONGODB_URI").unwrap_or_else(|_| {
        panic!(
            "MONGODB_URI is not set: the MongoDB tests need a server. Run ./run-tests.sh, which \
             starts a MongoDB-compatible test server, or set MONGODB_URI to a MongoDB you own"
        )
    })
}

fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestStore {
    pub async fn open(backend: Backend) -> TestStore {
        let (config, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let config = DatabaseConfig::Sqlite(SqliteConfig {
                    path: dir.path().join("test.db"),
                    synchronous: Synchronous::Full,
                });
                (config, Some(dir))
            }
            Backend::Mongo => {
                let config = DatabaseConfig::Mongo(MongoSettings {
                    uri: mongodb_uri(),
                    database: unique_name("t"),
                });
                (config, None)
            }
        };
        let repos = open_storage(&config).await.expect("open test store").repos;
        TestStore {
            backend,
            config,
            repos,
            _dir: dir,
        }
    }

    /// What a test gets: the store's repositories and how to open it again.
    pub fn ctx(&self) -> StoreCtx {
        StoreCtx {
            backend: self.backend,
            config: self.config.clone(),
            repos: self.repos.clone(),
        }
    }

    /// Drops the test's MongoDB database; a temp SQLite directory goes with `self`.
    pub async fn cleanup(self) {
        if let DatabaseConfig::Mongo(m) = &self.config {
            let client = mongodb::Client::with_uri_str(&m.uri)
                .await
                .expect("mongo client");
            client
                .database(&m.database)
                .drop()
                .await
                .expect("drop test database");
        }
    }
}

#[derive(Clone)]
pub struct StoreCtx {
    pub backend: Backend,
    pub config: DatabaseConfig,
    pub repos: Repositories,
}

impl StoreCtx {
    /// Opens the same store again, as a restarted process would.
    pub async fn reopen(&self) -> Repositories {
        open_storage(&self.config)
            .await
            .expect("reopen test store")
            .repos
    }
}

/// Runs `test` against a fresh store on `backend`, cleans the store up, then passes on any panic.
pub async fn run_with_store<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(StoreCtx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store = TestStore::open(backend).await;
    let outcome = tokio::spawn(test(store.ctx())).await;
    store.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Emits one `#[tokio::test]` per backend for each listed `async fn(StoreCtx)`.
#[macro_export]
macro_rules! on_every_backend {
    ($cases:path => $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    use $cases as cases;
                    $crate::support::run_with_store($crate::support::Backend::Sqlite, cases::$name).await;
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    use $cases as cases;
                    $crate::support::run_with_store($crate::support::Backend::Mongo, cases::$name).await;
                }
            )*
        }
    };
}
pub mod json_strategy;
pub mod proxy;
