"""The Python half of tools/openapi/clients/run.sh: the TypeScript scenario's call, driven through
the client that openapi-python-client generated from the OpenAPI document (its endpoint functions'
`sync_detailed` and its models: requests are built from the models, answers are parsed into them).

    python scenario.py CLIENT_DIR BASE_URL SESSION_ID

CLIENT_DIR holds the generated package `session_service_client`. SESSION_SERVICE_API_KEY (optional):
a `write` key, sent by the generated AuthenticatedClient; SESSION_SERVICE_READ_KEY (optional, with
it): a `read` key, to check the scopes. Prints one line per step; exits 1 at the first failure.

Bodies with free-form JSON (metadata, payload) are built with the generated models' `from_dict`,
so this does not depend on what the generator names the free-form object's model.

Besides the call's life it plays the two conditional writes through the generated arguments:
appends with `expected_seq` (the `Expected-Seq` header: 201 at the right seq, 412 seq_mismatch with
current_seq at a stale one, a replay 200 whatever it says) and patch_session (a JSON Merge Patch of
the metadata, after the call ended) with the session's `ETag` as `if_match` (200, then 412
precondition_failed with the stale tag) and sent as the wrong media type (415).
"""

import datetime
import importlib
import json
import os
import sys
import time
import traceback

PACKAGE = "session_service_client"


class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)


