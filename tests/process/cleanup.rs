//! A test's MongoDB cleanup after a kill: a transaction that a killed client left open does not
//! wedge the server every test shares (SecantusDB 0.7.0b3 hangs for good on a `dropDatabase`
//! that meets one), so that one kill cannot hang the rest of the run.

use std::time::Duration;

use mongodb::bson::{Document, doc};

use crate::support::{Backend, ServiceStore, store};

#[tokio::test]
async fn a_transaction_left_open_by_a_killed_client_does_not_wedge_the_server() {
    let store = ServiceStore::new(Backend::Mongo, "orphan");
    let client = mongodb::Client::with_uri_str(&store.database_url)
        .await
        .expect("mongo client");
    let database = client
        .default_database()
        .expect("the store's URL names its database");
    let name = database.name().to_owned();
    let sessions = database.collection::<Document>("sessions");
    sessions
        .insert_one(doc! { "_id": "call-1", "eventCount": 0 })
        .await
        .expect("insert a session");
    // What a process killed in the middle of an append leaves: a transaction that wrote and will
    // never be committed or aborted (a killed process sends no abortTransaction, and forgetting
    // the session keeps the driver from sending one).
    let mut orphan = client.start_session().await.expect("start a session");
    orphan
        .start_transaction()
        .await
        .expect("start a transaction");
    sessions
        .update_one(
            doc! { "_id": "call-1" },
            doc! { "$inc": { "eventCount": 1 } },
        )
        .session(&mut orphan)
        .await
        .expect("write in the transaction");
    std::mem::forget(orphan);
    store::note_kill(&store.database_url);

    // Panics if the drop hangs (at most 60 s); before waiting out the orphan, it hung for good.
    store.cleanup().await;

    let other = mongodb::Client::with_uri_str(store::mongodb_uri())
        .await
        .expect("mongo client");
    let names = tokio::time::timeout(Duration::from_secs(20), other.list_database_names())
        .await
        .expect("the server still answers a command that needs its storage")
        .expect("list databases");
    assert!(
        !names.contains(&name),
        "the test database {name} was not dropped: {names:?}"
    );
}
