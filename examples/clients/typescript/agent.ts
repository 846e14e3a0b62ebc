// A voice agent's side of one phone call, against the Conversation Session Service:
//
//   1. create the call (a session) with its language and metadata;
//   2. follow its live transcript in parallel (transcript.ts), which drops its connection once on
//      purpose and resumes with Last-Event-ID;
//   3. stream the call's turns as events, each with a deterministic eventId (turn-0001, …), through
//      a helper that retries network errors, 5xx and 429 with the same eventId; one turn is sent
//      twice on purpose, as after a lost answer: the second answer is 200 with the same seq;
//   4. end the call with a reason; the follower prints session-ended and stops;
//   5. exit 0 only if the follower saw every turn exactly once, in seq order, and the end.
//
//   SESSION_SERVICE_URL       the service (default http://127.0.0.1:3000)
//   SESSION_SERVICE_API_KEY   an API key with the write scope, if the service has keys
//   SESSION_SERVICE_READ_KEY  a key for the transcript follower (read is enough; default: the above)

import { randomBytes } from "node:crypto";
import { ApiError, configFromEnv, send, sleep } from "./client.js";
import { type FollowResult, type Session, type StoredEvent, followTranscript } from "./transcript.js";

/** What is said on the call, in order. */
const TURNS: ReadonlyArray<readonly ["user_speech" | "bot_speech", string]> = [
  ["user_speech", "Hi, I need to change my booking."],
  ["bot_speech", "Of course. Which booking is it?"],
  ["user_speech", "The table for four on Friday at eight."],
  ["bot_speech", "Found it. What would you like to change?"],
  ["user_speech", "Can we move it to Saturday, same time?"],
  ["bot_speech", "Done: Saturday at eight, for four. Anything else?"],
  ["user_speech", "No, that's all. Thanks!"],
  ["bot_speech", "You're welcome. Goodbye!"],
];
/** This turn is sent a second time, as a client does when the first answer was lost. */
const RESENT_TURN = 3;
/** The follower drops its connection after this seq and resumes. */
const DROP_AFTER_SEQ = 3;
const END_REASON = "caller_hangup";

