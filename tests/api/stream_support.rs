//! Helpers the stream files share: a seeded random source, concurrent writers, and a subscriber
//! that disconnects and reconnects with `Last-Event-ID` at random points, checking on the way
//! that every event arrives exactly once and in seq order.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::TestApp;
use crate::support::sse::Frame;

/// A small seeded random source (splitmix64): the seed goes into failure messages, so a failing
/// run can be told apart and repeated (`STREAM_TEST_SEED=…`).
pub struct Rng {
    state: u64,
    pub seed: u64,
}

impl Rng {
    /// Seeded from `STREAM_TEST_SEED` if set, else from the clock.
    pub fn new() -> Rng {
        let seed = std::env::var("STREAM_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or_default()
            });
        Rng { state: seed, seed }
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// `writers` concurrent writers append `per_writer` events each to `session` (writer `w` posts
/// `w{w}-{i}` in order, writer after writer alternating over `apps`), asserting every 201. The
/// acknowledged seq of every event id.
pub async fn write_concurrently(
    apps: &[TestApp],
    session: &str,
    writers: usize,
    per_writer: usize,
) -> HashMap<String, u64> {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let app = apps[w % apps.len()].handle();
            let session = session.to_owned();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..per_writer {
                    let event_id = format!("w{w}-{i}");
                    let body = json!({
                        "eventId": event_id,
                        "type": "user_speech",
                        "payload": {"writer": w, "i": i},
                    });
                    let r = app.post_event(&session, &body).await;
                    assert_eq!(r.status, 201, "{event_id}: {}", r.text);
                    acked.push((event_id, r.body["seq"].as_u64().expect("seq")));
                }
                acked
            })
        })
        .collect();
    let mut acked = HashMap::new();
    for task in tasks {
        acked.extend(task.await.expect("writer task"));
    }
    acked
}

/// What a [`reconnecting_subscriber`] received over all its connections.
#[derive(Debug)]
pub struct Received {
    pub seqs: Vec<u64>,
    pub event_ids: Vec<String>,
    /// The data of the `session-ended` frame that ended it.
    pub ended: Value,
    /// How many streams it opened.
    pub connections: usize,
}

/// The most streams one subscriber may open: a bound against an endless loop.
const MAX_CONNECTIONS: usize = 10_000;

/// Subscribes to `session` on `apps` (connection after connection alternating over them) and
/// reads until `session-ended`: each connection resumes with `Last-Event-ID` (after the first),
/// reads a random number of frames (sometimes none, not even `retry`) and drops the connection
/// while the server may be writing. Panics at the first gap, duplicate, misplaced `caught-up`
/// (its seq must be the last seq received) or unexpected frame, naming the seed.
pub async fn reconnecting_subscriber(
    apps: Vec<TestApp>,
    session: String,
    mut rng: Rng,
) -> Received {
    let seed = rng.seed;
    let mut received = Received {
        seqs: Vec::new(),
        event_ids: Vec::new(),
        ended: Value::Null,
        connections: 0,
    };
    let mut ids = HashSet::new();
    loop {
        assert!(
            received.connections < MAX_CONNECTIONS,
            "no session-ended after {MAX_CONNECTIONS} connections (seed {seed})"
        );
        let app = &apps[received.connections % apps.len()];
        received.connections += 1;
        let connection = received.connections;
        let last = received.seqs.last().copied();
        let mut stream = app.sse(&session).resume_from(last).open().await;
        if rng.below(8) == 0 {
            // Gone before reading anything.
            drop(stream);
            continue;
        }
        stream.expect_retry().await;
        let budget = rng.below(25);
        let mut caught_up = false;
        for _ in 0..budget {
            let frame: Frame = stream.expect_frame().await;
            let last = received.seqs.last().copied().unwrap_or(0);
            match frame.event.as_deref() {
                Some("event") => {
                    let event = frame.event_json();
                    let seq = event["seq"].as_u64().expect("seq");
                    assert_eq!(
                        seq,
                        last + 1,
                        "connection {connection} (resumed after {last}) gave seq {seq}: a gap \
                         or a duplicate (seed {seed})"
                    );
                    let event_id = event["eventId"].as_str().expect("eventId").to_owned();
                    assert!(
                        ids.insert(event_id.clone()),
                        "{event_id} arrived twice (seed {seed})"
                    );
                    received.seqs.push(seq);
                    received.event_ids.push(event_id);
                }
                Some("caught-up") => {
                    assert!(
                        !caught_up,
                        "caught-up twice on connection {connection} (seed {seed})"
                    );
                    caught_up = true;
                    assert_eq!(
                        frame.caught_up_seq(),
                        last,
                        "caught-up names the last seq sent (or where the stream started) on \
                         connection {connection} (seed {seed})"
                    );
                }
                Some("session-ended") => {
                    assert!(
                        caught_up,
                        "session-ended before caught-up on connection {connection} (seed {seed})"
                    );
                    received.ended = frame.json();
                    stream.expect_end().await;
                    return received;
                }
                _ => panic!("unexpected frame on connection {connection}: {frame:?} (seed {seed})"),
            }
        }
        drop(stream);
        if rng.below(3) == 0 {
            tokio::time::sleep(Duration::from_millis(rng.below(30))).await;
        }
    }
}

/// Asserts that `received` is every event of `session` exactly once in seq order, that it
/// matches a cursor walk of the session (seqs and event ids) and the writers'
/// acknowledgements, and that it ended with the completed session.
pub async fn assert_received_everything(
    app: &TestApp,
    session: &str,
    received: &Received,
    acked: &HashMap<String, u64>,
    seed: u64,
) {
    let total = acked.len() as u64;
    assert!(
        received.seqs.iter().copied().eq(1..=total),
        "the subscriber's seqs are not exactly 1..={total} (seed {seed}): {:?}",
        received.seqs
    );
    let walk = app.walk(session, "asc", 50).await;
    assert_eq!(walk.seqs, received.seqs, "seed {seed}");
    assert_eq!(walk.event_ids, received.event_ids, "seed {seed}");
    for (seq, event_id) in received.seqs.iter().zip(&received.event_ids) {
        assert_eq!(
            acked.get(event_id),
            Some(seq),
            "{event_id} arrived as seq {seq} but was acknowledged otherwise (seed {seed})"
        );
    }
    assert_eq!(received.ended["status"], "completed", "seed {seed}");
    assert_eq!(received.ended["eventCount"], total, "seed {seed}");
    assert_eq!(
        received.ended,
        app.session_part(session).await,
        "seed {seed}"
    );
    assert!(
        received.connections > 1,
        "the subscriber never reconnected (seed {seed})"
    );
}
