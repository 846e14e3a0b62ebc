// One call: its fields, metadata (editable: metadata.js) and timers, and its transcript as a
// conversation, followed live over the event stream. The newest events come from one JSON page;
// older ones on demand ("Load earlier"); new ones from the stream, opened after the last seq shown.
// Opened at one event (#/calls/ID?seq=N, from a search hit), the page of events holding it is read
// too, and it is scrolled to and marked; the events between that page and the newest ones wait
// behind a button in their place. Seqs run 1, 2, 3… without gaps, so ascending pages of a fixed
// size always hold the same events, whatever is appended meanwhile.

import { ApiError, describe, getJson, request, sessionPath } from "./api.js";
import { definitions, el, noticeAfterNavigation, replace, showNotice } from "./dom.js";
import { TERMINAL, callDuration, formatDateTime, formatTime, formatTimer, relative } from "./format.js";
import { listHash } from "./list.js";
import { metadataPanel } from "./metadata.js";
import { searchHash } from "./search.js";
import { follow } from "./sse.js";

const PAGE_SIZE = 50;
const SPEAKERS = { user_speech: "Caller", bot_speech: "Bot" };
const STATE_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  ended: "Ended",
  deleted: "Erased",
  stopped: "Not following",
};

/** What a turn says: the payload's `text` if it is a string, else the payload as JSON. */
function spokenText(payload) {
  return typeof payload?.text === "string" ? payload.text : JSON.stringify(payload);
}

/** One event as a list item: a bubble for speech (caller left, bot right), a note for system. */
function turn(event) {
  const speaker = SPEAKERS[event.type];
  const extra = Object.keys(event.payload || {}).some((k) => k !== "text");
  const time = el("time", { datetime: event.timestamp, text: formatTime(event.timestamp) });
  const details = extra
    ? el("details", { class: "payload" }, el("summary", { text: "payload" }), el("pre", { text: JSON.stringify(event.payload, null, 2) }))
    : null;
  if (!speaker) {
    return el(
      "li",
      { class: "turn turn-system", dataset: { seq: event.seq } },
      el("div", { class: "note" }, el("span", { class: "note-label", text: `${event.type === "system" ? "System" : event.type} · ` }), time, el("span", { class: "text", text: ` ${spokenText(event.payload)}` }), details),
    );
  }
  return el(
    "li",
    { class: `turn turn-${event.type === "user_speech" ? "user" : "bot"}`, dataset: { seq: event.seq } },
    el(
      "div",
      { class: "bubble" },
      el("p", { class: "who" }, el("span", { class: "speaker", text: speaker }), " ", time, el("span", { class: "seq", text: ` #${event.seq}` })),
      el("p", { class: "text", text: spokenText(event.payload) }),
      details,
    ),
  );
}

function sessionFields(s, now) {
  return definitions([
    ["Status", el("span", { class: `badge status-${["initiated", "active", "completed", "failed"].includes(s.status) ? s.status : "unknown"}`, text: s.status })],
    ["Language", s.language],
    ["Started", formatDateTime(s.startedAt)],
    ["Ended", formatDateTime(s.endedAt)],
    ["Duration", el("span", { dataset: { clock: "duration" }, text: callDuration(s, now) })],
    ["Events", String(s.eventCount)],
    ["End reason", s.endedReason ?? "—"],
    ["Last event", formatDateTime(s.lastEventAt)],
  ]);
}

function expiresText(s, now) {
  return s.expiresAt ? `${formatDateTime(s.expiresAt)} (${relative(s.expiresAt, now)})` : "—";
}

function timerFields(s, now) {
  return definitions([
    ["Inactivity timeout", formatTimer(s.inactivityTimeoutSeconds)],
    ["Maximum duration", formatTimer(s.maxDurationSeconds)],
    ["Expires", el("span", { dataset: { clock: "expires" }, text: expiresText(s, now) })],
  ]);
}

/** Saves every event of the call as NDJSON (fetched with the key, saved from a Blob). */
async function exportNdjson(sessionId, button) {
  button.disabled = true;
  try {
    const response = await request(sessionPath(sessionId, "/events"), { accept: "application/x-ndjson" });
    const blob = new Blob([await response.blob()], { type: "application/x-ndjson" });
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: `${sessionId}.ndjson`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    showNotice(`Export failed: ${describe(error)}`);
  } finally {
    button.disabled = false;
  }
}