def main():
    if len(sys.argv) < 3:
        print("[py] FAILED: usage: scenario.py CLIENT_DIR BASE_URL [SESSION_ID]")
        return 2
    client_dir, base_url = sys.argv[1], sys.argv[2]
    session_id = sys.argv[3] if len(sys.argv) > 3 else f"py-{int(time.time() * 1000)}"
    api_key = os.environ.get("SESSION_SERVICE_API_KEY", "")
    read_key = os.environ.get("SESSION_SERVICE_READ_KEY", "")

    sys.path.insert(0, client_dir)
    gen = importlib.import_module(PACKAGE)
    api = importlib.import_module(f"{PACKAGE}.api.sessions")
    m = importlib.import_module(f"{PACKAGE}.models")
    for name in ("add_event", "add_events", "complete_session", "create_session", "get_event",
                 "get_session", "list_events", "list_sessions", "patch_session"):
        importlib.import_module(f"{PACKAGE}.api.sessions.{name}")
    UNSET = importlib.import_module(f"{PACKAGE}.types").UNSET

    def new_client(key, **httpx_args):
        args = {"base_url": base_url, "raise_on_unexpected_status": True, "timeout": 30.0}
        if httpx_args:
            args["httpx_args"] = httpx_args
        return gen.AuthenticatedClient(token=key, **args) if key else gen.Client(**args)

    client = new_client(api_key)
    step_no = 0

    def step(name, body):
        nonlocal step_no
        step_no += 1
        try:
            detail = body()
        except Failure as failure:
            print(f"[py] FAILED {step_no}: {name}: {failure}", flush=True)
            sys.exit(1)
        except Exception:  # a bug in the client or here: show where
            print(f"[py] FAILED {step_no}: {name}: {traceback.format_exc()}", flush=True)
            sys.exit(1)
        print(f"[py] ok {step_no}: {name}{f' ({detail})' if detail else ''}", flush=True)

    def expect(response, status, model):
        """The status, and the parsed answer's model; names the problem when it is an error."""
        got = int(response.status_code)
        if got != status:
            problem = response.parsed
            why = f" ({problem.code}: {problem.detail})" if isinstance(problem, m.Problem) else ""
            raise Failure(f"expected HTTP {status}, got {got}{why}: {response.content[:300]!r}")
        check(isinstance(response.parsed, model),
              f"the answer is {type(response.parsed).__name__}, expected {model.__name__}")
        return response.parsed

    def seqs(events):
        return [e.seq for e in events]

    def etag_of(response, what):
        """The session's version from an answer that shows a session (create, GET, PATCH, complete)."""
        tag = response.headers.get("etag", "")
        check(tag != "", f"{what}: no ETag")
        return tag

    state = {}

    def create():
        body = m.CreateSession.from_dict(
            {"sessionId": session_id, "language": "en-US", "metadata": {"from": "py", "tier": "gold", "nested": {"n": 1}}})
        response = api.create_session.sync_detailed(client=client, body=body)
        session = expect(response, 201, m.Session)
        check(session.session_id == session_id, f"sessionId {session.session_id}")
        check(session.status == m.SessionStatus.INITIATED, f"status {session.status}")
        check(session.metadata["from"] == "py" and session.metadata["tier"] == "gold",
              f"metadata {session.metadata.to_dict()}")
        check(session.metadata["nested"] == {"n": 1}, f"metadata.nested {session.metadata['nested']}")
        check(session.event_count == 0, f"eventCount {session.event_count}")
        check(session.ended_at is None and session.ended_reason is None, "endedAt/endedReason not null")
        check(isinstance(session.started_at, datetime.datetime), f"startedAt {session.started_at!r}")
        state["session"] = session
        return f"startedAt {session.started_at.isoformat()}, ETag {etag_of(response, 'create')}"

    step(f"create_session {session_id}: 201, initiated, metadata stored", create)

    def create_again():
        body = m.CreateSession.from_dict({"sessionId": session_id, "language": "fr", "metadata": {"from": "other"}})
        session = expect(api.create_session.sync_detailed(client=client, body=body), 200, m.Session)
        check(session.started_at == state["session"].started_at, f"startedAt {session.started_at}")
        check(session.language == "en-US" and session.metadata["from"] == "py", "language/metadata overwritten")

    step("create_session again: 200, the stored session unchanged", create_again)

    first = m.AddEvent.from_dict({"eventId": "utt-1", "type": "user_speech", "payload": {"text": "hi"}})

    def append():
        event = expect(api.add_event.sync_detailed(session_id, client=client, body=first), 201, m.Event)
        check(event.seq == 1, f"seq {event.seq}")
        check(event.event_id == "utt-1" and event.type_ == m.EventType.USER_SPEECH, f"event {event.to_dict()}")
        check(event.payload["text"] == "hi", f"payload {event.payload.to_dict()}")
        state["first"] = event

    step("add_event: 201, seq 1", append)

    def replay():
        event = expect(api.add_event.sync_detailed(session_id, client=client, body=first), 200, m.Event)
        check(event.seq == state["first"].seq and event.timestamp == state["first"].timestamp,
              f"event {event.to_dict()}")

    step("add_event again: 200, same seq and timestamp", replay)

    at = datetime.datetime(2025, 12, 21, 15, 30, 15, 123000, tzinfo=datetime.timezone.utc)
    batch = m.AddEvents(events=[
        m.AddEvent.from_dict({"eventId": "utt-2", "type": "bot_speech", "payload": {"text": "hello, how can I help?"}}),
        m.AddEvent.from_dict({"eventId": "sys-1", "type": "system", "payload": {"kind": "transfer", "to": ["queue", 7]},
                              "timestamp": "2025-12-21T15:30:15.123Z"}),
        m.AddEvent.from_dict({"eventId": "utt-3", "type": "user_speech", "payload": {"text": "my booking", "confidence": 0.93}}),
    ])

    def add_batch():
        check(batch.events[1].timestamp == at and batch.events[0].type_ == m.EventType.BOT_SPEECH,
              f"AddEvent.from_dict: {batch.events[1].timestamp!r}, {batch.events[0].type_!r}")
        stored = expect(api.add_events.sync_detailed(session_id, client=client, body=batch), 201, m.EventBatch).events
        check(seqs(stored) == [2, 3, 4], f"seqs {seqs(stored)}")
        check([e.event_id for e in stored] == ["utt-2", "sys-1", "utt-3"], "eventIds out of order")
        check(stored[1].timestamp == at, f"client timestamp {stored[1].timestamp!r}")
        check(stored[1].payload["to"] == ["queue", 7], f"payload {stored[1].payload.to_dict()}")

    step("add_events (batch of 3): 201, seqs 2-4 in request order", add_batch)

    def batch_replay():
        stored = expect(api.add_events.sync_detailed(session_id, client=client, body=batch), 200, m.EventBatch).events
        check(seqs(stored) == [2, 3, 4], f"seqs {seqs(stored)}")

    step("add_events again: 200, same seqs", batch_replay)

    def walk_events():
        seen, after, pages = [], UNSET, 0
        while True:
            page = expect(api.list_events.sync_detailed(session_id, client=client, order=m.Order.ASC, limit=3,
                                                         after=after), 200, m.EventPage)
            pages += 1
            seen += page.events
            check(page.pagination.total == 4 and page.pagination.limit == 3, f"pagination {page.pagination.to_dict()}")
            if after is not UNSET:
                check(page.pagination.page is None, f"page {page.pagination.page} in cursor mode")
            nxt = page.pagination.next_cursor
            check(page.pagination.has_more == isinstance(nxt, str), "hasMore disagrees with nextCursor")
            if not isinstance(nxt, str):
                break
            check(pages < 10, "the cursor walk does not end")
            after = nxt
        check(seqs(seen) == [1, 2, 3, 4], f"seqs {seqs(seen)}")
        return f"{pages} pages"

    step("list_events order=asc limit=3, then nextCursor: seqs 1-4 dense ascending", walk_events)

    def walk_session():
        seen, after, pages = [], UNSET, 0
        while True:
            page = expect(api.get_session.sync_detailed(session_id, client=client, order=m.Order.DESC, limit=3,
                                                        after=after), 200, m.SessionPage)
            pages += 1
            check(page.status == m.SessionStatus.ACTIVE, f"status {page.status}")
            check(page.event_count == 4 and page.pagination.total == 4, f"eventCount {page.event_count}")
            check(isinstance(page.last_event_at, datetime.datetime), f"lastEventAt {page.last_event_at!r}")
            check(page.metadata["tier"] == "gold", f"metadata {page.metadata.to_dict()}")
            seen += page.events
            nxt = page.pagination.next_cursor
            if not isinstance(nxt, str):
                break
            check(pages < 10, "the cursor walk does not end")
            after = nxt
        check(seqs(seen) == [4, 3, 2, 1], f"seqs {seqs(seen)}")
        return f"{pages} pages"

    step("get_session order=desc limit=3, then nextCursor: active, eventCount 4, seqs 4-1", walk_session)

    def one_event():
        event = expect(api.get_event.sync_detailed(session_id, "sys-1", client=client), 200, m.Event)
        check(event.seq == 3 and event.type_ == m.EventType.SYSTEM and event.payload["kind"] == "transfer",
              f"event {event.to_dict()}")

    step("get_event sys-1: 200, seq 3", one_event)

    def no_event():
        problem = expect(api.get_event.sync_detailed(session_id, "nope", client=client), 404, m.Problem)
        check(problem.code == "event_not_found" and problem.status == 404, f"problem {problem.to_dict()}")

    step("get_event nope: 404 event_not_found (Problem model)", no_event)

    # Conditional appends: `Expected-Seq` is the generated `expected_seq` argument of add_event and
    # add_events. The client must put it into the request's headers as text: httpx takes only str or
    # bytes there, and raises TypeError before sending anything otherwise.
    def conditional(operation, **kwargs):
        try:
            return operation.sync_detailed(session_id, client=client, **kwargs)
        except TypeError as error:
            raise Failure(
                f"the generated {operation.__name__.rsplit('.', 1)[-1]} cannot send Expected-Seq ({error}): the "
                "document's header parameter has the schema type [integer, null], which openapi-python-client makes "
                "a union argument (int | None | Unset) whose value goes into the headers as it is (only a plain "
                "integer, number, boolean or enum parameter is turned into text with str()), so httpx refuses the "
                "int; the header's schema should be {type: integer, format: int64, minimum: 0} (not nullable: "
                "an optional header is one that is absent, required: false)") from None

    merged = m.AddEvent.from_dict({"eventId": "mrg-1", "type": "bot_speech", "payload": {"text": "merged"}})

    def append_expected():
        event = expect(conditional(api.add_event, body=merged, expected_seq=4), 201, m.Event)
        check(event.seq == 5 and event.event_id == "mrg-1", f"event {event.to_dict()}")

    step("add_event expected_seq=4 (the last seq): 201, seq 5", append_expected)

    def append_stale():
        late = m.AddEvent.from_dict({"eventId": "mrg-stale", "type": "bot_speech", "payload": {"text": "too late"}})
        problem = expect(conditional(api.add_event, body=late, expected_seq=4), 412, m.Problem)
        check(problem.code == "seq_mismatch" and problem.status == 412, f"problem {problem.to_dict()}")
        check(problem.current_seq == 5, f"currentSeq {problem.current_seq!r}, expected 5 (the last seq)")
        expect(api.get_event.sync_detailed(session_id, "mrg-stale", client=client), 404, m.Problem)

    step("add_event with the stale expected_seq=4: 412 seq_mismatch, currentSeq 5, nothing stored", append_stale)

    def replay_expected():
        event = expect(conditional(api.add_event, body=merged, expected_seq=0), 200, m.Event)
        check(event.seq == 5, f"seq {event.seq}")

    step("the seq-5 event again with expected_seq=0: 200 (a replay, whatever the header)", replay_expected)

    def batch_expected():
        body = m.AddEvents(events=[
            m.AddEvent.from_dict({"eventId": "mrg-2", "type": "user_speech", "payload": {"text": "and Tuesday?"}}),
            m.AddEvent.from_dict({"eventId": "mrg-3", "type": "bot_speech", "payload": {"text": "Tuesday works"}}),
        ])
        stored = expect(conditional(api.add_events, body=body, expected_seq=5), 201, m.EventBatch).events
        check(seqs(stored) == [6, 7], f"seqs {seqs(stored)}")

    step("add_events (batch of 2) expected_seq=5: 201, seqs 6-7", batch_expected)

    # `metadata.KEY=VALUE` filters are not parameters in the document (OpenAPI cannot name a family
    # of `metadata.*` query parameters), so list_sessions has no argument for them: this client adds
    # the filter to every request it sends (httpx merges it with the endpoint's own parameters).
    filtered = new_client(api_key, params={"metadata.from": "py"})

    def listed():
        after, found, pages = UNSET, None, 0
        while True:
            page = expect(api.list_sessions.sync_detailed(client=filtered, status="active", limit=20, after=after),
                          200, m.SessionList)
            pages += 1
            for session in page.sessions:
                check(session.status == m.SessionStatus.ACTIVE, f"{session.session_id} has status {session.status}")
                check(session.metadata["from"] == "py",
                      f"{session.session_id} has metadata {session.metadata.to_dict()}")
                if session.session_id == session_id:
                    found = session
            nxt = page.pagination.next_cursor
            if found or not page.pagination.has_more or not isinstance(nxt, str):
                break
            check(pages < 50, "the list does not end")
            after = nxt
        check(found is not None, f"{session_id} is not listed")
        check(found.event_count == 7, f"eventCount {found.event_count}")
        return f"{pages} page(s)"

    step("list_sessions status=active, metadata.from=py: ours is listed, every one matches", listed)

    def complete():
        body = m.CompleteSession(status=m.TerminalStatus.COMPLETED, reason="caller_hangup")
        response = api.complete_session.sync_detailed(session_id, client=client, body=body)
        session = expect(response, 200, m.Session)
        check(session.status == m.SessionStatus.COMPLETED, f"status {session.status}")
        check(session.ended_reason == "caller_hangup", f"endedReason {session.ended_reason}")
        check(isinstance(session.ended_at, datetime.datetime), f"endedAt {session.ended_at!r}")
        check(session.expires_at is None, f"expiresAt {session.expires_at!r}")
        state["ended"] = session
        return f"endedAt {session.ended_at.isoformat()}, ETag {etag_of(response, 'complete')}"

    step("complete_session {completed, caller_hangup}: 200", complete)

    def complete_again():
        try:
            response = api.complete_session.sync_detailed(session_id, client=client)
        except TypeError as error:  # the generated request sent UNSET as its JSON body
            raise Failure(
                f"the generated complete_session cannot send no body ({error}): the document's optional requestBody "
                "schema is oneOf [null, CompleteSession], so the client sends body=UNSET (or None: JSON null, which "
                "the service answers 400 body_not_object) instead of omitting it") from None
        session = expect(response, 200, m.Session)
        check(session.ended_at == state["ended"].ended_at and session.ended_reason == "caller_hangup",
              f"session {session.to_dict()}")

    step("complete_session again (no body): 200, the same endedAt", complete_again)

    def late_event():
        late = m.AddEvent.from_dict({"eventId": "utt-late", "type": "user_speech", "payload": {"text": "hello?"}})
        problem = expect(api.add_event.sync_detailed(session_id, client=client, body=late), 409, m.Problem)
        check(problem.code == "session_ended", f"problem {problem.to_dict()}")

    step("add_event to the ended session: 409 session_ended (Problem model)", late_event)

    # patch_session sends its body as `application/merge-patch+json` (the document's only media type
    # for it); `if_match` is the generated `If-Match` argument.
    def patch(body, **kwargs):
        return api.patch_session.sync_detailed(session_id, client=client, body=m.SessionPatch.from_dict(body), **kwargs)

    def read_session():
        response = api.get_session.sync_detailed(session_id, client=client, limit=1)
        return expect(response, 200, m.SessionPage), etag_of(response, "get_session")

    def patch_ended():
        response = patch({"metadata": {"disposition": "sale", "nested": None}})
        session = expect(response, 200, m.Session)
        metadata = session.metadata
        check(metadata["disposition"] == "sale", f"metadata {metadata.to_dict()}")
        check("nested" not in metadata, f"nested not removed: {metadata.to_dict()}")
        check(metadata["from"] == "py" and metadata["tier"] == "gold", f"other keys not kept: {metadata.to_dict()}")
        check(session.status == m.SessionStatus.COMPLETED and session.ended_at == state["ended"].ended_at,
              f"session {session.to_dict()}")
        state["etag"] = etag_of(response, "patch_session")
        return f"ETag {state['etag']}"

    step("patch_session (merge-patch) on the ended call: set disposition, remove nested: 200, the rest kept", patch_ended)

    def patch_if_match():
        _, tag = read_session()
        check(tag == state["etag"], f"get_session's ETag {tag} is not the patch's {state['etag']} (nothing changed)")
        response = patch({"metadata": {"summaryId": "sum-9"}}, if_match=tag)
        session = expect(response, 200, m.Session)
        check(session.metadata["summaryId"] == "sum-9" and session.metadata["disposition"] == "sale",
              f"metadata {session.metadata.to_dict()}")
        new = etag_of(response, "patch_session")
        check(new != tag, f"the ETag did not change: {new}")
        state["stale"], state["etag"] = tag, new
        return f"{tag} -> {new}"

    step("get_session's ETag as if_match: patch_session 200, a new ETag", patch_if_match)

    def patch_stale():
        problem = expect(patch({"metadata": {"summaryId": "sum-10"}}, if_match=state["stale"]), 412, m.Problem)
        check(problem.code == "precondition_failed", f"problem {problem.to_dict()}")
        session, tag = read_session()
        check(session.metadata["summaryId"] == "sum-9", f"metadata changed: {session.metadata.to_dict()}")
        check(tag == state["etag"], f"the ETag changed: {tag}")

    step("patch_session with the now-stale if_match: 412 precondition_failed, nothing changed", patch_stale)

    # patch_session always sends `application/merge-patch+json`; like the export, this sends the
    # generated request with one header changed, and parses the answer with the generated parser.
    def patch_json():
        kwargs = api.patch_session._get_kwargs(session_id, body=m.SessionPatch.from_dict({"metadata": {"summaryId": "sum-11"}}))
        kwargs["headers"] = {**kwargs.get("headers", {}), "Content-Type": "application/json"}
        response = api.patch_session._build_response(client=client, response=client.get_httpx_client().request(**kwargs))
        problem = expect(response, 415, m.Problem)
        check(problem.code == "unsupported_media_type", f"problem {problem.to_dict()}")

    step("patch_session's request as Content-Type: application/json: 415 unsupported_media_type", patch_json)

    def listed_ended():
        after, found, pages = UNSET, False, 0
        while True:
            page = expect(api.list_sessions.sync_detailed(client=client, status="completed", ended_reason="caller_hangup",
                                                          order=m.Order.ASC, limit=100, after=after), 200, m.SessionList)
            pages += 1
            found = found or any(s.session_id == session_id for s in page.sessions)
            check(all(s.status == m.SessionStatus.COMPLETED and s.ended_reason == "caller_hangup" for s in page.sessions),
                  "a session outside the filter")
            nxt = page.pagination.next_cursor
            if found or not isinstance(nxt, str):
                break
            check(pages < 50, "the list does not end")
            after = nxt
        check(found, f"{session_id} is not listed")

    step("list_sessions status=completed, endedReason=caller_hangup: ours is listed", listed_ended)

    # The generated list_events parses any 200 as an EventPage (openapi-python-client reads only the
    # application/json answer of an operation), so the export sends the generated request (path,
    # quoting) with `Accept: application/x-ndjson` and parses each line with the generated Event model.
    def export():
        kwargs = api.list_events._get_kwargs(session_id)
        kwargs["headers"] = {**kwargs.get("headers", {}), "Accept": "application/x-ndjson"}
        response = client.get_httpx_client().request(**kwargs)
        check(response.status_code == 200, f"expected HTTP 200, got {response.status_code}: {response.text[:300]}")
        content_type = response.headers.get("content-type", "")
        check(content_type.startswith("application/x-ndjson"), f"Content-Type {content_type}")
        check(response.text.endswith("\n"), "the export does not end with a newline")
        events = []
        for number, line in enumerate(response.text[:-1].split("\n"), 1):
            try:
                events.append(m.Event.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as error:
                raise Failure(f"line {number} is not an Event ({error!r}): {line}") from None
        check(seqs(events) == [1, 2, 3, 4, 5, 6, 7], f"seqs {seqs(events)}")
        check(all(e.session_id == session_id for e in events), "an event of another session")
        check(events[0].payload["text"] == "hi", f"first payload {events[0].payload.to_dict()}")
        return f"{len(events)} lines"

    step("list_events as application/x-ndjson: one Event per line, seqs 1-7", export)

    if api_key:
        def auth():
            anonymous = new_client("")
            problem = expect(api.get_session.sync_detailed(session_id, client=anonymous), 401, m.Problem)
            check(problem.code == "unauthorized", f"problem {problem.to_dict()}")
            if not read_key:
                return "no read key given"
            reader = new_client(read_key)
            expect(api.get_event.sync_detailed(session_id, "utt-1", client=reader), 200, m.Event)
            body = m.CompleteSession(status=m.TerminalStatus.COMPLETED)
            problem = expect(api.complete_session.sync_detailed(session_id, client=reader, body=body), 403, m.Problem)
            check(problem.code == "forbidden", f"problem {problem.to_dict()}")
            return ""

        step("without a key: 401 unauthorized; a read key: GET 200, POST 403 forbidden", auth)

    print(f"[py] passed: {step_no} steps against {base_url} (session {session_id})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