const agent = (line: string) => console.log(`[agent]      ${line}`);
const transcript = (line: string) => console.log(`[transcript] ${line}`);
const eventIdOf = (turn: number) => `turn-${String(turn).padStart(4, "0")}`;

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main(): Promise<number> {
  const config = configFromEnv();
  const sessionId = `call-ts-${Date.now()}-${randomBytes(3).toString("hex")}`;
  const write = (method: string, path: string, body: unknown, label: string) =>
    send<StoredEvent & Session>(config, method, path, body, { key: config.apiKey, label, log: agent });
  agent(`service ${config.baseUrl}, ${config.apiKey ? "with an API key" : "without an API key"}`);

  // 1. The call starts. A retried create is safe too: 200 with the stored session.
  const created = await write(
    "POST",
    "/sessions",
    { sessionId, language: "en-US", metadata: { from: "+15550100", to: "+15550199", agent: "booking-assistant", example: "typescript" } },
    "create",
  );
  agent(`created ${sessionId}: ${created.status}, status ${created.body.status}`);

  // 2. The live transcript, in parallel. Turns start once it has caught up, so it sees them live.
  const stop = new AbortController();
  let caughtUp!: () => void;
  const firstCaughtUp = new Promise<void>((resolve) => (caughtUp = resolve));
  const following: Promise<FollowResult> = followTranscript(config, sessionId, {
    dropAfterSeq: DROP_AFTER_SEQ,
    onCaughtUp: () => caughtUp(),
    signal: stop.signal,
    log: transcript,
  });
  following.catch(() => {}); // awaited below; never an unhandled rejection meanwhile
  try {
    await withTimeout(Promise.race([firstCaughtUp, following.then(() => {})]), 10_000, "the live transcript");

    // 3. The turns. The body is built once per turn (its timestamp included): a retry must send
    // the same content, or it is a different event (409 event_id_conflict).
    const acknowledged = new Map<string, number>();
    const problems: string[] = [];
    for (const [index, [type, text]] of TURNS.entries()) {
      const turn = index + 1;
      const eventId = eventIdOf(turn);
      const event = { eventId, type, payload: { text }, timestamp: new Date().toISOString() };
      const path = `/sessions/${encodeURIComponent(sessionId)}/events`;
      const answer = await write("POST", path, event, eventId);
      agent(`${eventId} ${type}: ${answer.status}, seq ${answer.body.seq}`);
      acknowledged.set(eventId, answer.body.seq);
      if (turn === RESENT_TURN) {
        const again = await write("POST", path, event, eventId);
        const same = again.status === 200 && again.body.seq === answer.body.seq;
        agent(`${eventId} sent again (as after a lost answer): ${again.status}, seq ${again.body.seq}: ${same ? "the stored event, nothing added" : "UNEXPECTED"}`);
        if (!same) problems.push(`resending ${eventId} answered ${again.status} seq ${again.body.seq}, not 200 seq ${answer.body.seq}`);
      }
      await sleep(100); // someone is talking
    }

    // 4. The caller hangs up. Repeating complete is safe too (200, the first reason stands).
    const ended = await write("POST", `/sessions/${encodeURIComponent(sessionId)}/complete`, { status: "completed", reason: END_REASON }, "complete");
    agent(`completed: ${ended.status}, status ${ended.body.status}, reason ${ended.body.endedReason}, ${ended.body.eventCount} events`);

    // 5. What the follower saw.
    const seen = await withTimeout(following, 15_000, "session-ended on the live transcript");
    problems.push(...check(seen, acknowledged));
    if (problems.length > 0) {
      for (const problem of problems) console.error(`FAILED: ${problem}`);
      return 1;
    }
    console.log(
      `OK: the live transcript showed all ${TURNS.length} turns exactly once, in seq order, then session-ended ` +
        `(${seen.ended.status}, ${seen.ended.endedReason}), over ${seen.connections} connections (resumed with Last-Event-ID)`,
    );
    return 0;
  } finally {
    stop.abort();
  }
}

/** Every turn exactly once, in seq order (1, 2, 3, …), as acknowledged to the agent; then the end. */
function check(seen: FollowResult, acknowledged: Map<string, number>): string[] {
  const problems: string[] = [];
  const received = new Set<number>();
  let previous = 0;
  for (const event of seen.events) {
    if (received.has(event.seq)) problems.push(`seq ${event.seq} (${event.eventId}) arrived twice`);
    else if (event.seq !== previous + 1) problems.push(`seq ${event.seq} arrived after seq ${previous}: out of order or a gap`);
    received.add(event.seq);
    previous = Math.max(previous, event.seq);
  }
  for (const [index, [type, text]] of TURNS.entries()) {
    const eventId = eventIdOf(index + 1);
    const matches = seen.events.filter((event) => event.eventId === eventId);
    const event = matches[0];
    if (event === undefined) {
      problems.push(`${eventId} never arrived on the live transcript`);
    } else if (event.seq !== acknowledged.get(eventId) || event.seq !== index + 1 || event.type !== type || event.payload.text !== text) {
      problems.push(`${eventId} arrived as seq ${event.seq} ${event.type} ${JSON.stringify(event.payload)}, not as sent and acknowledged (seq ${acknowledged.get(eventId)})`);
    }
  }
  if (seen.events.length !== TURNS.length) problems.push(`${seen.events.length} event frames for ${TURNS.length} turns`);
  const { ended } = seen;
  if (ended.status !== "completed" || ended.endedReason !== END_REASON || ended.eventCount !== TURNS.length) {
    problems.push(`session-ended said ${ended.status}/${ended.endedReason}/${ended.eventCount} events, not completed/${END_REASON}/${TURNS.length}`);
  }
  if (seen.connections < 2) problems.push("the follower never resumed after its dropped connection");
  return problems;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`FAILED: ${error instanceof ApiError || error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  },
);
