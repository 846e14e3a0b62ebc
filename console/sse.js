// Server-sent events over fetch: EventSource cannot send an Authorization header, so the
// console reads the stream itself. `parseEventStream` follows the WHATWG event-stream format;
// `follow` keeps one session's stream open, resuming after a drop from the last seq it saw
// (Last-Event-ID) so that no event is shown twice or skipped.

import { ApiError, request, sessionPath } from "./api.js";

/**
 * Reads `body` (a ReadableStream of bytes) to its end and calls `onFrame({event, data, id})` for
 * every dispatched event, `onFrame({comment})` for comment lines (keepalives) and
 * `onFrame({retry})` for a retry field. Aborting `signal` cancels the stream and ends the read.
 */
export async function parseEventStream(body, onFrame, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const cancel = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", cancel, { once: true });
  let buffer = "";
  let event = "";
  let data = [];
  let id = null;
  const line = (text) => {
    if (text === "") {
      if (data.length > 0) onFrame({ event: event || "message", data: data.join("\n"), id });
      event = "";
      data = [];
      return;
    }
    if (text.startsWith(":")) {
      onFrame({ comment: text.slice(1).trim() });
      return;
    }
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) id = value;
    else if (field === "retry" && /^\d+$/.test(value)) onFrame({ retry: Number(value) });
  };
  try {
    while (!signal?.aborted) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      // A lone "\r" at the end may be the first half of "\r\n": keep it for the next chunk.
      const lines = buffer.split(/\r\n|\r(?!$)|\n/);
      buffer = lines.pop();
      for (const text of lines) {
        if (signal?.aborted) break;
        line(text);
      }
    }
  } finally {
    signal?.removeEventListener("abort", cancel);
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });

/**
 * Follows the events of `sessionId` after `lastSeq` until the session ends, is deleted, or
 * `signal` aborts. Calls `onEvent(event)` once per seq, in seq order; `onCaughtUp(seq)`;
 * `onEnded(session)`; `onDeleted()`; `onState(state)` with "connecting", "live", "reconnecting",
 * "ended", "deleted", "stopped" (an error it cannot retry: `onError(error)` says which).
 */
export async function follow(sessionId, lastSeq, handlers, signal) {
  const { onEvent, onCaughtUp, onEnded, onDeleted, onState, onError } = handlers;
  let retryMs = 2000;
  let state = null;
  const setState = (next) => {
    if (next !== state) onState(next);
    state = next;
  };
  setState("connecting");
  while (!signal.aborted) {
    const headers = lastSeq > 0 ? { "Last-Event-ID": String(lastSeq) } : {};
    let outcome = "dropped";
    try {
      const response = await request(sessionPath(sessionId, "/events"), {
        accept: "text/event-stream",
        headers,
        signal,
      });
      if (!(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
        response.body?.cancel().catch(() => {});
        throw new ApiError(response.status, { detail: "The service does not stream events (no text/event-stream answer)." });
      }
      setState("live");
      // Ends this connection (not the following): on a gap, or when `signal` aborts.
      const connection = new AbortController();
      const stop = () => connection.abort();
      signal.addEventListener("abort", stop, { once: true });
      try {
        await parseEventStream(response.body, (frame) => {
          if (frame.retry) retryMs = frame.retry;
          if (frame.event === undefined) return;
          let data;
          try {
            data = JSON.parse(frame.data);
          } catch {
            return;
          }
          if (frame.event === "event") {
            if (data.seq <= lastSeq) return; // shown already
            if (data.seq !== lastSeq + 1) {
              // A gap: never show events out of order; reconnect from the last one shown.
              connection.abort();
              return;
            }
            lastSeq = data.seq;
            onEvent(data);
          } else if (frame.event === "caught-up") {
            onCaughtUp(data.seq);
          } else if (frame.event === "session-ended") {
            outcome = "ended";
            onEnded(data);
          } else if (frame.event === "session-deleted") {
            outcome = "deleted";
            onDeleted(data);
          }
        }, connection.signal);
      } finally {
        signal.removeEventListener("abort", stop);
      }
    } catch (error) {
      if (signal.aborted) break;
      if (error instanceof ApiError && error.status === 410) {
        outcome = "deleted";
        onDeleted({ sessionId });
      } else if (error instanceof ApiError && error.status !== 0 && error.status !== 503 && error.status < 500) {
        onError(error);
        setState("stopped");
        return;
      } else if (error instanceof ApiError && error.retryAfter) {
        retryMs = Math.max(retryMs, error.retryAfter * 1000);
      }
    }
    if (outcome === "ended" || outcome === "deleted") {
      setState(outcome);
      return;
    }
    if (signal.aborted) break;
    setState("reconnecting");
    await sleep(retryMs, signal);
  }
  onState("stopped");
}

/** How long a feed stream may stay silent (the service sends a keepalive every 15 s by default). */
const FEED_SILENCE_MS = 45_000;
const FEED_BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];

