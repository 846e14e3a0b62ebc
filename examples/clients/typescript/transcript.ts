// The live-transcript follower: `GET /sessions/{id}/events` with `Accept: text/event-stream`, read
// with fetch and a ReadableStream reader (EventSource cannot send an Authorization header). It
// prints each `event` frame, and when the connection drops it reconnects with `Last-Event-ID: <the
// last id seen>`, so the stream goes on after the last event it got: none twice, none skipped.
// It stops on `session-ended` (or `session-deleted`).

import { ApiError, type Config, authHeaders, backoffMs, isRetryableStatus, parseProblem, sleep } from "./client.js";

/** An event as the service stores it (README "The API"). */
export interface StoredEvent {
  sessionId: string;
  eventId: string;
  seq: number;
  type: "user_speech" | "bot_speech" | "system";
  payload: { text?: string } & Record<string, unknown>;
  timestamp: string;
}

/** The session fields this example looks at. */
export interface Session {
  sessionId: string;
  status: "initiated" | "active" | "completed" | "failed";
  eventCount: number;
  endedReason: string | null;
  endedAt: string | null;
}

export interface FollowOptions {
  /** Called on every `caught-up` frame (once per connection): what is stored has been sent. */
  onCaughtUp?: (seq: number) => void;
  /** Drop the connection once, right after this seq, to show resuming with Last-Event-ID. */
  dropAfterSeq?: number;
  /** Stops following (the agent gave up). */
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface FollowResult {
  /** Every `event` frame received, in the order received: the caller checks them. */
  events: StoredEvent[];
  /** The data of `session-ended`. */
  ended: Session;
  /** Connections opened, the first included. */
  connections: number;
}

interface Frame {
  event: string;
  data: string;
  id: string | null;
}

/** The WHATWG event-stream format, line by line: `retry` frames update `onRetry`, comments are skipped. */
async function* readFrames(body: ReadableStream<Uint8Array>, onRetry: (ms: number) => void): AsyncGenerator<Frame> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event = "";
  let data: string[] = [];
  let id: string | null = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      // A lone "\r" at the end may be the first half of "\r\n": keep it for the next chunk.
      const lines = buffer.split(/\r\n|\r(?!$)|\n/);
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        if (line === "") {
          if (data.length > 0) yield { event: event || "message", data: data.join("\n"), id };
          event = "";
          data = [];
          id = null;
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: `: keepalive`
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
        else if (field === "id") id = value;
        else if (field === "retry" && /^\d+$/.test(value)) onRetry(Number(value));
      }
    }
  } finally {
    // Leaving early (a break, an error) cancels the body: the connection is closed.
    await reader.cancel().catch(() => {});
  }
}

/** Follows `sessionId` from its first event until it ends; answers what it saw. */
export async function followTranscript(config: Config, sessionId: string, options: FollowOptions = {}): Promise<FollowResult> {
  const { onCaughtUp = () => {}, dropAfterSeq, signal, log = () => {} } = options;
  const events: StoredEvent[] = [];
  let lastEventId: string | null = null; // the `id` of the last event frame: its seq
  let retryMs = 2000; // until the service says otherwise (`retry:`)
  let connections = 0;
  let failures = 0; // in a row, without a frame in between
  let dropped = false;

  while (!signal?.aborted) {
    connections++;
    const headers: Record<string, string> = { accept: "text/event-stream", ...authHeaders(config.readKey) };
    if (lastEventId !== null) headers["last-event-id"] = lastEventId;
    const connection = new AbortController();
    const stop = () => connection.abort();
    signal?.addEventListener("abort", stop, { once: true });
    let wait = retryMs;
    try {
      log(lastEventId === null ? "connecting" : `reconnecting with Last-Event-ID: ${lastEventId}`);
      const response = await fetch(`${config.baseUrl}/sessions/${encodeURIComponent(sessionId)}/events`, {
        headers,
        signal: connection.signal,
      });
      if (response.status !== 200 || !response.body) {
        const { code, detail } = parseProblem(await response.text());
        const description = `${response.status} ${code ?? ""}${detail ? `: ${detail}` : ""}`.trim();
        if (!isRetryableStatus(response.status)) {
          throw new ApiError(response.status, code, `the live transcript answered ${description}`);
        }
        wait = Math.max(retryMs, backoffMs(failures, response.headers.get("retry-after")));
        throw new Error(description);
      }
      for await (const frame of readFrames(response.body, (ms) => (retryMs = ms))) {
        failures = 0;
        if (frame.event === "event") {
          const event = JSON.parse(frame.data) as StoredEvent;
          if (frame.id !== null) lastEventId = frame.id;
          events.push(event);
          const who = event.type === "user_speech" ? "caller" : event.type === "bot_speech" ? "agent " : event.type;
          log(`seq ${event.seq} ${who}: ${JSON.stringify(event.payload.text ?? event.payload)}  (${event.eventId})`);
          if (dropAfterSeq !== undefined && event.seq === dropAfterSeq && !dropped) {
            dropped = true;
            log(`(dropping the connection after seq ${event.seq}, as a network failure would)`);
            break; // cancels the body
          }
        } else if (frame.event === "caught-up") {
          const { seq } = JSON.parse(frame.data) as { seq: number };
          log(`caught up at seq ${seq}: live from here`);
          onCaughtUp(seq);
        } else if (frame.event === "session-ended") {
          const ended = JSON.parse(frame.data) as Session;
          log(`session-ended: ${ended.status}, reason ${ended.endedReason}, ${ended.eventCount} events`);
          return { events, ended, connections };
        } else if (frame.event === "session-deleted") {
          throw new ApiError(410, "session_deleted", `session ${sessionId} was erased while it was followed`);
        }
      }
      log(`the connection closed before session-ended; resuming in ${wait} ms`);
    } catch (error) {
      if (error instanceof ApiError || signal?.aborted) throw error;
      failures++;
      if (failures >= 10) throw new Error(`the live transcript failed ${failures} times in a row: ${String(error)}`);
      log(`connection failed (${error instanceof Error ? error.message : String(error)}); resuming in ${wait} ms`);
    } finally {
      signal?.removeEventListener("abort", stop);
      connection.abort();
    }
    await sleep(wait);
  }
  throw new Error("stopped before the session ended");
}