/** Asks for confirmation in the delete dialog, then erases the call and goes back to the list. */
function confirmDelete(sessionId, signal) {
  const dialog = document.getElementById("delete-dialog");
  const form = document.getElementById("delete-form");
  const message = document.getElementById("delete-message");
  document.getElementById("delete-id").textContent = sessionId;
  message.textContent = "";
  const submit = async (event) => {
    event.preventDefault();
    try {
      await request(sessionPath(sessionId), { method: "DELETE", signal });
      dialog.close();
      noticeAfterNavigation(`The call ${sessionId} was erased.`);
      location.hash = listHash();
    } catch (error) {
      message.textContent =
        error instanceof ApiError && error.status === 403
          ? `Your key may not erase calls (erasing needs an admin key): ${describe(error)}`
          : `Could not erase the call: ${describe(error)}`;
    }
  };
  form.addEventListener("submit", submit);
  document.getElementById("delete-cancel").onclick = () => dialog.close();
  dialog.addEventListener("close", () => form.removeEventListener("submit", submit), { once: true });
  dialog.showModal();
}

/**
 * Renders the call `sessionId` into `main`, and follows it until `signal` aborts. With `seq`, that
 * event is loaded (with its page of events if it is not among the newest), scrolled to and marked.
 */
export async function renderCall(main, sessionId, signal, { seq: target = null } = {}) {
  const heading = el("h1", { class: "call-title", text: sessionId });
  const indicator = el("p", { class: "live", role: "status", dataset: { state: "connecting" } }, el("span", { class: "dot", "aria-hidden": "true" }), el("span", { class: "live-text", text: "Loading…" }));
  const exportButton = el("button", { type: "button", text: "Export NDJSON" });
  const deleteButton = el("button", { type: "button", class: "danger", text: "Delete call" });
  const fields = el("div");
  // Reads of the session are numbered: an answer to an older request than the last one taken
  // (a refresh overtaken by a save) is not shown.
  let reads = 0;
  let taken = 0;
  const readSession = async () => {
    const ticket = ++reads;
    const response = await request(sessionPath(sessionId, "?limit=1"), { signal });
    const { events, pagination, ...fresh } = await response.json();
    takeSession(fresh, response.headers.get("ETag"), ticket);
  };
  const metadata = metadataPanel(sessionId, {
    reload: readSession,
    saved: (fresh, etag) => takeSession(fresh, etag, ++reads),
    signal,
  });
  const timers = el("div");
  const earlier = el("button", { type: "button", class: "earlier", text: "Load earlier events", hidden: true });
  const transcript = el("ol", { class: "transcript", "aria-label": "Transcript", "aria-live": "polite", "aria-relevant": "additions" });
  const empty = el("p", { class: "muted empty-transcript", text: "No events yet." });
  const problem = el("p", { class: "call-problem", role: "alert" });
  const fromSearch = target !== null ? searchHash() : null;

  replace(
    main,
    el(
      "nav",
      { class: "crumbs" },
      el("a", { href: listHash(), text: "← All calls" }),
      fromSearch ? el("a", { href: fromSearch, text: "← Search results" }) : null,
    ),
    el("div", { class: "call-head" }, heading, indicator),
    el("div", { class: "call-actions" }, exportButton, deleteButton),
    problem,
    el(
      "div",
      { class: "call-grid" },
      // Open beside the transcript on a wide screen; folded above it on a narrow one.
      el(
        "details",
        { class: "details", open: !window.matchMedia("(max-width: 720px)").matches },
        el("summary", { text: "Call details" }),
        el("h2", { text: "Call" }), fields,
        el("h2", { text: "Metadata" }), metadata.node,
        el("h2", { text: "Timers" }), timers,
      ),
      el("section", { class: "conversation", "aria-label": "Transcript" }, el("h2", { text: "Transcript" }), earlier, empty, transcript),
    ),
  );
  exportButton.addEventListener("click", () => exportNdjson(sessionId, exportButton));
  deleteButton.addEventListener("click", () => confirmDelete(sessionId, signal));

  let session;
  let olderCursor = null;
  let lastSeq = 0;
  // Whether the transcript may have a hole (after a jump to an event older than the newest page).
  let gapsPossible = false;
  const shown = new Set();
  const setIndicator = (state, note) => {
    indicator.dataset.state = state;
    indicator.querySelector(".live-text").textContent = note ?? STATE_TEXT[state] ?? state;
  };
  // Metadata is drawn again only when it changed, so a selection in it survives updates; its
  // ETag (null: not read with this change) goes with it, for the editor's If-Match.
  const showSession = (etag = null) => {
    const now = Date.now();
    replace(fields, sessionFields(session, now));
    replace(timers, timerFields(session, now));
    metadata.update(session.metadata, etag);
  };
  /** Shows a session read from the service, unless a newer read was shown or it went back. */
  function takeSession(fresh, etag, ticket) {
    if (signal.aborted || ticket < taken) return;
    if (session && TERMINAL.has(session.status) && !TERMINAL.has(fresh.status)) return;
    taken = ticket;
    session = { ...fresh, eventCount: Math.max(fresh.eventCount, session?.eventCount ?? 0) };
    showSession(etag);
  }
  // Every second: only the running duration and the time left change.
  const tick = () => {
    const now = Date.now();
    const duration = fields.querySelector("[data-clock='duration']");
    const expires = timers.querySelector("[data-clock='expires']");
    if (duration) duration.textContent = callDuration(session, now);
    if (expires) expires.textContent = expiresText(session, now);
  };
  const nearBottom = () => window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 120;
  const gaps = () => transcript.querySelectorAll(":scope > .gap");
  /** The lowest seq shown (0: none). A gap is never first: it stands between two turns. */
  const lowestSeq = () => Number(transcript.firstElementChild?.dataset.seq ?? 0);
  const hasEarlier = () => Boolean(olderCursor) || lowestSeq() > 1;
  /** The ascending page of PAGE_SIZE events that holds `seq` (its bounds never move). */
  const pageHolding = (seq) =>
    getJson(sessionPath(sessionId, `/events?order=asc&limit=${PAGE_SIZE}&page=${Math.ceil(seq / PAGE_SIZE)}`), { signal });
  /**
   * Events added `before` the first turn (earlier ones: the view keeps its place), `after` the
   * last (newer ones: followed if the view was at the bottom), or `between` (a gap's events,
   * each where its seq goes).
   */
  const addEvents = (events, where) => {
    const fresh = events.filter((e) => !shown.has(e.seq)).sort((a, b) => a.seq - b.seq);
    if (fresh.length === 0) return;
    for (const e of fresh) shown.add(e.seq);
    empty.hidden = true;
    if (where === "before") {
      const height = document.documentElement.scrollHeight;
      transcript.prepend(...fresh.map(turn));
      window.scrollBy(0, document.documentElement.scrollHeight - height);
    } else if (where === "after") {
      const follow = nearBottom();
      transcript.append(...fresh.map(turn));
      if (follow) transcript.lastElementChild.scrollIntoView({ block: "end" });
    } else {
      // Each before the first turn with a greater seq (gaps skipped: they are drawn again below).
      let next = transcript.firstElementChild;
      for (const e of fresh) {
        while (next && (next.classList.contains("gap") || Number(next.dataset.seq) < e.seq)) next = next.nextElementSibling;
        transcript.insertBefore(turn(e), next);
      }
    }
    if (gapsPossible) showGaps();
  };
  /** A gap's place: how many events are not shown, and a button that reads the next of them. */
  const gapItem = (from, to) => {
    const end = Math.min(to, Math.ceil(from / PAGE_SIZE) * PAGE_SIZE);
    const count = to - from + 1;
    const button = el("button", { type: "button", class: "quiet", text: end === from ? `Load event #${from}` : `Load events #${from}–#${end}` });
    button.addEventListener("click", () => fillGap(from, button));
    return el("li", { class: "gap" }, el("span", { class: "gap-text", text: `${count} event${count === 1 ? "" : "s"} not shown` }), button);
  };
  /** Draws a gap between every two turns whose seqs do not follow each other. */
  function showGaps() {
    const hadFocus = [...gaps()].some((gap) => gap.contains(document.activeElement));
    for (const gap of gaps()) gap.remove();
    let previous = null;
    for (const item of [...transcript.children]) {
      const seq = Number(item.dataset.seq);
      if (previous !== null && seq > previous + 1) item.before(gapItem(previous + 1, seq - 1));
      previous = seq;
    }
    if (hadFocus) gaps()[0]?.querySelector("button").focus();
  }
  async function fillGap(from, button) {
    button.disabled = true;
    try {
      addEvents((await pageHolding(from)).events, "between");
      // The gap closed (its button went with it): the keyboard goes on from the first event read.
      if (gaps().length === 0) {
        const first = transcript.querySelector(`:scope > li[data-seq="${from}"]`);
        if (first) {
          first.tabIndex = -1;
          first.focus({ preventScroll: true });
        }
      }
    } catch (error) {
      if (error.name === "AbortError") return;
      problem.textContent = `Could not read events: ${describe(error)}`;
      button.disabled = false;
    }
  }
  /** Scrolls to the event the view was opened at, and marks it. */
  const showTarget = () => {
    const item = transcript.querySelector(`:scope > li[data-seq="${target}"]`);
    if (!item) {
      if (!problem.textContent) problem.textContent = `This call has no event #${target}.`;
      return;
    }
    item.classList.add("turn-target");
    item.setAttribute("aria-current", "true");
    item.tabIndex = -1;
    item.scrollIntoView({ block: "center" });
    item.focus({ preventScroll: true });
  };

  // The session's fields (lastEventAt, expiresAt) are re-read shortly after events arrive.
  let refreshTimer = null;
  const refreshSoon = () => {
    if (refreshTimer) return;
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      try {
        await readSession();
      } catch {
        // the stream goes on; the next event tries again
      }
    }, 1000);
  };

  try {
    const ticket = ++reads;
    const response = await request(sessionPath(sessionId, `?order=desc&limit=${PAGE_SIZE}`), { signal });
    const { events, pagination, ...fresh } = await response.json();
    takeSession(fresh, response.headers.get("ETag"), ticket);
    if (signal.aborted) return;
    olderCursor = pagination.nextCursor;
    addEvents(events, "after");
    lastSeq = events.length ? Math.max(...events.map((e) => e.seq)) : 0;
    if (target !== null && !shown.has(target) && target < lowestSeq()) {
      // Older than the newest page: its own page is read; the events between the two wait.
      try {
        const page = await pageHolding(target);
        if (signal.aborted) return;
        gapsPossible = true;
        olderCursor = null; // it continued the newest page; earlier events are now read by page
        addEvents(page.events, "before");
      } catch (error) {
        if (signal.aborted || error.name === "AbortError") return;
        problem.textContent = `Could not read event #${target}: ${describe(error)}`;
      }
    }
    earlier.hidden = !hasEarlier();
    if (target !== null) showTarget();
    else if (events.length) transcript.lastElementChild.scrollIntoView({ block: "end" });
  } catch (error) {
    if (signal.aborted || error.name === "AbortError") return;
    const gone = error instanceof ApiError && (error.status === 404 || error.status === 410);
    setIndicator("stopped", gone ? (error.status === 410 ? "Erased" : "Not found") : "Not loaded");
    problem.textContent = gone
      ? error.status === 410 ? "This call was erased." : "There is no call with this id."
      : `Could not read the call: ${describe(error)}`;
    exportButton.disabled = true;
    deleteButton.disabled = error instanceof ApiError && error.status === 410;
    return;
  }

  earlier.addEventListener("click", async () => {
    earlier.disabled = true;
    try {
      if (olderCursor) {
        const path = sessionPath(sessionId, `/events?order=desc&limit=${PAGE_SIZE}&after=${encodeURIComponent(olderCursor)}`);
        const older = await getJson(path, { signal });
        addEvents(older.events, "before");
        olderCursor = older.pagination.nextCursor;
      } else {
        // After a jump: the page below the lowest event shown.
        addEvents((await pageHolding(lowestSeq() - 1)).events, "before");
      }
      earlier.hidden = !hasEarlier();
    } catch (error) {
      if (error.name !== "AbortError") problem.textContent = `Could not read earlier events: ${describe(error)}`;
    } finally {
      earlier.disabled = false;
    }
  });

  const ticker = setInterval(() => {
    if (!TERMINAL.has(session.status)) tick();
  }, 1000);
  signal.addEventListener("abort", () => {
    clearInterval(ticker);
    clearTimeout(refreshTimer);
  }, { once: true });

  if (TERMINAL.has(session.status)) {
    setIndicator("ended");
    return;
  }
  await follow(sessionId, lastSeq, {
    onEvent: (event) => {
      addEvents([event], "after");
      session.eventCount = Math.max(session.eventCount, event.seq);
      if (session.status === "initiated") session.status = "active";
      showSession();
      refreshSoon();
    },
    onCaughtUp: (seq) => {
      indicator.dataset.caughtUp = String(seq);
    },
    onEnded: (ended) => {
      session = ended;
      showSession();
      refreshSoon(); // for the ended call's ETag
    },
    onDeleted: () => {
      problem.textContent = "This call was erased.";
      exportButton.disabled = true;
      deleteButton.disabled = true;
      metadata.gone("This call was erased: its metadata cannot be changed.");
    },
    onState: (state) => {
      if (signal.aborted) return;
      setIndicator(state);
    },
    onError: (error) => {
      problem.textContent = `Live updates stopped: ${describe(error)}`;
    },
  }, signal);
}
