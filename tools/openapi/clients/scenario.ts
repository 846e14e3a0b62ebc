// The TypeScript half of tools/openapi/clients/run.sh: one call's life, driven through openapi-fetch
// with the types openapi-typescript generated (default options) from the OpenAPI document into
// ./api.d.ts. Every request, body and answer goes through those types, with no way around them
// (no `any`, casts, non-null assertions or ts-ignore comments: run.sh checks with no-casts.mjs), so a
// document whose types do not fit the API fails to compile here.
//
//   node scenario.js BASE_URL SESSION_ID
//
// SESSION_SERVICE_API_KEY (optional): a `write` key, sent by the client as `Authorization: Bearer`;
// SESSION_SERVICE_READ_KEY (optional, with it): a `read` key, to check the scopes.
// Prints one line per step; exits 1 at the first failure, naming it.
//
// Besides the call's life it plays the two conditional writes: appends with `Expected-Seq` (201 at
// the right seq, 412 seq_mismatch with currentSeq at a stale one, a replay 200 whatever it says) and
// a metadata PATCH (JSON Merge Patch) after the call ended, with the session's `ETag` as `If-Match`
// (200, then 412 precondition_failed with the stale tag) and as the wrong media type (415).
import createClient, { createQuerySerializer } from "openapi-fetch";
import type { Middleware } from "openapi-fetch";
import type { components, paths } from "./api.js";

type Session = components["schemas"]["Session"];
type Event = components["schemas"]["Event"];
type Problem = components["schemas"]["Problem"];
type AddEvent = components["schemas"]["AddEvent"];

const baseUrl = process.argv[2] ?? process.env.SESSION_SERVICE_URL ?? "";
const sessionId = process.argv[3] ?? `ts-${Date.now()}`;
const apiKey = process.env.SESSION_SERVICE_API_KEY ?? "";
const readKey = process.env.SESSION_SERVICE_READ_KEY ?? "";

class Failure extends Error {}

function check(condition: boolean, what: string): asserts condition {
    if (!condition) throw new Failure(what);
}

function describe(value: unknown): string {
    return JSON.stringify(value) ?? String(value);
}

// The status, and the problem's code and detail when the answer is an error.
function expectStatus(result: { response: Response; error?: Problem | undefined }, want: number): void {
    const got = result.response.status;
    if (got !== want) {
        const problem = result.error ? ` (${result.error.code}: ${result.error.detail})` : "";
        throw new Failure(`expected HTTP ${want}, got ${got}${problem}`);
    }
}

function present<T>(value: T | undefined, what: string): T {
    if (value === undefined) throw new Failure(`${what}: no body`);
    return value;
}

// The session's version from an answer that shows a session (create, GET, PATCH, complete).
function etagOf(response: Response, what: string): string {
    const tag = response.headers.get("etag");
    if (tag === null || tag === "") throw new Failure(`${what}: no ETag`);
    return tag;
}

function expectSeqs(events: Event[], want: number[], what: string): void {
    const got = events.map((e) => e.seq);
    check(describe(got) === describe(want), `${what}: seqs ${describe(got)}, expected ${describe(want)}`);
}

// An NDJSON line is checked against the generated Event type by a type guard (a runtime check that
// TypeScript trusts), not by a cast.
function isEvent(value: unknown): value is Event {
    return (
        typeof value === "object" &&
        value !== null &&
        "sessionId" in value &&
        typeof value.sessionId === "string" &&
        "eventId" in value &&
        typeof value.eventId === "string" &&
        "seq" in value &&
        typeof value.seq === "number" &&
        "type" in value &&
        (value.type === "user_speech" || value.type === "bot_speech" || value.type === "system") &&
        "payload" in value &&
        typeof value.payload === "object" &&
        value.payload !== null &&
        !Array.isArray(value.payload) &&
        "timestamp" in value &&
        typeof value.timestamp === "string"
    );
}

let stepNo = 0;
async function step(name: string, body: () => Promise<string>): Promise<void> {
    stepNo += 1;
    try {
        const detail = await body();
        console.log(`[ts] ok ${stepNo}: ${name}${detail ? ` (${detail})` : ""}`);
    } catch (error) {
        const why = error instanceof Failure ? error.message : error instanceof Error ? error.stack ?? error.message : String(error);
        console.log(`[ts] FAILED ${stepNo}: ${name}: ${why}`);
        process.exit(1);
    }
}

