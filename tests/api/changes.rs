//! The change feed over HTTP (`GET /changes`): a call's life as its changes in order with their
//! data, pages that follow `nextCursor`, the `types` filter and refused parameters, long polls,
//! the live feed (SSE, resumed with `Last-Event-ID`), NDJSON, erasure reaching every past change,
//! ends by the timer, retention (410 `cursor_expired`), API keys, `MAX_STREAMS`, and two
//! instances over one store.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::changes_support::{
    READ_LIMIT, assert_cursors_distinct, assert_idle, changes_until_idle, get_changes, ndjson,
    next_changes, of_session, open_stream, page, read_feed, send_stream, stream_refused, types_of,
};
use crate::lifecycle_support::eventually;
use crate::support::StoreCtx;
use crate::support::app::{Reply, TestApp, spawn_app_with, two_instances};

/// An idle live feed says so every second, so that "nothing more came" can be read as a
/// keepalive.
const KEEPALIVE_1S: (&str, &str) = ("STREAM_KEEPALIVE_SECONDS", "1");
const FAST_SWEEP: (&str, &str) = ("SWEEP_INTERVAL_MS", "50");
const POLL: Duration = Duration::from_millis(100);

const READ_KEY: &str = "reader-key-0123456789abcdef";
const WRITE_KEY: &str = "writer-key-0123456789abcdef";

fn speech(event_id: &str) -> Value {
    json!({"eventId": event_id, "type": "user_speech", "payload": {"text": event_id}})
}

