// How the calls list (console/list.js) applies the change feed, in Node without a browser: the
// order rows are inserted in, the filters a call from the feed must pass (as GET /sessions
// applies them), and the merge that never moves a row back. Run by tools/browser/run.sh.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { compareNewestFirst, filtersFrom, matches, merge } from "../../console/list.js";

const session = (over = {}) => ({
  sessionId: "c-1",
  status: "initiated",
  language: "en-US",
  metadata: {},
  startedAt: "2026-01-02T10:00:00.000Z",
  endedAt: null,
  eventCount: 0,
  endedReason: null,
  lastEventAt: null,
  ...over,
});

const filters = (query) => filtersFrom(new URLSearchParams(query));

describe("the calls list's handling of the feed", () => {
  test("newest first by startedAt, then by sessionId descending, as the service orders it", () => {
    const rows = [
      session({ sessionId: "a", startedAt: "2026-01-02T10:00:00.000Z" }),
      session({ sessionId: "b", startedAt: "2026-01-02T10:00:00.001Z" }),
      session({ sessionId: "c", startedAt: "2026-01-02T10:00:00.000Z" }),
    ];
    assert.deepEqual(rows.sort(compareNewestFirst).map((s) => s.sessionId), ["b", "c", "a"]);
  });

  test("the status, the start range and the metadata filter apply as in GET /sessions", () => {
    assert.ok(matches(filters(""), session()));
    assert.ok(matches(filters("status=initiated,active"), session()));
    assert.ok(!matches(filters("status=active"), session()));
    assert.ok(matches(filters("from=2026-01-02T10:00:00.000Z"), session()), "from is inclusive");
    assert.ok(!matches(filters("before=2026-01-02T10:00:00.000Z"), session()), "before is exclusive");
    assert.ok(matches(filters("before=2026-01-02T10:00:00.001Z"), session()));
    const md = session({ metadata: { userId: "u-1", n: 7, note: "<b>x</b>" } });
    assert.ok(matches(filters("key=userId&value=u-1"), md));
    assert.ok(!matches(filters("key=userId&value=u-2"), md));
    assert.ok(!matches(filters("key=n&value=7"), md), "only a string value matches, as the service does");
    assert.ok(matches(filters(`key=note&value=${encodeURIComponent("<b>x</b>")}`), md));
    assert.ok(!matches(filters("key=missing&value="), md));
    assert.ok(!matches(filters("key=__proto__&value=x"), session()), "an inherited property is no metadata");
    assert.ok(matches(filters("key=__proto__&value=x"), session({ metadata: JSON.parse('{"__proto__": "x"}') })));
  });

  test("a change older than what is shown never moves the status or the event count back", () => {
    const shown = session({ status: "completed", endedAt: "2026-01-02T10:05:00.000Z", endedReason: "done", eventCount: 4, lastEventAt: "2026-01-02T10:04:00.000Z" });
    const older = session({ status: "initiated", metadata: { a: "1" } });
    const merged = merge(shown, older);
    assert.equal(merged.status, "completed");
    assert.equal(merged.endedReason, "done");
    assert.equal(merged.eventCount, 4);
    assert.deepEqual(merged.metadata, { a: "1" }, "the metadata is the change's");
    const activeShown = session({ status: "active", eventCount: 2 });
    const ended = session({ status: "failed", eventCount: 3, endedReason: "x" });
    assert.deepEqual(merge(activeShown, ended), ended, "a newer state is taken whole");
    assert.deepEqual(merge(undefined, ended), ended);
  });
});
