#!/usr/bin/env python3
"""A voice agent's side of one phone call, against the Conversation Session Service.

  1. create the call (a session) with its language and metadata;
  2. follow its live transcript in parallel (a thread reading the Server-Sent Events stream line by
     line), which drops its connection once on purpose and resumes with Last-Event-ID;
  3. stream the call's turns as events, each with a deterministic eventId (turn-0001, ...), through
     a helper that retries network errors, 5xx and 429 with the same eventId; one turn is sent
     twice on purpose, as after a lost answer: the second answer is 200 with the same seq;
  4. end the call with a reason; the follower prints session-ended and stops;
  5. exit 0 only if the follower saw every turn exactly once, in seq order, and the end.

Python 3.9+, standard library only.

  SESSION_SERVICE_URL       the service (default http://127.0.0.1:3000)
  SESSION_SERVICE_API_KEY   an API key with the write scope, if the service has keys
  SESSION_SERVICE_READ_KEY  a key for the transcript follower (read is enough; default: the above)
"""

from __future__ import annotations

import http.client
import json
import os
import random
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Optional
from urllib.parse import quote

# What is said on the call, in order.
TURNS = [
    ("user_speech", "Hi, I need to change my booking."),
    ("bot_speech", "Of course. Which booking is it?"),
    ("user_speech", "The table for four on Friday at eight."),
    ("bot_speech", "Found it. What would you like to change?"),
    ("user_speech", "Can we move it to Saturday, same time?"),
    ("bot_speech", "Done: Saturday at eight, for four. Anything else?"),
    ("user_speech", "No, that's all. Thanks!"),
    ("bot_speech", "You're welcome. Goodbye!"),
]
RESENT_TURN = 3  # sent a second time, as a client does when the first answer was lost
DROP_AFTER_SEQ = 3  # the follower drops its connection after this seq and resumes
END_REASON = "caller_hangup"

# The service is reached directly, never through a proxy named in the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_print_lock = threading.Lock()


def say(role: str, line: str, *, error: bool = False) -> None:
    with _print_lock:
        print(f"[{role}]".ljust(13) + line if role else line, file=sys.stderr if error else sys.stdout, flush=True)


def event_id_of(turn: int) -> str:
    return f"turn-{turn:04d}"


# --- the HTTP client both roles share ----------------------------------------------------------


@dataclass
class Config:
    """Where the service is and which keys to send (README "Configuration", "Running it safely")."""

    base_url: str
    api_key: Optional[str]  # the agent's: needs the write scope
    read_key: Optional[str]  # the follower's: read is enough

    @classmethod
    def from_env(cls) -> "Config":
        api_key = os.environ.get("SESSION_SERVICE_API_KEY") or None
        return cls(
            base_url=(os.environ.get("SESSION_SERVICE_URL") or "http://127.0.0.1:3000").rstrip("/"),
            api_key=api_key,
            read_key=os.environ.get("SESSION_SERVICE_READ_KEY") or api_key,
        )