function authAs(key: string): Middleware {
    return {
        onRequest({ request }) {
            request.headers.set("Authorization", `Bearer ${key}`);
            return request;
        },
    };
}

// Only JSON bodies (`application/json`, and `application/problem+json` for errors) unless a call
// asks for another media type (the export).
function newClient(key: string) {
    const client = createClient<paths, "application/json" | "application/problem+json">({ baseUrl });
    if (key) client.use(authAs(key));
    return client;
}

async function main(): Promise<void> {
    if (!baseUrl) {
        console.log("[ts] FAILED: usage: node scenario.js BASE_URL SESSION_ID (or SESSION_SERVICE_URL)");
        process.exit(2);
    }
    const api = newClient(apiKey);
    const path = { sessionId };
    let created: Session | undefined;

    await step(`POST /sessions ${sessionId}: 201, initiated, metadata stored`, async () => {
        const result = await api.POST("/sessions", {
            body: { sessionId, language: "en-US", metadata: { from: "ts", tier: "gold", nested: { n: 1 } } },
        });
        expectStatus(result, 201);
        const session: Session = present(result.data, "create");
        check(session.sessionId === sessionId, `sessionId ${session.sessionId}`);
        check(session.status === "initiated", `status ${session.status}`);
        check(session.language === "en-US", `language ${session.language}`);
        check(session.metadata.from === "ts" && session.metadata.tier === "gold", `metadata ${describe(session.metadata)}`);
        check(describe(session.metadata.nested) === '{"n":1}', `metadata.nested ${describe(session.metadata.nested)}`);
        check(session.eventCount === 0, `eventCount ${session.eventCount}`);
        check(session.endedAt === null && session.endedReason === null, "endedAt/endedReason not null");
        const location = result.response.headers.get("location");
        check(location !== null && location.endsWith(`/sessions/${sessionId}`), `Location ${location}`);
        created = session;
        return `startedAt ${session.startedAt}, ETag ${etagOf(result.response, "create")}`;
    });

    await step("POST /sessions again: 200, the stored session unchanged", async () => {
        const result = await api.POST("/sessions", {
            body: { sessionId, language: "fr", metadata: { from: "other" } },
        });
        expectStatus(result, 200);
        const session: Session = present(result.data, "create again");
        check(session.startedAt === created?.startedAt, `startedAt ${session.startedAt} != ${created?.startedAt}`);
        check(session.language === "en-US" && session.metadata.from === "ts", "language/metadata overwritten");
        return "";
    });

    const first: AddEvent = { eventId: "utt-1", type: "user_speech", payload: { text: "hi" } };
    let firstEvent: Event | undefined;
    await step("POST /sessions/{id}/events: 201, seq 1", async () => {
        const result = await api.POST("/sessions/{sessionId}/events", { params: { path }, body: first });
        expectStatus(result, 201);
        const event: Event = present(result.data, "append");
        check(event.seq === 1, `seq ${event.seq}`);
        check(event.eventId === "utt-1" && event.type === "user_speech", `event ${describe(event)}`);
        check(event.payload.text === "hi", `payload ${describe(event.payload)}`);
        check(event.sessionId === sessionId, `sessionId ${event.sessionId}`);
        firstEvent = event;
        return `timestamp ${event.timestamp}`;
    });

    await step("POST the same event again: 200, same seq and timestamp", async () => {
        const result = await api.POST("/sessions/{sessionId}/events", { params: { path }, body: first });
        expectStatus(result, 200);
        const event: Event = present(result.data, "replay");
        check(event.seq === firstEvent?.seq, `seq ${event.seq}`);
        check(event.timestamp === firstEvent?.timestamp, `timestamp ${event.timestamp}`);
        return "";
    });

    const batch: AddEvent[] = [
        { eventId: "utt-2", type: "bot_speech", payload: { text: "hello, how can I help?" } },
        { eventId: "sys-1", type: "system", payload: { kind: "transfer", to: ["queue", 7] }, timestamp: "2025-12-21T15:30:15.123Z" },
        { eventId: "utt-3", type: "user_speech", payload: { text: "my booking", confidence: 0.93 } },
    ];
    await step("POST /sessions/{id}/events:batch of 3: 201, seqs 2-4 in request order", async () => {
        const result = await api.POST("/sessions/{sessionId}/events:batch", { params: { path }, body: { events: batch } });
        expectStatus(result, 201);
        const stored: Event[] = present(result.data, "batch").events;
        expectSeqs(stored, [2, 3, 4], "batch");
        check(describe(stored.map((e) => e.eventId)) === describe(batch.map((e) => e.eventId)), "eventIds out of order");
        check(stored[1]?.timestamp === "2025-12-21T15:30:15.123Z", `client timestamp ${stored[1]?.timestamp}`);
        check(describe(stored[1]?.payload.to) === '["queue",7]', `payload ${describe(stored[1]?.payload)}`);
        return "";
    });

    await step("POST the same batch again: 200, same seqs", async () => {
        const result = await api.POST("/sessions/{sessionId}/events:batch", { params: { path }, body: { events: batch } });
        expectStatus(result, 200);
        expectSeqs(present(result.data, "batch replay").events, [2, 3, 4], "batch replay");
        return "";
    });

    await step("GET /sessions/{id}/events?order=asc&limit=3, then nextCursor: seqs 1-4 dense ascending", async () => {
        const seen: Event[] = [];
        let after: string | undefined;
        let pages = 0;
        for (;;) {
            const result = await api.GET("/sessions/{sessionId}/events", {
                params: { path, query: after === undefined ? { order: "asc", limit: 3 } : { order: "asc", limit: 3, after } },
            });
            expectStatus(result, 200);
            const page = present(result.data, "events page");
            pages += 1;
            seen.push(...page.events);
            check(page.pagination.total === 4, `total ${page.pagination.total}`);
            check(page.pagination.limit === 3, `limit ${page.pagination.limit}`);
            if (after !== undefined) check(page.pagination.page === null, `page ${page.pagination.page} in cursor mode`);
            const next = page.pagination.nextCursor;
            check(page.pagination.hasMore === (typeof next === "string"), "hasMore disagrees with nextCursor");
            if (typeof next !== "string") break;
            check(pages < 10, "the cursor walk does not end");
            after = next;
        }
        expectSeqs(seen, [1, 2, 3, 4], "cursor walk");
        return `${pages} pages`;
    });

    await step("GET /sessions/{id}?order=desc&limit=3, then nextCursor: active, eventCount 4, seqs 4-1", async () => {
        const seen: Event[] = [];
        let after: string | undefined;
        let pages = 0;
        for (;;) {
            const result = await api.GET("/sessions/{sessionId}", {
                params: { path, query: after === undefined ? { order: "desc", limit: 3 } : { order: "desc", limit: 3, after } },
            });
            expectStatus(result, 200);
            const page = present(result.data, "session page");
            pages += 1;
            check(page.sessionId === sessionId && page.status === "active", `status ${page.status}`);
            check(page.eventCount === 4 && page.pagination.total === 4, `eventCount ${page.eventCount}`);
            check(page.lastEventAt !== null && page.lastEventAt !== undefined, "lastEventAt is null");
            check(page.metadata.tier === "gold", `metadata ${describe(page.metadata)}`);
            seen.push(...page.events);
            const next = page.pagination.nextCursor;
            if (typeof next !== "string") break;
            check(pages < 10, "the cursor walk does not end");
            after = next;
        }
        expectSeqs(seen, [4, 3, 2, 1], "cursor walk");
        return `${pages} pages`;
    });

    await step("GET /sessions/{id}/events/sys-1: 200, seq 3", async () => {
        const result = await api.GET("/sessions/{sessionId}/events/{eventId}", {
            params: { path: { sessionId, eventId: "sys-1" } },
        });
        expectStatus(result, 200);
        const event: Event = present(result.data, "event");
        check(event.seq === 3 && event.type === "system" && event.payload.kind === "transfer", `event ${describe(event)}`);
        return "";
    });

    await step("GET /sessions/{id}/events/nope: 404 event_not_found (typed problem)", async () => {
        const result = await api.GET("/sessions/{sessionId}/events/{eventId}", {
            params: { path: { sessionId, eventId: "nope" } },
        });
        expectStatus(result, 404);
        const problem: Problem | undefined = result.error;
        check(problem?.code === "event_not_found" && problem.status === 404, `problem ${describe(problem)}`);
        return "";
    });

    // Conditional appends: the header is a typed parameter of both operations (`params.header`).
    const merged: AddEvent = { eventId: "mrg-1", type: "bot_speech", payload: { text: "merged" } };
    await step("POST /sessions/{id}/events with Expected-Seq: 4 (the last seq): 201, seq 5", async () => {
        const result = await api.POST("/sessions/{sessionId}/events", {
            params: { path, header: { "Expected-Seq": 4 } },
            body: merged,
        });
        expectStatus(result, 201);
        const event: Event = present(result.data, "conditional append");
        check(event.seq === 5 && event.eventId === "mrg-1", `event ${describe(event)}`);
        return "";
    });

    await step("POST /sessions/{id}/events with the stale Expected-Seq: 4: 412 seq_mismatch, currentSeq 5, nothing stored", async () => {
        const result = await api.POST("/sessions/{sessionId}/events", {
            params: { path, header: { "Expected-Seq": 4 } },
            body: { eventId: "mrg-stale", type: "bot_speech", payload: { text: "too late" } },
        });
        expectStatus(result, 412);
        const problem: Problem | undefined = result.error;
        check(problem?.code === "seq_mismatch" && problem.status === 412, `problem ${describe(problem)}`);
        check(problem.currentSeq === 5, `currentSeq ${problem.currentSeq}, expected 5 (the last seq)`);
        const stored = await api.GET("/sessions/{sessionId}/events/{eventId}", {
            params: { path: { sessionId, eventId: "mrg-stale" } },
        });
        expectStatus(stored, 404);
        return "";
    });

    await step("the seq-5 event again with Expected-Seq: 0: 200 (a replay, whatever the header)", async () => {
        const result = await api.POST("/sessions/{sessionId}/events", {
            params: { path, header: { "Expected-Seq": 0 } },
            body: merged,
        });
        expectStatus(result, 200);
        check(present(result.data, "replay").seq === 5, "the replay has another seq");
        return "";
    });

    await step("POST /sessions/{id}/events:batch of 2 with Expected-Seq: 5: 201, seqs 6-7", async () => {
        const result = await api.POST("/sessions/{sessionId}/events:batch", {
            params: { path, header: { "Expected-Seq": 5 } },
            body: {
                events: [
                    { eventId: "mrg-2", type: "user_speech", payload: { text: "and Tuesday?" } },
                    { eventId: "mrg-3", type: "bot_speech", payload: { text: "Tuesday works" } },
                ],
            },
        });
        expectStatus(result, 201);
        expectSeqs(present(result.data, "conditional batch").events, [6, 7], "conditional batch");
        return "";
    });

    // `metadata.KEY=VALUE` filters are not parameters in the document (OpenAPI cannot name a
    // family of `metadata.*` query parameters), so the typed query carries the documented ones and
    // this request's serializer appends the metadata filter.
    const queryString = createQuerySerializer();
    await step("GET /sessions?status=active&metadata.from=ts: ours is listed, every one matches", async () => {
        let after: string | undefined;
        let found: Session | undefined;
        let pages = 0;
        for (;;) {
            const result = await api.GET("/sessions", {
                params: { query: after === undefined ? { status: "active", limit: 20 } : { status: "active", limit: 20, after } },
                querySerializer: (query) => [queryString(query), "metadata.from=ts"].filter((part) => part !== "").join("&"),
            });
            expectStatus(result, 200);
            const list = present(result.data, "list");
            pages += 1;
            for (const session of list.sessions) {
                check(session.status === "active", `${session.sessionId} has status ${session.status}`);
                check(session.metadata.from === "ts", `${session.sessionId} has metadata ${describe(session.metadata)}`);
                if (session.sessionId === sessionId) found = session;
            }
            const next = list.pagination.nextCursor;
            if (found || !list.pagination.hasMore || typeof next !== "string") break;
            check(pages < 50, "the list does not end");
            after = next;
        }
        check(found !== undefined, `${sessionId} is not listed`);
        check(found.eventCount === 7, `eventCount ${found.eventCount}`);
        return `${pages} page(s)`;
    });

    let ended: Session | undefined;
    await step("POST /sessions/{id}/complete {completed, caller_hangup}: 200", async () => {
        const result = await api.POST("/sessions/{sessionId}/complete", {
            params: { path },
            body: { status: "completed", reason: "caller_hangup" },
        });
        expectStatus(result, 200);
        const session: Session = present(result.data, "complete");
        check(session.status === "completed", `status ${session.status}`);
        check(session.endedReason === "caller_hangup", `endedReason ${session.endedReason}`);
        check(typeof session.endedAt === "string", `endedAt ${session.endedAt}`);
        check(session.expiresAt === null, `expiresAt ${session.expiresAt}`);
        ended = session;
        return `endedAt ${session.endedAt}, ETag ${etagOf(result.response, "complete")}`;
    });

    await step("POST complete again, no body: 200, the same endedAt", async () => {
        const result = await api.POST("/sessions/{sessionId}/complete", { params: { path } });
        expectStatus(result, 200);
        const session: Session = present(result.data, "complete again");
        check(session.endedAt === ended?.endedAt && session.endedReason === "caller_hangup", `session ${describe(session)}`);
        return "";
    });

    await step("POST a new event to the ended session: 409 session_ended (typed problem)", async () => {
        const result = await api.POST("/sessions/{sessionId}/events", {
            params: { path },
            body: { eventId: "utt-late", type: "user_speech", payload: { text: "hello?" } },
        });
        expectStatus(result, 409);
        check(result.error?.code === "session_ended", `problem ${describe(result.error)}`);
        return "";
    });

    // PATCH takes `application/merge-patch+json`, the only media type of its requestBody in the
    // document; openapi-fetch sends `Content-Type: application/json` with any body unless the call
    // names another (it does not read the request's media type from the types), so these do.
    const mergePatch = { "Content-Type": "application/merge-patch+json" };
    let patchedTag = "";
    await step("PATCH /sessions/{id} (merge-patch) on the ended call: set disposition, remove nested: 200, the rest kept", async () => {
        const result = await api.PATCH("/sessions/{sessionId}", {
            params: { path },
            headers: mergePatch,
            body: { metadata: { disposition: "sale", nested: null } },
        });
        expectStatus(result, 200);
        const session: Session = present(result.data, "patch");
        const metadata = session.metadata;
        check(metadata.disposition === "sale", `metadata ${describe(metadata)}`);
        check(!("nested" in metadata), `nested not removed: ${describe(metadata)}`);
        check(metadata.from === "ts" && metadata.tier === "gold", `other keys not kept: ${describe(metadata)}`);
        check(session.status === "completed" && session.endedAt === ended?.endedAt, `session ${describe(session)}`);
        patchedTag = etagOf(result.response, "patch");
        return `ETag ${patchedTag}`;
    });

    let staleTag = "";
    await step("GET's ETag as If-Match: PATCH 200, a new ETag", async () => {
        const read = await api.GET("/sessions/{sessionId}", { params: { path, query: { limit: 1 } } });
        expectStatus(read, 200);
        const tag = etagOf(read.response, "GET");
        check(tag === patchedTag, `GET's ETag ${tag} is not the PATCH answer's ${patchedTag} (nothing changed in between)`);
        const result = await api.PATCH("/sessions/{sessionId}", {
            params: { path, header: { "If-Match": tag } },
            headers: mergePatch,
            body: { metadata: { summaryId: "sum-9" } },
        });
        expectStatus(result, 200);
        const session: Session = present(result.data, "conditional patch");
        check(session.metadata.summaryId === "sum-9" && session.metadata.disposition === "sale", `metadata ${describe(session.metadata)}`);
        const next = etagOf(result.response, "conditional patch");
        check(next !== tag, `the ETag did not change: ${next}`);
        staleTag = tag;
        patchedTag = next;
        return `${tag} -> ${next}`;
    });

    await step("PATCH with the now-stale If-Match: 412 precondition_failed, nothing changed", async () => {
        const result = await api.PATCH("/sessions/{sessionId}", {
            params: { path, header: { "If-Match": staleTag } },
            headers: mergePatch,
            body: { metadata: { summaryId: "sum-10" } },
        });
        expectStatus(result, 412);
        check(result.error?.code === "precondition_failed", `problem ${describe(result.error)}`);
        const read = await api.GET("/sessions/{sessionId}", { params: { path, query: { limit: 1 } } });
        expectStatus(read, 200);
        const session = present(read.data, "GET");
        check(session.metadata.summaryId === "sum-9", `metadata changed: ${describe(session.metadata)}`);
        check(etagOf(read.response, "GET") === patchedTag, "the ETag changed");
        return "";
    });

    await step("PATCH as Content-Type: application/json: 415 unsupported_media_type", async () => {
        const result = await api.PATCH("/sessions/{sessionId}", {
            params: { path },
            headers: { "Content-Type": "application/json" },
            body: { metadata: { summaryId: "sum-11" } },
        });
        expectStatus(result, 415);
        check(result.error?.code === "unsupported_media_type", `problem ${describe(result.error)}`);
        return "";
    });

    await step("GET /sessions?status=completed&endedReason=caller_hangup: ours is listed", async () => {
        let after: string | undefined;
        let found = false;
        for (let pages = 1; ; pages++) {
            const result = await api.GET("/sessions", {
                params: {
                    query: { status: "completed", endedReason: "caller_hangup", order: "asc", limit: 100, ...(after === undefined ? {} : { after }) },
                },
            });
            expectStatus(result, 200);
            const list = present(result.data, "list");
            found ||= list.sessions.some((s) => s.sessionId === sessionId);
            check(list.sessions.every((s) => s.status === "completed" && s.endedReason === "caller_hangup"), "a session outside the filter");
            const next = list.pagination.nextCursor;
            if (found || typeof next !== "string") break;
            check(pages < 50, "the list does not end");
            after = next;
        }
        check(found, `${sessionId} is not listed`);
        return "";
    });

    await step("GET /sessions/{id}/events as application/x-ndjson: one Event per line, seqs 1-7", async () => {
        const result = await api.GET("/sessions/{sessionId}/events", {
            params: { path },
            headers: { Accept: "application/x-ndjson" },
            parseAs: "text",
        });
        expectStatus(result, 200);
        const type = result.response.headers.get("content-type") ?? "";
        check(type.startsWith("application/x-ndjson"), `Content-Type ${type}`);
        const text: string = present(result.data, "export");
        check(text.endsWith("\n"), "the export does not end with a newline");
        const events: Event[] = [];
        for (const [i, line] of text.slice(0, -1).split("\n").entries()) {
            const value: unknown = JSON.parse(line);
            check(isEvent(value), `line ${i + 1} is not an Event: ${line}`);
            events.push(value);
        }
        expectSeqs(events, [1, 2, 3, 4, 5, 6, 7], "export");
        check(events.every((e) => e.sessionId === sessionId), "an event of another session");
        check(events[0]?.payload.text === "hi", `first payload ${describe(events[0]?.payload)}`);
        return `${events.length} lines`;
    });

    if (apiKey) {
        await step("without a key: 401 unauthorized; a read key: GET 200, POST 403 forbidden", async () => {
            const anonymous = newClient("");
            const refused = await anonymous.GET("/sessions/{sessionId}", { params: { path } });
            expectStatus(refused, 401);
            check(refused.error?.code === "unauthorized", `problem ${describe(refused.error)}`);
            if (!readKey) return "no read key given";
            const reader = newClient(readKey);
            const read = await reader.GET("/sessions/{sessionId}/events/{eventId}", { params: { path: { sessionId, eventId: "utt-1" } } });
            expectStatus(read, 200);
            const write = await reader.POST("/sessions/{sessionId}/complete", { params: { path } });
            expectStatus(write, 403);
            check(write.error?.code === "forbidden", `problem ${describe(write.error)}`);
            return "";
        });
    }

    console.log(`[ts] passed: ${stepNo} steps against ${baseUrl} (session ${sessionId})`);
}

main().catch((error: unknown) => {
    console.log(`[ts] FAILED: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
    process.exit(1);
});