/**
 * Follows the change feed (`GET /changes`, as Server-Sent Events) from `cursor`, for the change
 * `types` (a comma list), until `signal` aborts or it cannot go on. Every connection sends the
 * last cursor seen as `Last-Event-ID`, so a drop loses nothing and repeats nothing; a dropped or
 * silent connection is opened again after 1, 2, 4 … 30 s. Calls `onChange(change)` in feed order
 * and `onState(state)` with "connecting", "live", "reconnecting". Answers how it ended:
 * "expired" (the cursor is older than the changes kept, 410, or unknown, 400: read everything
 * again and follow from a new head), "stopped" (an error it cannot retry: `onError(error)` said
 * which) or "aborted".
 */
export async function followChanges(cursor, types, { onChange, onState, onError }, signal) {
  let last = cursor;
  let failures = 0;
  let state = null;
  const setState = (next) => {
    if (next !== state) onState(next);
    state = next;
  };
  setState("connecting");
  while (!signal.aborted) {
    let delivered = false;
    try {
      const response = await request(`/changes?types=${encodeURIComponent(types)}`, {
        accept: "text/event-stream",
        headers: { "Last-Event-ID": last },
        signal,
      });
      if (!(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
        response.body?.cancel().catch(() => {});
        throw new ApiError(response.status, { detail: "The service does not stream its change feed (no text/event-stream answer)." });
      }
      setState("live");
      const opened = Date.now();
      // Ends this connection only: when it stays silent too long, or when `signal` aborts.
      const connection = new AbortController();
      const stop = () => connection.abort();
      signal.addEventListener("abort", stop, { once: true });
      let watchdog = setTimeout(stop, FEED_SILENCE_MS);
      try {
        await parseEventStream(response.body, (frame) => {
          clearTimeout(watchdog);
          watchdog = setTimeout(stop, FEED_SILENCE_MS);
          if (frame.event === undefined || !frame.id) return;
          let change = null;
          try {
            change = JSON.parse(frame.data);
          } catch {
            // not a change: skipped, but its cursor counts as seen
          }
          if (change && typeof change === "object") {
            try {
              onChange(change);
            } catch (error) {
              console.error("the calls list could not apply a change", error);
            }
          }
          last = frame.id;
          delivered = true;
        }, connection.signal);
      } finally {
        clearTimeout(watchdog);
        signal.removeEventListener("abort", stop);
      }
      if (delivered || Date.now() - opened > 10_000) failures = 0;
    } catch (error) {
      if (signal.aborted) break;
      if (error instanceof ApiError && (error.status === 410 || (error.status === 400 && error.problem?.code === "invalid_cursor"))) {
        return "expired";
      }
      if (error instanceof ApiError && error.status !== 0 && error.status !== 429 && error.status < 500) {
        onError(error);
        return "stopped";
      }
      if (error instanceof ApiError && error.retryAfter) failures = Math.max(failures, FEED_BACKOFF_MS.findIndex((ms) => ms >= error.retryAfter * 1000));
    }
    if (signal.aborted) break;
    setState("reconnecting");
    const base = FEED_BACKOFF_MS[Math.min(Math.max(failures, 0), FEED_BACKOFF_MS.length - 1)];
    failures += 1;
    await sleep(base / 2 + Math.random() * (base / 2), signal);
  }
  return "aborted";
}
