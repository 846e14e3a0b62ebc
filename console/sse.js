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
