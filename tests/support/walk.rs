//! The cursor walker: follows `nextCursor` from the first page of a session to the end, checking
//! every page's pagination on the way. It does not fetch pages itself, so every suite reads them
//! its own way (in process, from a child process, recorded or not):
//!
//! ```ignore
//! let mut walker = CursorWalk::new("call-1", "asc", 7);
//! while let Some(query) = walker.next_query() {
//!     walker.page(fetch(&format!("/sessions/call-1{query}")).await);
//! }
//! let walk = walker.finish();
//! ```

use serde_json::Value;

/// The most pages a walk may take before the test calls it endless.
const MAX_PAGES: usize = 10_000;

/// What following `nextCursor` from the first page saw.
#[derive(Debug)]
pub struct Walk {
    /// Every event's `seq`, in the order the pages gave them.
    pub seqs: Vec<u64>,
    /// Every event's `eventId`, in the same order.
    pub event_ids: Vec<String>,
    /// Every event as the pages gave it, in the same order.
    pub events: Vec<Value>,
    /// `pagination.total` of the first page.
    pub first_total: u64,
    /// The first page, whole.
    pub first: Value,
    /// How many pages were read.
    pub pages: usize,
}

/// A walk in progress; see the module documentation.
pub struct CursorWalk {
    session: String,
    order: String,
    limit: u32,
    stable: bool,
    next: Option<String>,
    event_count: Option<u64>,
    walk: Walk,
}

impl CursorWalk {
    /// A walk of `session` in `order` ("asc" or "desc") with page size `limit`.
    pub fn new(session: &str, order: &str, limit: u32) -> CursorWalk {
        CursorWalk {
            session: session.to_owned(),
            order: order.to_owned(),
            limit,
            stable: false,
            next: Some(format!("?order={order}&limit={limit}")),
            event_count: None,
            walk: Walk {
                seqs: Vec::new(),
                event_ids: Vec::new(),
                events: Vec::new(),
                first_total: 0,
                first: Value::Null,
                pages: 0,
            },
        }
    }

    /// Also asserts that `eventCount` is the same on every page: for a store nobody writes to.
    pub fn stable(mut self) -> CursorWalk {
        self.stable = true;
        self
    }

    /// The query of the next page to read (`?order=…&limit=…[&after=…]`), or `None` at the end.
    pub fn next_query(&self) -> Option<String> {
        self.next.clone()
    }

    /// Takes the next page's body (the caller has checked that it was a 200) and checks its
    /// pagination.
    pub fn page(&mut self, body: Value) {
        let (session, order, limit) = (&self.session, &self.order, self.limit);
        let walk = &mut self.walk;
        assert!(
            self.next.is_some(),
            "{session}: a page after the end of the walk"
        );
        assert!(
            walk.pages < MAX_PAGES,
            "the {order} cursor walk of {session} did not end after {MAX_PAGES} pages"
        );
        walk.pages += 1;
        let p = &body["pagination"];
        assert_eq!(p["limit"], limit, "{session}: {body}");
        assert_eq!(p["total"], body["eventCount"], "{session}: {body}");
        let count = body["eventCount"].as_u64().expect("eventCount");
        if self.stable {
            assert_eq!(
                *self.event_count.get_or_insert(count),
                count,
                "{session}: eventCount changed between pages of a store nobody writes to"
            );
        }
        if walk.pages == 1 {
            assert_eq!(p["page"], 1, "the first page is page 1: {body}");
            walk.first_total = p["total"].as_u64().expect("total");
        } else {
            assert!(p["page"].is_null(), "cursor mode has no page: {body}");
        }
        let events = body["events"].as_array().expect("events");
        assert!(events.len() <= limit as usize, "{session}: {body}");
        for e in events {
            walk.seqs.push(e["seq"].as_u64().expect("seq"));
            walk.event_ids
                .push(e["eventId"].as_str().expect("eventId").to_owned());
            walk.events.push(e.clone());
        }
        let has_more = p["hasMore"].as_bool().expect("hasMore");
        match p["nextCursor"].as_str() {
            Some(cursor) => {
                assert!(has_more, "a nextCursor means hasMore: {body}");
                self.next = Some(format!("?order={order}&limit={limit}&after={cursor}"));
            }
            None => {
                assert!(!has_more, "hasMore needs a nextCursor: {body}");
                self.next = None;
            }
        }
        if walk.pages == 1 {
            walk.first = body;
        }
    }

    /// The whole walk; it must have reached the end.
    pub fn finish(self) -> Walk {
        assert!(
            self.next.is_none(),
            "{}: the walk was finished before its end",
            self.session
        );
        self.walk
    }
}