class ApiError(Exception):
    """An answer not to retry (a 4xx other than 429), or the last one when retries ran out."""

    def __init__(self, status: int, code: Optional[str], message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def auth_headers(key: Optional[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def is_retryable(status: int) -> bool:
    """503 (storage_unavailable, storage_full, request_timeout, too_many_streams), any 5xx, and 429."""
    return status == 429 or status >= 500


def backoff_seconds(attempt: int, retry_after: Optional[str]) -> float:
    """Exponential backoff with jitter before attempt `attempt + 1`, at least `Retry-After`."""
    exponential = min(0.2 * 2**attempt, 5.0)
    jittered = exponential / 2 + random.random() * exponential / 2
    return max(jittered, float(retry_after) if retry_after and retry_after.isdigit() else 0.0)


def describe_problem(status: int, body: bytes) -> tuple[Optional[str], str]:
    """The `code` of a problem JSON body (README "Errors") and a one-line description."""
    code = detail = None
    try:
        problem = json.loads(body)
        if isinstance(problem, dict):
            code, detail = problem.get("code"), problem.get("detail")
    except ValueError:
        pass  # not problem JSON (a proxy's error page, say)
    return code, " ".join(str(part) for part in (status, code) if part) + (f": {detail}" if detail else "")


def send(config: Config, method: str, path: str, body: Any, *, key: Optional[str], label: str,
         log: Callable[[str], None], max_attempts: int = 6) -> tuple[int, Any]:
    """Sends `method path` with `body` and retries on a network error, a 5xx or a 429 with backoff.

    Every write of this service is idempotent (a replay answers 200 with what is stored), so a retry
    of the same request never duplicates a turn: the body is serialised once, here, and every
    attempt sends exactly those bytes. Answers (status, JSON) for the first 2xx; raises ApiError for
    any other status, or when the attempts run out.
    """
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json", **auth_headers(key)}
    if data is not None:
        headers["Content-Type"] = "application/json"
    attempt = 1
    while True:
        retry_after = None
        request = urllib.request.Request(config.base_url + path, data=data, method=method, headers=headers)
        try:
            with OPENER.open(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:  # an answer other than 2xx (before URLError: a subclass)
            code, description = describe_problem(error.code, error.read())
            if not is_retryable(error.code):
                raise ApiError(error.code, code, f"{label}: {description}") from None
            if attempt >= max_attempts:
                raise ApiError(error.code, code, f"{label}: still {description} after {attempt} attempts") from None
            failure, retry_after = description, error.headers.get("Retry-After")
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            # Refused, reset, timed out: the request may or may not have been stored. Sending it
            # again is safe either way (201 if it was not, 200 with the stored event if it was).
            reason = getattr(error, "reason", error)
            if attempt >= max_attempts:
                raise ApiError(0, None, f"{label}: network error after {attempt} attempts: {reason}") from None
            failure = f"network error ({reason})"
        wait = backoff_seconds(attempt - 1, retry_after)
        log(f"{label}: {failure}; retrying the same request in {wait * 1000:.0f} ms "
            f"(attempt {attempt + 1} of {max_attempts})")
        time.sleep(wait)
        attempt += 1


# --- the live-transcript follower ----------------------------------------------------------------


def read_frames(response: http.client.HTTPResponse, on_retry: Callable[[float], None]) -> Iterator[tuple[str, str, Optional[str]]]:
    """The event-stream format, line by line: yields (event, data, id); `retry:` goes to on_retry."""
    event, data, ident = "", [], None
    for raw in response:  # one line at a time, as it arrives
        line = raw.decode("utf-8").rstrip("\n").rstrip("\r")
        if line == "":
            if data:
                yield event or "message", "\n".join(data), ident
            event, data, ident = "", [], None
        elif line.startswith(":"):
            continue  # a comment: ": keepalive"
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                ident = value
            elif name == "retry" and value.isdigit():
                on_retry(int(value) / 1000)


class Follower(threading.Thread):
    """Follows a session's live transcript from its first event until session-ended.

    `GET /sessions/{id}/events` with `Accept: text/event-stream`; prints each `event` frame; after a
    dropped connection it reconnects with `Last-Event-ID: <the last id seen>`, so the stream goes on
    after the last event it got: none twice, none skipped.
    """

    def __init__(self, config: Config, session_id: str, drop_after_seq: Optional[int] = None) -> None:
        super().__init__(name="transcript", daemon=True)
        self.config = config
        self.session_id = session_id
        self.drop_after_seq = drop_after_seq
        self.events: list[dict[str, Any]] = []  # every event frame, as received
        self.ended: Optional[dict[str, Any]] = None  # the data of session-ended
        self.error: Optional[BaseException] = None
        self.connections = 0
        self.caught_up = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            self.follow()
        except BaseException as error:  # reported by the agent
            self.error = error
        finally:
            self.caught_up.set()  # never leave the agent waiting

    def log(self, line: str) -> None:
        say("transcript", line)

    def follow(self) -> None:
        url = f"{self.config.base_url}/sessions/{quote(self.session_id, safe='')}/events"
        last_event_id: Optional[str] = None  # the id of the last event frame: its seq
        retry = 2.0  # seconds, until the service says otherwise (`retry:`)
        failures = 0  # in a row, without a frame in between
        dropped = False

        def set_retry(seconds: float) -> None:
            nonlocal retry
            retry = seconds

        while not self.stop.is_set():
            self.connections += 1
            headers = {"Accept": "text/event-stream", **auth_headers(self.config.read_key)}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            self.log("connecting" if last_event_id is None else f"reconnecting with Last-Event-ID: {last_event_id}")
            wait = retry
            try:
                # The timeout is per read: longer than the service's keepalive comments (15 s).
                with OPENER.open(urllib.request.Request(url, headers=headers), timeout=30) as response:
                    for event, data, ident in read_frames(response, set_retry):
                        failures = 0
                        if event == "event":
                            stored = json.loads(data)
                            if ident is not None:
                                last_event_id = ident
                            self.events.append(stored)
                            who = {"user_speech": "caller", "bot_speech": "agent "}.get(stored["type"], stored["type"])
                            text = stored["payload"].get("text", stored["payload"])
                            self.log(f"seq {stored['seq']} {who}: {json.dumps(text)}  ({stored['eventId']})")
                            if stored["seq"] == self.drop_after_seq and not dropped:
                                dropped = True
                                self.log(f"(dropping the connection after seq {stored['seq']}, as a network failure would)")
                                break  # leaving `with` closes the connection
                        elif event == "caught-up":
                            self.log(f"caught up at seq {json.loads(data)['seq']}: live from here")
                            self.caught_up.set()
                        elif event == "session-ended":
                            self.ended = json.loads(data)
                            self.log(f"session-ended: {self.ended['status']}, reason {self.ended['endedReason']}, "
                                     f"{self.ended['eventCount']} events")
                            return
                        elif event == "session-deleted":
                            raise ApiError(410, "session_deleted", f"session {self.session_id} was erased while it was followed")
                self.log(f"the connection closed before session-ended; resuming in {wait * 1000:.0f} ms")
            except urllib.error.HTTPError as error:
                code, description = describe_problem(error.code, error.read())
                if not is_retryable(error.code):
                    raise ApiError(error.code, code, f"the live transcript answered {description}") from None
                failures += 1
                wait = max(retry, backoff_seconds(failures, error.headers.get("Retry-After")))
                self.log(f"{description}; resuming in {wait * 1000:.0f} ms")
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                failures += 1
                self.log(f"connection failed ({getattr(error, 'reason', error)}); resuming in {wait * 1000:.0f} ms")
            if failures >= 10:
                raise RuntimeError(f"the live transcript failed {failures} times in a row")
            self.stop.wait(wait)
        raise RuntimeError("stopped before the session ended")


# --- the agent -----------------------------------------------------------------------------------


def check(follower: Follower, acknowledged: dict[str, int]) -> list[str]:
    """Every turn exactly once, in seq order (1, 2, 3, ...), as acknowledged to the agent; then the end."""
    problems = []
    received: set[int] = set()
    previous = 0
    for event in follower.events:
        if event["seq"] in received:
            problems.append(f"seq {event['seq']} ({event['eventId']}) arrived twice")
        elif event["seq"] != previous + 1:
            problems.append(f"seq {event['seq']} arrived after seq {previous}: out of order or a gap")
        received.add(event["seq"])
        previous = max(previous, event["seq"])
    for turn, (kind, text) in enumerate(TURNS, start=1):
        event_id = event_id_of(turn)
        matches = [event for event in follower.events if event["eventId"] == event_id]
        if not matches:
            problems.append(f"{event_id} never arrived on the live transcript")
            continue
        event = matches[0]
        if (event["seq"], event["type"], event["payload"].get("text")) != (acknowledged.get(event_id), kind, text) \
                or event["seq"] != turn:
            problems.append(f"{event_id} arrived as seq {event['seq']} {event['type']} {json.dumps(event['payload'])}, "
                            f"not as sent and acknowledged (seq {acknowledged.get(event_id)})")
    if len(follower.events) != len(TURNS):
        problems.append(f"{len(follower.events)} event frames for {len(TURNS)} turns")
    ended = follower.ended or {}
    if (ended.get("status"), ended.get("endedReason"), ended.get("eventCount")) != ("completed", END_REASON, len(TURNS)):
        problems.append(f"session-ended said {ended.get('status')}/{ended.get('endedReason')}/{ended.get('eventCount')} "
                        f"events, not completed/{END_REASON}/{len(TURNS)}")
    if follower.connections < 2:
        problems.append("the follower never resumed after its dropped connection")
    return problems


def main() -> int:
    config = Config.from_env()
    session_id = f"call-py-{int(time.time() * 1000)}-{secrets.token_hex(3)}"

    def agent(line: str) -> None:
        say("agent", line)

    def write(method: str, path: str, body: Any, label: str) -> tuple[int, Any]:
        return send(config, method, path, body, key=config.api_key, label=label, log=agent)

    agent(f"service {config.base_url}, {'with an API key' if config.api_key else 'without an API key'}")

    # 1. The call starts. A retried create is safe too: 200 with the stored session.
    status, session = write("POST", "/sessions", {
        "sessionId": session_id,
        "language": "en-US",
        "metadata": {"from": "+15550100", "to": "+15550199", "agent": "booking-assistant", "example": "python"},
    }, "create")
    agent(f"created {session_id}: {status}, status {session['status']}")

    # 2. The live transcript, in a thread. Turns start once it has caught up, so it sees them live.
    follower = Follower(config, session_id, drop_after_seq=DROP_AFTER_SEQ)
    follower.start()
    try:
        if not follower.caught_up.wait(10):
            raise RuntimeError("the live transcript: no caught-up after 10 s")
        if follower.error is not None:
            raise follower.error

        # 3. The turns. The body is built once per turn (its timestamp included): a retry must send
        # the same content, or it is a different event (409 event_id_conflict).
        path = f"/sessions/{quote(session_id, safe='')}/events"
        acknowledged: dict[str, int] = {}
        problems: list[str] = []
        for turn, (kind, text) in enumerate(TURNS, start=1):
            event_id = event_id_of(turn)
            timestamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            event = {"eventId": event_id, "type": kind, "payload": {"text": text}, "timestamp": timestamp}
            status, stored = write("POST", path, event, event_id)
            agent(f"{event_id} {kind}: {status}, seq {stored['seq']}")
            acknowledged[event_id] = stored["seq"]
            if turn == RESENT_TURN:
                again_status, again = write("POST", path, event, event_id)
                same = again_status == 200 and again["seq"] == stored["seq"]
                agent(f"{event_id} sent again (as after a lost answer): {again_status}, seq {again['seq']}: "
                      + ("the stored event, nothing added" if same else "UNEXPECTED"))
                if not same:
                    problems.append(f"resending {event_id} answered {again_status} seq {again['seq']}, "
                                    f"not 200 seq {stored['seq']}")
            time.sleep(0.1)  # someone is talking

        # 4. The caller hangs up. Repeating complete is safe too (200, the first reason stands).
        status, ended = write("POST", f"/sessions/{quote(session_id, safe='')}/complete",
                              {"status": "completed", "reason": END_REASON}, "complete")
        agent(f"completed: {status}, status {ended['status']}, reason {ended['endedReason']}, "
              f"{ended['eventCount']} events")

        # 5. What the follower saw.
        follower.join(15)
        if follower.is_alive():
            raise RuntimeError("session-ended on the live transcript: nothing after 15 s")
        if follower.error is not None:
            raise follower.error
        problems += check(follower, acknowledged)
        if problems:
            for problem in problems:
                say("", f"FAILED: {problem}", error=True)
            return 1
        say("", f"OK: the live transcript showed all {len(TURNS)} turns exactly once, in seq order, then "
                f"session-ended ({follower.ended['status']}, {follower.ended['endedReason']}), over "
                f"{follower.connections} connections (resumed with Last-Event-ID)")
        return 0
    finally:
        follower.stop.set()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ApiError, RuntimeError) as failure:
        say("", f"FAILED: {failure}", error=True)
        sys.exit(1)