/// Creates `id` with `metadata` and asserts 201; the answer.
async fn create_with(app: &TestApp, id: &str, metadata: Value) -> Reply {
    let body = json!({"sessionId": id, "language": "en-US", "metadata": metadata});
    let r = app.post_json("/sessions", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r
}

/// `PATCH /sessions/{id}` with the merge patch `{"metadata": metadata}`; asserts 200.
async fn patch_metadata(app: &TestApp, id: &str, metadata: Value) -> Reply {
    let response = app
        .client
        .patch(app.url(&format!("/sessions/{id}")))
        .header("content-type", "application/merge-patch+json")
        .body(json!({ "metadata": metadata }).to_string())
        .send()
        .await
        .expect("PATCH");
    let r = TestApp::read(response).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r
}

async fn complete(app: &TestApp, id: &str, body: Option<&Value>) {
    let r = app.complete(id, body).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn delete(app: &TestApp, id: &str) {
    let r = app
        .request(Method::DELETE, &format!("/sessions/{id}"))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

/// The stored events of `id`, as `GET /sessions/{id}` lists them.
async fn stored_events(app: &TestApp, id: &str) -> Vec<Value> {
    app.read_session(id, "").await["events"]
        .as_array()
        .expect("events")
        .clone()
}

/// The changes of a page.
fn changes_of(page: &Value) -> Vec<Value> {
    page["changes"].as_array().expect("changes").clone()
}

fn cursor_of(value: &Value) -> String {
    value.as_str().expect("a cursor is a string").to_owned()
}

/// What a call's life answered: its create and its metadata patch.
struct Life {
    created: Reply,
    patched: Reply,
}

/// A call's life through the API: `call-1` created with metadata, two events, a batch of two
/// (and the same batch replayed), a metadata patch, then completed. Seven changes.
async fn a_calls_life(app: &TestApp) -> Life {
    let created = create_with(app, "call-1", json!({"from": "ivr"})).await;
    app.add_events("call-1", "e", 2).await;
    let batch = json!({"events": [speech("e3"), speech("e4")]});
    let stored = app.post_json("/sessions/call-1/events:batch", &batch).await;
    assert_eq!(stored.status, 201, "{}", stored.text);
    let replayed = app.post_json("/sessions/call-1/events:batch", &batch).await;
    assert_eq!(replayed.status, 200, "a replay: {}", replayed.text);
    let patched = patch_metadata(app, "call-1", json!({"disposition": "sale"})).await;
    complete(app, "call-1", None).await;
    Life { created, patched }
}

const LIFE_TYPES: [&str; 7] = [
    "session.created",
    "event.appended",
    "event.appended",
    "event.appended",
    "event.appended",
    "session.updated",
    "session.ended",
];

backend_test! { async fn a_calls_life_reads_back_as_its_changes_in_order_each_with_the_data_of_that_moment(app: TestApp) {
    let life = a_calls_life(&app).await;

    let feed = read_feed(&app, None, 100).await;
    assert_eq!(feed.pages, 1);
    assert_eq!(types_of(&feed.changes), LIFE_TYPES);
    assert!(feed.changes.iter().all(|c| c["sessionId"] == "call-1"), "{:?}", feed.changes);
    assert_cursors_distinct(&feed.changes);
    let data: Vec<&Value> = feed.changes.iter().map(|c| &c["data"]).collect();
    assert_eq!(data[0], &life.created.body, "session.created carries the session as created");
    assert_eq!(
        (&data[0]["status"], &data[0]["metadata"], &data[0]["eventCount"]),
        (&json!("initiated"), &json!({"from": "ivr"}), &json!(0))
    );
    let events = stored_events(&app, "call-1").await;
    assert_eq!(events.len(), 4);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(data[i + 1], event, "event.appended carries the event as stored");
        assert_eq!(data[i + 1]["seq"], i + 1);
    }
    let ended = app.session_part("call-1").await;
    assert_eq!(data[6], &ended, "session.ended carries the ended session");
    assert_eq!(data[6]["status"], "completed");
    assert!(data[6]["endedAt"].is_string(), "{}", data[6]);
    // The metadata the patch made, on both backends.
    assert_eq!(data[5]["metadata"], json!({"from": "ivr", "disposition": "sale"}));
    assert_eq!(data[5]["sessionId"], "call-1");
    // SQLite keeps the whole session as it was right after the patch (still active), not as it
    // is now (completed). MongoDB's feed is its oplog, which holds what the patch wrote (the
    // metadata): the session's other fields are as read with the change (DESIGN.md, "The
    // change feed"; README).
    if app.store.backend == crate::support::Backend::Sqlite {
        assert_eq!(data[5], &life.patched.body, "session.updated carries the session after the patch");
    }
}}

backend_test! { async fn pages_of_two_following_next_cursor_give_every_change_once_and_past_the_end_an_empty_page_at_the_same_cursor(app: TestApp) {
    a_calls_life(&app).await;
    let whole = read_feed(&app, None, 100).await;
    assert_eq!(types_of(&whole.changes), LIFE_TYPES);

    let paged = read_feed(&app, None, 2).await;
    assert_eq!(paged.changes, whole.changes);
    assert_eq!(paged.pages, 4);

    let after_end = page(&app, &format!("?after={}", whole.next)).await;
    assert_eq!(after_end["changes"], json!([]), "{after_end}");
    assert_eq!(after_end["hasMore"], false);
    let again = page(&app, &format!("?after={}", cursor_of(&after_end["nextCursor"]))).await;
    assert_eq!(again["changes"], json!([]), "{again}");
    assert_eq!(after_end["nextCursor"], whole.next.as_str(), "nothing new: the same cursor");
}}

backend_test! { async fn an_empty_feeds_next_cursor_reads_on_and_then_gives_the_first_change(app: TestApp) {
    let empty = page(&app, "").await;
    assert_eq!((&empty["changes"], &empty["hasMore"]), (&json!([]), &json!(false)), "{empty}");
    let cursor = cursor_of(&empty["nextCursor"]);
    let still_empty = page(&app, &format!("?after={cursor}")).await;
    assert_eq!(still_empty["changes"], json!([]), "{still_empty}");

    app.create_session("first").await;
    let first = page(&app, &format!("?after={cursor}")).await;
    assert_eq!(types_of(&changes_of(&first)), ["session.created"], "{first}");
}}

backend_test! { async fn types_keeps_only_the_types_asked_for_and_bad_parameters_or_cursors_are_400(app: TestApp) {
    app.create_session("a").await;
    app.add_event("a", "e1").await;
    complete(&app, "a", None).await;
    app.create_session("b").await;
    let all = read_feed(&app, None, 100).await;
    assert_eq!(
        types_of(&all.changes),
        ["session.created", "event.appended", "session.ended", "session.created"]
    );

    let only = page(&app, "?types=session.created,session.ended").await;
    let only_changes = changes_of(&only);
    assert_eq!(
        types_of(&only_changes),
        ["session.created", "session.ended", "session.created"]
    );
    let without_cursor = |c: &Value| {
        let mut c = c.clone();
        c.as_object_mut().expect("a change").remove("cursor");
        c
    };
    let expected: Vec<Value> = all
        .changes
        .iter()
        .filter(|c| c["type"] != "event.appended")
        .map(without_cursor)
        .collect();
    assert_eq!(only_changes.iter().map(without_cursor).collect::<Vec<_>>(), expected);
    let events_only = page(&app, "?types=event.appended").await;
    assert_eq!(types_of(&changes_of(&events_only)), ["event.appended"]);

    for (query, field) in [
        ("types=session.created,call.ringing", "types"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("wait=61", "wait"),
        ("wait=-1", "wait"),
        ("since=0", "since"),
    ] {
        let r = get_changes(&app, &format!("?{query}"), None).await;
        r.assert_problem(400, "validation_failed");
        assert_eq!(r.error_fields(), [field], "{query}: {}", r.text);
    }
    let r = get_changes(&app, "?limit=0&wait=61&colour=red", None).await;
    r.assert_problem(400, "validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["colour", "limit", "wait"], "every violation at once: {}", r.text);

    // "eA" is base64url for "x": well-formed text, but no position of any store.
    for bad in ["zzz", "%FF", "eA"] {
        let r = get_changes(&app, &format!("?after={bad}"), None).await;
        r.assert_problem(400, "invalid_cursor");
    }
    stream_refused(&app, "?after=zzz", None, None)
        .await
        .assert_problem(400, "invalid_cursor");
    stream_refused(&app, "", Some("zzz"), None)
        .await
        .assert_problem(400, "invalid_cursor");

    // None of the refused requests changed anything.
    assert_eq!(read_feed(&app, None, 100).await.changes, all.changes);
}}

backend_test! { async fn a_long_poll_answers_with_the_first_changes_written_after_it_and_an_idle_one_with_an_empty_page(app: TestApp) {
    app.create_session("call-1").await;
    // `after=now` is the head when the server takes the request, which the test cannot see:
    // events are added one after another until the poll answers.
    let mut poll = {
        let app = app.handle();
        tokio::spawn(async move { page(&app, "?after=now&wait=10").await })
    };
    let mut added = Vec::new();
    let answer = loop {
        assert!(added.len() < 20, "the long poll did not answer while 20 events were added");
        let event_id = format!("e{}", added.len() + 1);
        added.push(app.add_event("call-1", &event_id).await);
        if let Ok(done) = tokio::time::timeout(Duration::from_millis(500), &mut poll).await {
            break done.expect("the long poll");
        }
    };
    let got = changes_of(&answer);
    assert!(!got.is_empty(), "the long poll answered empty while events were added: {answer}");
    assert!(got.iter().all(|c| c["type"] == "event.appended"), "{answer}");
    let first = got[0]["data"]["seq"].as_u64().expect("seq") as usize;
    assert!(first >= 1 && first - 1 + got.len() <= added.len(), "{answer}");
    let data: Vec<&Value> = got.iter().map(|c| &c["data"]).collect();
    assert_eq!(data, added[first - 1..first - 1 + got.len()].iter().collect::<Vec<_>>());
    // Reading on from its nextCursor: the other events added, none twice.
    let rest = read_feed(&app, Some(&cursor_of(&answer["nextCursor"])), 100).await;
    let rest_data: Vec<&Value> = rest.changes.iter().map(|c| &c["data"]).collect();
    assert_eq!(rest_data, added[first - 1 + got.len()..].iter().collect::<Vec<_>>());

    // From a cursor, a poll issued before the write answers with exactly that change.
    let poll = {
        let app = app.handle();
        let query = format!("?after={}&wait=10", rest.next);
        tokio::spawn(async move { page(&app, &query).await })
    };
    let late = app.add_event("call-1", "late").await;
    let answer = tokio::time::timeout(READ_LIMIT, poll)
        .await
        .expect("the long poll answers")
        .expect("the long poll");
    let got = changes_of(&answer);
    assert_eq!(types_of(&got), ["event.appended"], "{answer}");
    assert_eq!(got[0]["data"], late);

    // Nothing new within the wait: an empty page.
    let idle = page(&app, &format!("?after={}&wait=1", cursor_of(&answer["nextCursor"]))).await;
    assert_eq!(idle["changes"], json!([]), "{idle}");
    assert_eq!(idle["hasMore"], false);
}}

backend_test! { async fn the_live_feed_sends_each_change_as_a_frame_and_resumes_after_last_event_id_with_exactly_the_missed_ones(s: StoreCtx) {
    let app = spawn_app_with(s, &[KEEPALIVE_1S]).await;
    app.create_session("before").await;
    // The stream's first read happens before its answer starts: `now` is fixed once it is open.
    let mut stream = open_stream(&app, "?after=now", None, None).await;
    app.create_session("call-1").await;
    app.add_events("call-1", "e", 2).await;
    let live = next_changes(&mut stream, 3).await;
    assert_eq!(types_of(&live), ["session.created", "event.appended", "event.appended"]);
    assert!(live.iter().all(|c| c["sessionId"] == "call-1"), "{live:?}");
    let events = stored_events(&app, "call-1").await;
    assert_eq!((&live[1]["data"], &live[2]["data"]), (&events[0], &events[1]));
    // The same changes as the pages.
    let feed = read_feed(&app, None, 100).await;
    assert_eq!(types_of(&feed.changes[..1]), ["session.created"]);
    assert_eq!(feed.changes[1..], live[..]);
    drop(stream);

    app.add_event("call-1", "e3").await;
    complete(&app, "call-1", None).await;
    let last = cursor_of(&live[2]["cursor"]);
    // Last-Event-ID wins over `after` (here an earlier cursor, which would repeat changes).
    let earlier = format!("?after={}", cursor_of(&live[0]["cursor"]));
    let mut resumed = open_stream(&app, &earlier, Some(&last), None).await;
    let missed = next_changes(&mut resumed, 2).await;
    assert_eq!(types_of(&missed), ["event.appended", "session.ended"]);
    assert_eq!(missed[0]["data"], stored_events(&app, "call-1").await[2]);
    assert_eq!(missed[1]["data"], app.session_part("call-1").await);
    assert_idle(&mut resumed).await;
    assert_eq!(read_feed(&app, Some(&last), 100).await.changes, missed);
}}

backend_test! { async fn ndjson_is_every_change_up_to_the_request_one_per_line_then_the_end(app: TestApp) {
    app.create_session("a").await;
    app.add_events("a", "e", 2).await;
    create_with(&app, "b", json!({"team": "blue"})).await;
    patch_metadata(&app, "b", json!({"team": "red"})).await;
    complete(&app, "a", Some(&json!({"status": "failed", "reason": "caller_hangup"}))).await;
    // Right after the last write: every change so far is "up to the moment of the request".
    let (_, lines) = ndjson(&app, "").await;
    let feed = read_feed(&app, None, 100).await;
    assert_eq!(
        types_of(&feed.changes),
        ["session.created", "event.appended", "event.appended", "session.created",
         "session.updated", "session.ended"]
    );
    assert_eq!(lines, feed.changes, "NDJSON gives what the pages give");
    assert_eq!(feed.changes[5]["data"]["endedReason"], "caller_hangup");

    let from = cursor_of(&feed.changes[1]["cursor"]);
    let (_, rest) = ndjson(&app, &format!("?after={from}")).await;
    assert_eq!(rest, feed.changes[2..]);
    let (_, created) = ndjson(&app, "?types=session.created").await;
    assert_eq!(created, [feed.changes[0].clone(), feed.changes[3].clone()]);
    let (text, none) = ndjson(&app, &format!("?after={}", feed.next)).await;
    assert!(none.is_empty(), "{text:?}");
}}

/// Asserts that nothing of the erased call's secrets is in `text`. The bare digits are looked
/// for outside cursors only: a cursor is opaque text that may hold any four digits.
fn assert_no_secret(what: &str, text: &str, changes: &[Value]) {
    for secret in ["s3cr3t", "card 4111"] {
        assert!(!text.contains(secret), "{what} holds {secret:?}: {text}");
    }
    for change in changes {
        let mut change = change.clone();
        change.as_object_mut().expect("a change").remove("cursor");
        assert!(!change.to_string().contains("4111"), "{what}: {change}");
    }
}

backend_test! { async fn an_erased_calls_changes_keep_only_its_id_in_pages_ndjson_and_the_live_feed(s: StoreCtx) {
    let app = spawn_app_with(s, &[KEEPALIVE_1S]).await;
    create_with(&app, "secret", json!({"secret": "s3cr3t"})).await;
    let event = json!({"eventId": "e1", "type": "user_speech", "payload": {"text": "card 4111"}});
    let r = app.post_event("secret", &event).await;
    assert_eq!(r.status, 201, "{}", r.text);
    patch_metadata(&app, "secret", json!({"note": "s3cr3t again"})).await;
    create_with(&app, "kept", json!({"team": "blue"})).await;
    app.add_event("kept", "k1").await;
    delete(&app, "secret").await;

    let whole = get_changes(&app, "?limit=1000", None).await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    let feed = changes_of(&whole.body);
    assert_no_secret("the page", &whole.text, &feed);
    let erased = of_session(&feed, "secret");
    assert_eq!(
        erased.iter().map(|c| c["type"].as_str().unwrap()).collect::<Vec<_>>(),
        ["session.created", "event.appended", "session.updated", "session.deleted"]
    );
    for change in &erased {
        assert_eq!(change["data"], json!({"sessionId": "secret"}), "{change}");
    }
    // The other call keeps its data.
    let kept = of_session(&feed, "kept");
    assert_eq!(kept[0]["data"]["metadata"], json!({"team": "blue"}));
    assert_eq!(kept[1]["data"]["payload"], json!({"text": "k1"}));

    let mut stream = open_stream(&app, "", None, None).await;
    let live = changes_until_idle(&mut stream, feed.len()).await;
    let frames_text: String = stream
        .seen
        .iter()
        .filter_map(|f| f.data.clone())
        .collect::<Vec<_>>()
        .join("\n");
    assert_no_secret("the live feed", &frames_text, &live);
    assert_eq!(live, feed);

    let (text, lines) = ndjson(&app, "").await;
    assert_no_secret("NDJSON", &text, &lines);
    assert_eq!(lines, feed);
}}

backend_test! { async fn a_session_ended_by_its_inactivity_timer_is_a_session_ended_change_with_the_failed_session(s: StoreCtx) {
    let app = spawn_app_with(s, &[FAST_SWEEP]).await;
    let body = json!({"sessionId": "quiet", "language": "en-US", "inactivityTimeoutSeconds": 1});
    let r = app.post_json("/sessions", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // From its creation on, whenever the timer fires.
    let created = changes_of(&page(&app, "?limit=1").await);
    assert_eq!(types_of(&created), ["session.created"]);
    let after = cursor_of(&created[0]["cursor"]);
    let query = format!("?after={after}&types=session.ended&wait=30");
    let ended = changes_of(&page(&app, &query).await);
    assert_eq!(types_of(&ended), ["session.ended"], "{ended:?}");
    let data = &ended[0]["data"];
    assert_eq!(data["status"], "failed", "{data}");
    assert_eq!(data["endedReason"], "inactivity_timeout", "{data}");
    assert_eq!(data, &app.session_part("quiet").await);
}}

backend_test! { async fn a_session_erased_by_retention_is_a_session_deleted_change_and_its_earlier_changes_keep_only_its_id(s: StoreCtx) {
    let app = spawn_app_with(s, &[FAST_SWEEP, ("RETENTION_SECONDS", "1")]).await;
    create_with(&app, "old", json!({"secret": "s3cr3t"})).await;
    let created = changes_of(&page(&app, "?limit=1").await);
    assert_eq!(types_of(&created), ["session.created"]);
    app.add_event("old", "e1").await;
    complete(&app, "old", None).await;
    let after = cursor_of(&created[0]["cursor"]);
    let query = format!("?after={after}&types=session.deleted&wait=30");
    let deleted = changes_of(&page(&app, &query).await);
    assert_eq!(types_of(&deleted), ["session.deleted"], "{deleted:?}");
    assert_eq!(deleted[0]["data"], json!({"sessionId": "old"}));

    let feed = read_feed(&app, None, 100).await;
    assert_eq!(
        types_of(&feed.changes),
        ["session.created", "event.appended", "session.ended", "session.deleted"]
    );
    for change in &feed.changes {
        assert_eq!(change["data"], json!({"sessionId": "old"}), "{change}");
    }
}}

backend_test! { async fn a_cursor_older_than_the_retention_is_410_with_an_earliest_cursor_that_answers(s: StoreCtx) {
    let app = spawn_app_with(s, &[FAST_SWEEP, ("CHANGES_RETENTION_SECONDS", "1")]).await;
    app.create_session("call-1").await;
    let first = changes_of(&page(&app, "").await);
    assert_eq!(types_of(&first), ["session.created"]);
    let cursor = cursor_of(&first[0]["cursor"]);
    app.add_event("call-1", "e1").await;
    let query = format!("?after={cursor}");
    eventually(POLL, 20, "the cursor expires", || async {
        let r = get_changes(&app, &query, None).await;
        assert!(r.status == 200 || r.status == 410, "{}", r.text);
        r.status == 410
    })
    .await;

    let expired = get_changes(&app, &query, None).await;
    let problem = expired.assert_problem(410, "cursor_expired");
    let earliest = problem["earliestCursor"]
        .as_str()
        .unwrap_or_else(|| panic!("a 410 names earliestCursor: {problem}"))
        .to_owned();
    page(&app, &format!("?after={earliest}")).await;
    // The live feed is refused the same way, before it starts.
    stream_refused(&app, "", Some(&cursor), None)
        .await
        .assert_problem(410, "cursor_expired");
    // Without a cursor, the feed starts at the oldest change retained.
    page(&app, "").await;
}}

backend_test! { async fn a_reader_that_missed_nothing_keeps_its_cursor_past_the_retention(s: StoreCtx) {
    let app = spawn_app_with(s, &[FAST_SWEEP, ("CHANGES_RETENTION_SECONDS", "1")]).await;
    let next = |body: &Value| body["nextCursor"].as_str().unwrap().to_owned();
    app.create_session("call-1").await;
    // Caught up: one reader takes every change, one only deletions (there are none yet).
    let all = read_feed(&app, None, 100).await.next;
    let deletions = next(&page(&app, "?types=session.deleted").await);
    // Another change comes and goes past the retention while the deletions reader polls, more
    // often than the retention, and the other reader waits: neither has missed anything.
    app.add_event("call-1", "e1").await;
    let all = next(&page(&app, &format!("?after={all}")).await);
    let mut polled = Value::Null;
    let mut deletions = deletions;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        polled = page(&app, &format!("?types=session.deleted&after={deletions}")).await;
        assert_eq!(polled["changes"], json!([]), "{polled}");
        deletions = next(&polled);
    }
    let idle = page(&app, &format!("?after={all}")).await;
    assert_eq!(idle["changes"], json!([]), "{idle}");
    // And each gets what comes next.
    app.request(Method::DELETE, "/sessions/call-1").await;
    let got = changes_of(&page(&app, &format!("?types=session.deleted&after={}", next(&polled))).await);
    assert_eq!(types_of(&got), ["session.deleted"]);
    let got = changes_of(&page(&app, &format!("?after={}", next(&idle))).await);
    assert_eq!(types_of(&got).last(), Some(&"session.deleted"), "{got:?}");
}}

backend_test! { async fn with_api_keys_the_feed_needs_a_key_and_a_read_key_is_enough(s: StoreCtx) {
    let keys = format!("read:{READ_KEY},write:{WRITE_KEY}");
    let app = spawn_app_with(s, &[("API_KEYS", &keys)]).await;
    let created = app
        .client
        .post(app.url("/sessions"))
        .bearer_auth(WRITE_KEY)
        .json(&json!({"sessionId": "call-1", "language": "en-US"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);

    get_changes(&app, "", None).await.assert_problem(401, "unauthorized");
    get_changes(&app, "", Some("wrong-key-0123456789abcdef"))
        .await
        .assert_problem(401, "unauthorized");
    let r = get_changes(&app, "", Some(READ_KEY)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(types_of(&changes_of(&r.body)), ["session.created"]);

    stream_refused(&app, "", None, None)
        .await
        .assert_problem(401, "unauthorized");
    let mut stream = open_stream(&app, "", None, Some(READ_KEY)).await;
    assert_eq!(types_of(&next_changes(&mut stream, 1).await), ["session.created"]);
}}

backend_test! { async fn beyond_max_streams_the_live_feed_is_503_while_pages_still_answer(s: StoreCtx) {
    let app = spawn_app_with(s, &[("MAX_STREAMS", "1")]).await;
    let first = open_stream(&app, "?after=now", None, None).await;
    let refused = stream_refused(&app, "?after=now", None, None).await;
    refused.assert_problem(503, "too_many_streams");
    assert!(refused.header("retry-after").is_some(), "{:?}", refused.headers);
    page(&app, "").await;

    // Closing is asynchronous: a stream opens again once the server has seen it go.
    drop(first);
    eventually(POLL, 20, "a stream opens after the other closed", || async {
        send_stream(&app, "?after=now", None, None).await.status() == 200
    })
    .await;
}}

backend_test! { async fn a_long_poll_and_a_live_feed_on_one_instance_get_what_is_written_through_another(s: StoreCtx) {
    let (writer, reader) = two_instances(s, &[KEEPALIVE_1S]).await;
    writer.create_session("call-1").await;
    let start = page(&reader, "").await;
    assert_eq!(types_of(&changes_of(&start)), ["session.created"]);
    let cursor = cursor_of(&start["nextCursor"]);
    let mut stream = open_stream(&reader, &format!("?after={cursor}"), None, None).await;
    let poll = {
        let reader = reader.handle();
        let query = format!("?after={cursor}&wait=20");
        tokio::spawn(async move { page(&reader, &query).await })
    };

    let e1 = writer.add_event("call-1", "e1").await;
    let answer = tokio::time::timeout(READ_LIMIT, poll)
        .await
        .expect("the long poll answers")
        .expect("the long poll");
    let polled = changes_of(&answer);
    assert_eq!(types_of(&polled), ["event.appended"], "{answer}");
    assert_eq!(polled[0]["data"], e1);

    complete(&writer, "call-1", None).await;
    let live = next_changes(&mut stream, 2).await;
    assert_eq!(types_of(&live), ["event.appended", "session.ended"]);
    assert_eq!(live[0], polled[0]);
    assert_eq!(live[1]["data"], writer.session_part("call-1").await);
    assert_idle(&mut stream).await;
}}
