//! A store of its own for every test, on either backend, and its removal afterwards.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// How long dropping a test's MongoDB database may take.
const CLEANUP_LIMIT: Duration = Duration::from_secs(60);

/// How long a server keeps the open transaction of a client that vanished, plus a margin:
/// MongoDB's `transactionLifetimeLimitSeconds` (60 by default), which SecantusDB follows.
const ORPHAN_TRANSACTION_LIFETIME: Duration = Duration::from_secs(62);

pub fn mongodb_uri() -> String {
    std::env::var("MONGODB_URI").unwrap_or_else(|_| {
        panic!(
            "MONGODB_URI is not set: the MongoDB tests need a server. Run ./run-tests.sh, which \
             starts a MongoDB-compatible test server, or set MONGODB_URI to a MongoDB you own"
        )
    })
}

/// A name no other test (in this process or another) uses: `{prefix}_{pid}_{n}_{nanos}`.
pub fn unique_name(prefix: &str) -> String {
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

/// Drops the MongoDB database `database` on the server at `uri` (at most [`CLEANUP_LIMIT`]).
pub async fn drop_database(uri: &str, database: &str) {
    let drop = async {
        let client = mongodb::Client::with_uri_str(uri)
            .await
            .expect("mongo client for cleanup");
        client
            .database(database)
            .drop()
            .await
            .expect("drop the test database");
    };
    tokio::time::timeout(CLEANUP_LIMIT, drop)
        .await
        .unwrap_or_else(|_| {
            panic!("dropping the test database {database} took over {CLEANUP_LIMIT:?}")
        });
}

/// When a service on each store (keyed by its `DATABASE_URL`) was last killed with SIGKILL.
fn kills() -> &'static Mutex<HashMap<String, Instant>> {
    static KILLS: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    KILLS.get_or_init(Mutex::default)
}

/// Records that a service on the store at `database_url` was just killed with SIGKILL, so that
/// [`ServiceStore::cleanup`] waits out the transactions it may have left open.
pub fn note_kill(database_url: &str) {
    kills()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(database_url.to_owned(), Instant::now());
}

/// Waits until no transaction of a process killed at `killed` can still be open in `database`.
///
/// A process killed in the middle of a transaction leaves it open on the server, holding its
/// writes, until the server reaps it: MongoDB once it has been idle for
/// `transactionLifetimeLimitSeconds`; SecantusDB likewise, but only when a client next uses a
/// transaction. Dropping the database before then waits for the reaping on MongoDB and, on
/// SecantusDB 0.7.0b3, wedges the whole server (the drop waits while holding its storage lock),
/// so that every later test hangs. So: wait out the lifetime, then use a transaction.
async fn outlive_orphan_transactions(uri: &str, database: &str, killed: Instant) {
    tokio::time::sleep_until((killed + ORPHAN_TRANSACTION_LIFETIME).into()).await;
    let client = mongodb::Client::with_uri_str(uri)
        .await
        .expect("mongo client for cleanup");
    let mut session = client.start_session().await.expect("start a session");
    session
        .start_transaction()
        .await
        .expect("start a transaction");
    client
        .database(database)
        .collection::<mongodb::bson::Document>("sessions")
        .find_one(mongodb::bson::doc! {})
        .session(&mut session)
        .await
        .expect("read in a transaction");
    session.abort_transaction().await.expect("abort it");
}

/// Where a fresh store of `backend` lives: a temp SQLite file, or a uniquely named MongoDB
/// database on the server `MONGODB_URI` names (`./run-tests.sh` starts one and sets it).
fn fresh_location(backend: Backend, prefix: &str) -> (DatabaseConfig, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let config = DatabaseConfig::Sqlite(SqliteConfig::new(
                dir.path().join("test.db"),
                Synchronous::Full,
            ));
            (config, Some(dir))
        }
        Backend::Mongo => {
            let config = DatabaseConfig::Mongo(MongoSettings {
                uri: mongodb_uri(),
                database: unique_name(prefix),
            });
            (config, None)
        }
    }
}

/// Removes what [`fresh_location`] made: drops the MongoDB database; a temp SQLite directory
/// goes with its `TempDir`.
async fn remove_location(config: &DatabaseConfig) {
    if let DatabaseConfig::Mongo(m) = config {
        drop_database(&m.uri, &m.database).await;
    }
}

/// A store of its own for one test, opened in this process.
pub struct TestStore {
    pub backend: Backend,
    pub config: DatabaseConfig,
    pub repos: Repositories,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    pub async fn open(backend: Backend) -> TestStore {
        let (config, dir) = fresh_location(backend, "t");
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
        remove_location(&self.config).await;
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

/// Opens the MongoDB database `database` through `uri` (e.g. a proxy in front of the server).
pub async fn mongo_store_at(uri: String, database: String) -> StoreCtx {
    let config = DatabaseConfig::Mongo(MongoSettings { uri, database });
    let repos = open_storage(&config)
        .await
        .expect("open the MongoDB store")
        .repos;
    StoreCtx {
        backend: Backend::Mongo,
        config,
        repos,
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

/// A store of its own for the real binary, which opens it itself: the `DATABASE_URL` to start
/// the service with.
pub struct ServiceStore {
    pub backend: Backend,
    pub database_url: String,
    config: DatabaseConfig,
    _dir: Option<tempfile::TempDir>,
}

impl ServiceStore {
    pub fn new(backend: Backend, prefix: &str) -> ServiceStore {
        let (config, dir) = fresh_location(backend, prefix);
        let database_url = match &config {
            DatabaseConfig::Sqlite(s) => format!("sqlite://{}", s.path.display()),
            DatabaseConfig::Mongo(m) => with_database(&m.uri, &m.database),
        };
        ServiceStore {
            backend,
            database_url,
            config,
            _dir: dir,
        }
    }

    /// Drops the test's MongoDB database (after the transactions a killed service may have left
    /// open have ended); a temp SQLite directory goes with `self`.
    pub async fn cleanup(self) {
        let killed = kills()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.database_url);
        if let (DatabaseConfig::Mongo(m), Some(killed)) = (&self.config, killed) {
            outlive_orphan_transactions(&m.uri, &m.database, killed).await;
        }
        remove_location(&self.config).await;
    }
}

/// `uri` with its database path replaced by `db`, keeping the options.
fn with_database(uri: &str, db: &str) -> String {
    let (scheme, rest) = uri
        .split_once("://")
        .unwrap_or_else(|| panic!("MONGODB_URI {uri:?} has no scheme"));
    let (hosts, options) = match rest.split_once('/') {
        Some((hosts, path)) => (hosts, path.split_once('?').map(|(_, o)| o)),
        None => match rest.split_once('?') {
            Some((hosts, o)) => (hosts, Some(o)),
            None => (rest, None),
        },
    };
    match options {
        Some(o) if !o.is_empty() => format!("{scheme}://{hosts}/{db}?{o}"),
        _ => format!("{scheme}://{hosts}/{db}"),
    }
}
