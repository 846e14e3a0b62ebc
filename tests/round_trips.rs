//! Round trips to MongoDB per operation, counted by the driver's command monitoring (each
//! command the driver sends is one round trip; on a replica set with `w: majority` a write's is a
//! replication wait). Each count is pinned, so a change that adds a round trip fails here and
//! has to say why. BENCHMARKS.md has the table.

use std::collections::BTreeMap;
use std::sync::Arc;

use session_service::app::open_storage;
use session_service::config::DatabaseConfig;
use session_service::domain::{
    EventId, EventType, JsonObject, Language, NewEvent, NewEvents, NewSession, Order, SessionId,
    Timers, Timestamp,
};
use session_service::repo::mongo::{MongoSettings, RoundTrips};
use session_service::repo::{EventRange, Repositories, Start};

fn said(session: &str, event: &str, at: Timestamp) -> NewEvent {
    NewEvent {
        session_id: SessionId::parse(session).unwrap(),
        event_id: EventId::parse(event).unwrap(),
        event_type: EventType::UserSpeech,
        payload: JsonObject::parse(serde_json::json!({"text": "I would like a refund"})).unwrap(),
        client_timestamp: None,
        received_at: at,
        expected_seq: None,
        redact: None,
    }
}

fn new_session(id: &str) -> NewSession {
    NewSession {
        session_id: SessionId::parse(id).unwrap(),
        language: Language::parse("en-US").unwrap(),
        metadata: JsonObject::default(),
        started_at: Timestamp::now(),
        timers: Timers::default(),
        redact: None,
    }
}

/// The commands `op` sent, by name.
async fn counted<F: std::future::Future<Output = ()>>(
    trips: &RoundTrips,
    op: F,
) -> BTreeMap<String, u64> {
    let before = trips.snapshot();
    op.await;
    let mut sent = trips.snapshot();
    for (command, n) in &before {
        if let Some(after) = sent.get_mut(command) {
            *after -= n;
        }
    }
    sent.retain(|_, n| *n > 0);
    sent
}

fn total(sent: &BTreeMap<String, u64>) -> u64 {
    sent.values().sum()
}

async fn open() -> (Repositories, Arc<RoundTrips>) {
    let uri = std::env::var("MONGODB_URI")
        .expect("MONGODB_URI is not set: run ./run-tests.sh, which starts a test server");
    let settings = MongoSettings {
        uri,
        database: format!(
            "round_trips_{}_{}",
            std::process::id(),
            Timestamp::now().millis()
        ),
    };
    let storage = open_storage(&DatabaseConfig::Mongo(settings))
        .await
        .expect("open the MongoDB store");
    let trips = storage
        .mongo_round_trips
        .expect("a MongoDB store counts its commands");
    (storage.repos, trips)
}

/// The tests here run one at a time: the test server's conflicts between one test's appends
/// and another's would add retries to the counts pinned.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operation_takes_the_round_trips_pinned_here() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (repos, trips) = open().await;
    let id = SessionId::parse("call-1").unwrap();
    let create = counted(&trips, async {
        assert!(
            repos
                .sessions
                .create_or_get(new_session("call-1"))
                .await
                .unwrap()
                .created
        );
    })
    .await;
    // One new event, then the same again: each append's commands.
    let append_once = |event: &'static str| {
        counted(&trips, async {
            let new = said("call-1", event, Timestamp::now());
            repos.events.append(new).await.unwrap();
        })
    };
    // Warm: the first append may open connections; its commands are counted all the same.
    let first = append_once("e0").await;
    let append = append_once("e1").await;
    let replay = append_once("e1").await;
    let at = Timestamp::now();
    let batch = counted(&trips, async {
        let events = (0..50)
            .map(|i| said("call-1", &format!("b{i}"), at))
            .collect();
        repos
            .events
            .append_batch(NewEvents::new(events).unwrap())
            .await
            .unwrap();
    })
    .await;
    let page = counted(&trips, async {
        let range = EventRange {
            order: Order::Asc,
            start: Start::Offset(0),
            limit: 20,
        };
        assert_eq!(
            repos.events.page(&id, range).await.unwrap().events.len(),
            20
        );
    })
    .await;
    let session = counted(&trips, async {
        repos.sessions.get(&id).await.unwrap();
    })
    .await;
    let table = [
        ("create", &create),
        ("first append", &first),
        ("append", &append),
        ("replayed append", &replay),
        ("batch of 50", &batch),
        ("page of 20", &page),
        ("get session", &session),
    ];
    for (name, sent) in &table {
        println!("{name}: {} {sent:?}", total(sent));
    }
    let pinned: Vec<(&str, u64)> = table.iter().map(|(n, s)| (*n, total(s))).collect();
    assert_eq!(
        pinned,
        [
            ("create", 1),
            ("first append", 3),
            ("append", 3),
            ("replayed append", 5),
            ("batch of 50", 4),
            ("page of 20", 2),
            ("get session", 1),
        ],
        "{table:?}"
    );
}

/// A metadata patch reads the session once and writes once, however many appends land on the
/// session meanwhile: only a concurrent patch makes it read again. (Conditioned on the event
/// count as well, as it once was, every append between its read and its write sent it back to
/// read, and a call taking appends could hold a patch back for seconds, then fail it with 503.)
/// Appends send no `find`, so the `find`s counted around each patch are its own reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_is_not_sent_back_by_appends_to_its_session() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let _alone = ONE_AT_A_TIME.lock().await;
    let (repos, trips) = open().await;
    let created = repos.sessions.create_or_get(new_session("busy")).await;
    assert!(created.unwrap().created);
    let done = Arc::new(AtomicBool::new(false));
    let appenders: Vec<_> = (0..4)
        .map(|t| {
            let (repos, done) = (repos.clone(), done.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !done.load(Ordering::Relaxed) {
                    let event = said("busy", &format!("a{t}-{n}"), Timestamp::now());
                    repos.events.append(event).await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let id = SessionId::parse("busy").unwrap();
    let mut reads = Vec::new();
    for i in 0..8 {
        let sent = counted(&trips, async {
            let patch = session_service::repo::MetadataPatch {
                patch: serde_json::json!({ format!("k{i}"): i })
                    .as_object()
                    .unwrap()
                    .clone(),
                if_match: None,
                at: Timestamp::now(),
            };
            let patched = repos.sessions.patch_metadata(&id, patch).await.unwrap();
            assert!(
                matches!(patched, session_service::repo::Patched::Done(_)),
                "{patched:?}"
            );
        })
        .await;
        reads.push(sent.get("find").copied().unwrap_or(0));
    }
    done.store(true, Ordering::Relaxed);
    let mut appended = 0;
    for a in appenders {
        appended += a.await.unwrap();
    }
    assert!(appended > 0);
    assert_eq!(
        reads, [1; 8],
        "reads per patch, with {appended} appends alongside"
    );
}
