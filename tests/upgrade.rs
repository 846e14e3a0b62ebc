//! A database made by the previous release (its migrations only, its row and document formats) is
//! opened by this one: every old session and event reads back as it was, and the new fields are
//! filled in as promised (timers are the server's defaults counted from the upgrade, never
//! retroactively; lastEventAt is the last event's timestamp).

use bson::{Bson, DateTime, doc};
use session_service::app::open_storage;
use session_service::config::DatabaseConfig;
use session_service::domain::search::TextQuery;
use session_service::domain::{
    EventId, EventType, JsonObject, NewEvent, Order, SessionId, Status, Timers, Timestamp,
};
use session_service::repo::mongo::MongoSettings;
use session_service::repo::search::{SearchOrder, SearchScan};
use session_service::repo::sqlite::{SqliteConfig, Synchronous};
use session_service::repo::{EventRange, Repositories, Start};
use session_service::service::{Lifecycle, SessionService};

/// A time long before the upgrade: a timer counted from it would have run out long ago.
const LONG_AGO: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

/// What the previous release stored: (session id, status, ended, events).
const OLD: &[(&str, &str, bool, u64)] = &[
    ("old-initiated", "initiated", false, 0),
    ("old-active", "active", false, 3),
    ("old-completed", "completed", true, 2),
];

fn defaults() -> Lifecycle {
    Lifecycle {
        default_timers: Timers {
            inactivity_seconds: 3600,
            max_duration_seconds: 7200,
        },
        ..Lifecycle::default()
    }
}

fn event_time(seq: u64) -> i64 {
    LONG_AGO + DAY + seq as i64 * 1000
}

fn old_sqlite_database(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    // The previous release's migration runner and its only migration, as it ran them.
    conn.execute_batch(
        "CREATE TABLE schema_migrations (
             version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .unwrap();
    conn.execute_batch(include_str!(
        "../migrations/sqlite/0001_create_sessions_and_events.sql"
    ))
    .unwrap();
    conn.execute(
        "INSERT INTO schema_migrations VALUES (1, 'create_sessions_and_events', ?1)",
        [LONG_AGO],
    )
    .unwrap();
    for &(id, status, ended, events) in OLD {
        conn.execute(
            "INSERT INTO sessions (session_id, status, language, metadata, started_at, ended_at,
                 event_count) VALUES (?1, ?2, 'en-US', '{\"caller\":\"+1555\",\"n\":1}', ?3, ?4, ?5)",
            rusqlite::params![
                id,
                status,
                LONG_AGO,
                ended.then_some(LONG_AGO + 2 * DAY),
                events
            ],
        )
        .unwrap();
        for seq in 1..=events {
            conn.execute(
                "INSERT INTO events (session_id, seq, event_id, type, payload, timestamp)
                 VALUES (?1, ?2, ?3, 'user_speech', '{\"text\":\"hi\"}', ?4)",
                rusqlite::params![id, seq, format!("e-{seq}"), event_time(seq)],
            )
            .unwrap();
        }
    }
}

async fn old_mongo_database(settings: &MongoSettings) {
    let client = mongodb::Client::with_uri_str(&settings.uri).await.unwrap();
    let db = client.database(&settings.database);
    // The previous release's only index migration, and its record.
    for (collection, name, key) in [
        ("sessions", "sessionId_unique", doc! { "sessionId": 1 }),
        (
            "events",
            "sessionId_eventId_unique",
            doc! { "sessionId": 1, "eventId": 1 },
        ),
        (
            "events",
            "sessionId_seq_unique",
            doc! { "sessionId": 1, "seq": 1 },
        ),
    ] {
        let options = mongodb::options::IndexOptions::builder()
            .name(name.to_owned())
            .unique(true)
            .build();
        let model = mongodb::IndexModel::builder()
            .keys(key)
            .options(options)
            .build();
        db.collection::<bson::Document>(collection)
            .create_index(model)
            .await
            .unwrap();
    }
    db.collection::<bson::Document>("schema_migrations")
        .insert_one(
            doc! { "_id": 1_i64, "name": "create_indexes", "appliedAt": DateTime::from_millis(LONG_AGO) },
        )
        .await
        .unwrap();
    for &(id, status, ended, events) in OLD {
        db.collection::<bson::Document>("sessions")
            .insert_one(doc! {
                "sessionId": id,
                "status": status,
                "language": "en-US",
                "metadata": { "caller": "+1555", "n": 1_i64 },
                "startedAt": DateTime::from_millis(LONG_AGO),
                "endedAt": if ended { Bson::DateTime(DateTime::from_millis(LONG_AGO + 2 * DAY)) } else { Bson::Null },
                "eventCount": events as i64,
                "createToken": bson::oid::ObjectId::new(),
            })
            .await
            .unwrap();
        for seq in 1..=events {
            db.collection::<bson::Document>("events")
                .insert_one(doc! {
                    "sessionId": id,
                    "eventId": format!("e-{seq}"),
                    "seq": seq as i64,
                    "type": "user_speech",
                    "payload": { "text": "hi" },
                    "timestamp": DateTime::from_millis(event_time(seq)),
                })
                .await
                .unwrap();
        }
    }
}

