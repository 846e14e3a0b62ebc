//! The one test-support library every test binary includes (`#[path = "../support/mod.rs"] mod
//! support;`): a fresh store per test on either backend and the runner that cleans it up even
//! when the test panics ([`store`]), the macro that runs one case on every backend
//! ([`backend_test!`]), the in-process application ([`app`]), the real binary as a child process
//! ([`process`]), the cursor walker ([`walk`]), raw sockets for half-sent requests ([`raw_http`]),
//! a chaos proxy ([`proxy`]), JSON strategies ([`json_strategy`]) and a client for the
//! live-transcript stream ([`sse`]), and the wait for background work ([`wait`]).
//!
//! Library types that are about to move inside the crate are imported in tests/support only
//! (`domain::Order` re-exported here, `repo::mongo::MongoSettings` in [`store`]), so that a move touches
//! these files and nothing else.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod json_strategy;
pub mod process;
pub mod proxy;
pub mod raw_http;
pub mod sse;
pub mod store;
pub mod wait;
pub mod walk;

use std::future::Future;

pub use session_service::domain::Order;
pub use store::{
    Backend, ServiceStore, StoreCtx, TestStore, drop_database, mongo_store_at, mongodb_uri,
    run_with_store, unique_name,
};

/// What a [`backend_test!`] case takes: made from the test's fresh store.
pub trait Fixture: Sized + Send + 'static {
    fn make(store: StoreCtx) -> impl Future<Output = Self> + Send;
}

/// The store itself.
impl Fixture for StoreCtx {
    fn make(store: StoreCtx) -> impl Future<Output = Self> + Send {
        std::future::ready(store)
    }
}

/// The application started over the store with the default settings ([`app::spawn_app`]).
impl Fixture for app::TestApp {
    fn make(store: StoreCtx) -> impl Future<Output = Self> + Send {
        app::spawn_app(store)
    }
}

/// Declares one case and runs it on every backend: expands to a module named after the case with
/// one `#[tokio::test]` per backend (`sqlite`, `mongo`), each running the case on a fresh store of
/// its own through [`run_with_store`] (which drops the store even when the case panics). Adding a
/// case therefore cannot forget a backend. The case takes a [`Fixture`]: the store (`StoreCtx`)
/// or the application started over it (`TestApp`).
///
/// ```ignore
/// backend_test! { async fn creating_twice_returns_the_stored_session(app: TestApp) {
///     ...
/// }}
/// ```
#[macro_export]
macro_rules! backend_test {
    (
        $(#[$meta:meta])*
        $vis:vis async fn $name:ident($store:ident: $ty:ty $(,)?) $body:block
    ) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$meta])*
            async fn case($store: $ty) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                $crate::support::run_with_store($crate::support::Backend::Sqlite, |store| async {
                    case(<$ty as $crate::support::Fixture>::make(store).await).await
                })
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn mongo() {
                $crate::support::run_with_store($crate::support::Backend::Mongo, |store| async {
                    case(<$ty as $crate::support::Fixture>::make(store).await).await
                })
                .await;
            }
        }
    };
}