/// Opens the old database with this release, as its startup does, and checks everything.
async fn upgrade_and_check(config: DatabaseConfig) {
    let before = Timestamp::now();
    let storage = open_storage(&config)
        .await
        .expect("the new release opens it");
    let repos: Repositories = storage.repos;
    let service = SessionService::new(repos.clone(), defaults());
    assert_eq!(service.adopt_legacy_sessions().await.unwrap(), 3);
    assert_eq!(
        service.adopt_legacy_sessions().await.unwrap(),
        0,
        "adoption happens once"
    );
    let after = Timestamp::now();
    for &(id, status, ended, events) in OLD {
        let sid = SessionId::parse(id).unwrap();
        let page = repos
            .events
            .page(
                &sid,
                EventRange {
                    order: Order::Asc,
                    start: Start::Offset(0),
                    limit: 100,
                },
            )
            .await
            .unwrap();
        let s = page.session.clone().as_of(Timestamp::now());
        assert_eq!(s.status.as_str(), status, "{id} keeps its status");
        assert_eq!(s.language.as_str(), "en-US");
        assert_eq!(
            serde_json::to_string(s.metadata.as_map()).unwrap(),
            r#"{"caller":"+1555","n":1}"#
        );
        assert_eq!(s.started_at.millis(), LONG_AGO);
        assert_eq!(
            s.ended_at.map(Timestamp::millis),
            ended.then_some(LONG_AGO + 2 * DAY)
        );
        assert_eq!(s.event_count, events);
        assert_eq!(s.ended_reason, None);
        assert_eq!(s.timers, defaults().default_timers);
        assert!(
            (before..=after).contains(&s.timers_since),
            "{id}: timers count from the upgrade"
        );
        assert_eq!(
            s.last_event_at.map(Timestamp::millis),
            (events > 0).then(|| event_time(events)),
            "{id}: lastEventAt is the last event's timestamp"
        );
        let expected_deadline = (!ended).then(|| s.timers_since.plus_seconds(3600));
        assert_eq!(
            s.deadline().map(|d| d.at),
            expected_deadline,
            "{id}: open sessions end an hour after the upgrade, not before"
        );
        let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=events).collect::<Vec<_>>());
        for e in &page.events {
            assert_eq!(e.event_id.as_str(), format!("e-{}", e.seq));
            assert_eq!(e.timestamp.millis(), event_time(e.seq));
            assert_eq!(
                serde_json::to_string(e.payload.as_map()).unwrap(),
                r#"{"text":"hi"}"#
            );
        }
    }
    // The old sessions are listed like new ones.
    let active = repos
        .sessions
        .list(&session_service::repo::SessionScan {
            statuses: vec![Status::Active],
            started_from: None,
            started_before: None,
            order: Order::Desc,
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].session_id.as_str(), "old-active");

    // A new event next to the old ones: both forms of stored payload read back in one page.
    let sid = SessionId::parse("old-active").unwrap();
    let new = NewEvent {
        session_id: sid.clone(),
        event_id: EventId::parse("e-new").unwrap(),
        event_type: EventType::BotSpeech,
        payload: JsonObject::parse(serde_json::json!({"text": "new", "n": 1})).unwrap(),
        client_timestamp: None,
        received_at: Timestamp::now(),
        expected_seq: None,
        redact: None,
    };
    let (stored, _) = service.add_event(new).await.unwrap();
    assert_eq!(stored.seq, 4);
    let range = EventRange {
        order: Order::Asc,
        start: Start::Offset(0),
        limit: 100,
    };
    let page = repos.events.page(&sid, range).await.unwrap();
    let texts: Vec<&str> = page.events.iter().map(|e| e.payload.json()).collect();
    assert_eq!(
        texts,
        [
            r#"{"text":"hi"}"#,
            r#"{"text":"hi"}"#,
            r#"{"text":"hi"}"#,
            r#"{"text":"new","n":1}"#
        ]
    );

    // Events stored before search existed are found once the background indexing (run here
    // as its task runs it) has taken them in.
    let indexed = repos.search.index_pending().await.unwrap();
    assert!(
        indexed >= 5,
        "the 5 old speech events were indexed now: {indexed}"
    );
    assert_eq!(
        repos.search.index_pending().await.unwrap(),
        0,
        "once is enough"
    );
    let scan = |q: &str| SearchScan {
        query: TextQuery::parse(q).unwrap(),
        event_type: None,
        session_id: None,
        order: SearchOrder::Newest,
        after: None,
        limit: 100,
    };
    let found = repos.search.search(&scan("hi")).await.unwrap();
    assert_eq!(found.len(), 5, "every old speech event");
    assert_eq!(repos.search.search(&scan("new")).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_of_the_previous_release_upgrades_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    old_sqlite_database(&path);
    upgrade_and_check(DatabaseConfig::Sqlite(SqliteConfig::new(
        path,
        Synchronous::Full,
    )))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mongodb_database_of_the_previous_release_upgrades_in_place() {
    let uri = std::env::var("MONGODB_URI")
        .expect("MONGODB_URI is not set: run ./run-tests.sh, which starts a test server");
    let settings = MongoSettings {
        uri: uri.clone(),
        database: format!(
            "upgrade_{}_{}",
            std::process::id(),
            Timestamp::now().millis()
        ),
    };
    old_mongo_database(&settings).await;
    let outcome = tokio::spawn(upgrade_and_check(DatabaseConfig::Mongo(settings.clone()))).await;
    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    let db = client.database(&settings.database);
    // Events written by this release keep the payload as its JSON text, which a read sends on
    // as it is; the old ones keep their BSON payload, read as before.
    let raw = |event_id: &'static str| {
        let events = db.collection::<bson::Document>("events");
        async move {
            events
                .find_one(doc! { "sessionId": "old-active", "eventId": event_id })
                .await
                .unwrap()
        }
    };
    let (new, old) = (raw("e-new").await, raw("e-1").await);
    db.drop().await.unwrap();
    if outcome.is_ok() {
        let new = new.expect("the new event is stored");
        assert_eq!(
            new.get_str("payloadJson").unwrap(),
            r#"{"text":"new","n":1}"#
        );
        assert!(new.get("payload").is_none(), "{new}");
        let old = old.expect("the old event is kept");
        assert!(old.get_document("payload").is_ok() && old.get("payloadJson").is_none());
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
