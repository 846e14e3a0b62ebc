// The calls list: GET /sessions with the user's filters, newest first, paged by cursor, kept
// current by the change feed (GET /changes as Server-Sent Events) without losing the page, the
// filters or the focused row: a new call that matches the filters is inserted in its place, an
// ended or changed call is updated (or removed when it no longer matches), an erased one removed.

import { ApiError, describe, getJson, request, sessionPath } from "./api.js";
import { callHref, el, replace } from "./dom.js";
import { callDuration, formatDateTime } from "./format.js";
import { followChanges } from "./sse.js";

const PAGE_SIZE = 20;
/** The feed's changes the list follows: not event.appended (every event of every call). */
const FEED_TYPES = "session.created,session.ended,session.updated,session.deleted";
/** Past this many rows (the feed adds them to the first page), the first page is read again. */
const MAX_ROWS = PAGE_SIZE * 2;
/** At most this many calls waiting to become active are remembered, and checked per second. */
const MAX_WATCHED = 50;
const CHECKS_PER_TICK = 4;
const CHECK_DELAYS_MS = [1000, 1000, 2000, 4000, 8000, 15000];
const FEED_STATE_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  stopped: "Not live",
};
const STATUS_RANK = { initiated: 0, active: 1, completed: 2, failed: 2 };
const STATUSES = ["initiated", "active", "completed", "failed"];
const METADATA_KEY = /^[A-Za-z0-9_-]{1,64}$/;

// Where the user is in the list, kept across visits to a call: the filters (as the hash query
// they came from) and the cursors of the pages up to the current one (null: the first page).
const place = { query: null, cursors: [null] };

/** The filters a list hash query (`#/calls?status=…&from=…&before=…&key=…&value=…`) names. */
export function filtersFrom(params) {
  return {
    status: (params.get("status") || "").split(",").filter((s) => STATUSES.includes(s)),
    from: params.get("from") || "",
    before: params.get("before") || "",
    key: params.get("key") || "",
    value: params.get("value") || "",
  };
}

function hashQuery(filters) {
  const params = new URLSearchParams();
  if (filters.status.length) params.set("status", filters.status.join(","));
  if (filters.from) params.set("from", filters.from);
  if (filters.before) params.set("before", filters.before);
  if (filters.key) {
    params.set("key", filters.key);
    params.set("value", filters.value);
  }
  const text = params.toString();
  return text ? `#/calls?${text}` : "#/calls";
}

/** The `GET /sessions` URL of one page. */
function listUrl(filters, cursor) {
  const params = new URLSearchParams();
  if (filters.status.length) params.set("status", filters.status.join(","));
  if (filters.from) params.set("startedFrom", filters.from);
  if (filters.before) params.set("startedBefore", filters.before);
  if (filters.key) params.set(`metadata.${filters.key}`, filters.value);
  params.set("order", "desc");
  params.set("limit", String(PAGE_SIZE));
  if (cursor) params.set("after", cursor);
  return `/sessions?${params}`;
}

/** An RFC 3339 time as a datetime-local value (local time, to the second). */
export function toLocalInput(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A datetime-local value as RFC 3339 UTC; "" for empty, null for a value that is no time. */
export function fromLocalInput(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

function statusBadge(status) {
  const known = STATUSES.includes(status) ? status : "unknown";
  return el("span", { class: `badge status-${known}`, text: status });
}

function row(session, now) {
  return el(
    "tr",
    { dataset: { sessionId: session.sessionId } },
    el("td", { "data-label": "Call", class: "call-id" }, el("a", { href: callHref(session.sessionId), text: session.sessionId })),
    el("td", { "data-label": "Status" }, statusBadge(session.status)),
    el("td", { "data-label": "Language", text: session.language }),
    el("td", { "data-label": "Started" }, el("time", { datetime: session.startedAt, text: formatDateTime(session.startedAt) })),
    el("td", { "data-label": "Duration", class: "num", text: callDuration(session, now) }),
    el("td", { "data-label": "Events", class: "num", text: session.eventCount }),
    el("td", { "data-label": "End reason", text: session.endedReason ?? "—" }),
  );
}

function filterForm(filters, onApply) {
  const checks = STATUSES.map((s) =>
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "status", value: s, checked: filters.status.includes(s) }), ` ${s}`),
  );
  const from = el("input", { id: "f-from", type: "datetime-local", step: "1", value: toLocalInput(filters.from) });
  const before = el("input", { id: "f-before", type: "datetime-local", step: "1", value: toLocalInput(filters.before) });
  const key = el("input", { id: "f-key", type: "text", placeholder: "e.g. userId", autocomplete: "off", spellcheck: "false", value: filters.key });
  const value = el("input", { id: "f-value", type: "text", autocomplete: "off", spellcheck: "false", value: filters.value });
  const problem = el("p", { class: "form-error", role: "alert" });
  const form = el(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter calls", novalidate: true },
    el("fieldset", { class: "statuses" }, el("legend", { text: "Status" }), checks),
    el("div", { class: "field" }, el("label", { for: "f-from", text: "Started from (local time)" }), from),
    el("div", { class: "field" }, el("label", { for: "f-before", text: "Started before (local time)" }), before),
    el("div", { class: "field" }, el("label", { for: "f-key", text: "Metadata key" }), key),
    el("div", { class: "field" }, el("label", { for: "f-value", text: "Metadata value" }), value),
    el(
      "div",
      { class: "actions" },
      el("button", { type: "submit", class: "primary", text: "Apply filters" }),
      el("button", { type: "button", text: "Clear", onclick: () => onApply({ status: [], from: "", before: "", key: "", value: "" }) }),
    ),
    problem,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = {
      status: checks.map((c) => c.querySelector("input")).filter((i) => i.checked).map((i) => i.value),
      from: fromLocalInput(from.value),
      before: fromLocalInput(before.value),
      key: key.value.trim(),
      value: value.value,
    };
    if (next.from === null || next.before === null) {
      problem.textContent = "A start time is not a valid date and time.";
    } else if (next.key && !METADATA_KEY.test(next.key)) {
      problem.textContent = "A metadata key is 1 to 64 characters of A-Z a-z 0-9 _ -.";
    } else if (!next.key && next.value) {
      problem.textContent = "Give the metadata key that the value is for.";
    } else {
      problem.textContent = "";
      onApply(next);
    }
  });
  return form;
}

/** Newest first, as the service orders the list: by startedAt, then sessionId, descending. */
export function compareNewestFirst(a, b) {
  const t = Date.parse(b.startedAt) - Date.parse(a.startedAt);
  if (t !== 0) return t;
  return a.sessionId < b.sessionId ? 1 : a.sessionId > b.sessionId ? -1 : 0;
}

/** Whether `session` passes the filters, as `GET /sessions` applies them (the status aside). */
function matchesBesidesStatus(filters, session) {
  const started = Date.parse(session.startedAt);
  if (filters.from && !(started >= Date.parse(filters.from))) return false;
  if (filters.before && !(started < Date.parse(filters.before))) return false;
  if (filters.key) {
    const metadata = session.metadata ?? {};
    if (!Object.hasOwn(metadata, filters.key) || metadata[filters.key] !== filters.value) return false;
  }
  return true;
}

export function matches(filters, session) {
  return (filters.status.length === 0 || filters.status.includes(session.status)) && matchesBesidesStatus(filters, session);
}

/**
 * A session as a change carries it, merged with the one shown: the feed may bring a state older
 * than a list read made after it was written, and a call becomes active on its first event (an
 * event.appended, not followed here), so the status and the event count never go backwards.
 */
export function merge(shown, next) {
  if (!shown) return next;
  const merged = { ...next };
  if ((STATUS_RANK[shown.status] ?? 0) > (STATUS_RANK[next.status] ?? 0)) {
    Object.assign(merged, {
      status: shown.status,
      endedAt: shown.endedAt,
      endedReason: shown.endedReason,
      expiresAt: shown.expiresAt,
    });
  }
  if ((shown.eventCount ?? 0) > (next.eventCount ?? 0)) {
    merged.eventCount = shown.eventCount;
    merged.lastEventAt = shown.lastEventAt;
  }
  return merged;
}

/**
 * Renders the list into `main` for the hash query `params`, and keeps it current from the change
 * feed until `signal` aborts (the user leaves the list).
 */
export function renderList(main, params, signal) {
  const filters = filtersFrom(params);
  const query = hashQuery(filters);
  if (place.query !== query) {
    place.query = query;
    place.cursors = [null];
  }
  const tbody = el("tbody");
  const pageLabel = el("span", { class: "page-label" });
  const feedText = el("span", { class: "live-text", text: FEED_STATE_TEXT.connecting });
  const feedState = el(
    "p",
    { class: "live feed-state", role: "status", dataset: { state: "connecting" } },
    el("span", { class: "dot", "aria-hidden": "true" }),
    feedText,
  );
  const status = el("p", { class: "list-status", role: "status" });
  const newer = el("button", { type: "button", text: "← Newer" });
  const older = el("button", { type: "button", text: "Older →" });
  // The rows on screen, in screen order (tbody.rows holds one <tr> per session, in this order).
  let shown = [];
  let hasMore = false;
  let nextCursor = null;
  let loading = null;
  let reloadAgain = false;
  // Changes that came while a list read was under way: applied again on what it answers.
  let held = null;
  // Calls not shown that would be if they were active (a status filter without "initiated"):
  // they become active on their first event, which the list does not follow, so they (and the
  // initiated calls shown) are read again, each at most once a second, until they are not
  // initiated any more.
  const waiting = new Map();
  const checks = new Map();
  let live = false;
  let authFailed = false;

  const setFeedState = (state, note) => {
    feedState.dataset.state = state;
    feedText.textContent = note ?? FEED_STATE_TEXT[state] ?? state;
    live = state === "live";
  };

  const onFirstPage = () => place.cursors.length === 1;

  /** Whether `session` belongs on the page shown (rows of other pages are not the feed's to add). */
  const fits = (session, created) => {
    const first = shown[0];
    const last = shown[shown.length - 1];
    if (!last) return onFirstPage() && (!hasMore || created);
    if (onFirstPage()) return !hasMore || compareNewestFirst(session, last) <= 0;
    return compareNewestFirst(session, first) >= 0 && (!hasMore || compareNewestFirst(session, last) <= 0);
  };

  const emptyRow = () => {
    const text = hasMore
      ? "No match among the calls examined for this page; “Older →” looks further."
      : "No calls match.";
    return el("tr", { class: "empty" }, el("td", { colspan: "7", text }));
  };

  const focusedId = () => document.activeElement?.closest?.("tbody tr")?.dataset.sessionId;
  const rowElement = (index) => [...tbody.rows].filter((r) => r.dataset.sessionId !== undefined)[index];

  const showRows = (sessions, message) => {
    const now = Date.now();
    const focused = focusedId();
    shown = sessions.slice();
    if (message) {
      replace(tbody, el("tr", { class: "empty" }, el("td", { colspan: "7", text: message })));
    } else if (shown.length === 0) {
      replace(tbody, emptyRow());
    } else {
      replace(tbody, shown.map((s) => row(s, now)));
    }
    if (focused) {
      const again = [...tbody.rows].find((r) => r.dataset.sessionId === focused);
      again?.querySelector("a")?.focus();
    }
  };

  const insertRow = (session) => {
    let index = shown.findIndex((s) => compareNewestFirst(session, s) < 0);
    if (index === -1) index = shown.length;
    if (shown.length === 0) tbody.replaceChildren();
    tbody.insertBefore(row(session, Date.now()), rowElement(index) ?? null);
    shown.splice(index, 0, session);
    if (onFirstPage() && shown.length > MAX_ROWS) load({ quiet: true });
  };

  const updateRow = (index, session) => {
    const old = rowElement(index);
    const hadFocus = old.contains(document.activeElement);
    const fresh = row(session, Date.now());
    old.replaceWith(fresh);
    shown[index] = session;
    if (hadFocus) fresh.querySelector("a")?.focus();
  };

  const removeRow = (index) => {
    const old = rowElement(index);
    const hadFocus = old.contains(document.activeElement);
    old.remove();
    shown.splice(index, 1);
    if (shown.length === 0) {
      tbody.replaceChildren(emptyRow());
    } else if (hadFocus) {
      rowElement(Math.min(index, shown.length - 1))?.querySelector("a")?.focus();
    }
  };

  const watchesActivation = () => filters.status.length > 0 && !filters.status.includes("initiated") && filters.status.includes("active");

  /** Keeps `session` (or forgets it) among the calls read again until they are not initiated. */
  const track = (session) => {
    const id = session.sessionId;
    const index = shown.findIndex((s) => s.sessionId === id);
    const candidate = index === -1 && session.status === "initiated" && watchesActivation() && matchesBesidesStatus(filters, session) && fits(session, true);
    if (candidate) waiting.set(id, session);
    else waiting.delete(id);
    if ((index !== -1 || candidate) && session.status === "initiated") {
      if (!checks.has(id)) checks.set(id, { due: Date.now() + CHECK_DELAYS_MS[0], tries: 0 });
      while (checks.size > MAX_WATCHED) {
        const oldest = [...checks.keys()].find((k) => !shown.some((s) => s.sessionId === k)) ?? checks.keys().next().value;
        checks.delete(oldest);
        waiting.delete(oldest);
      }
    } else {
      checks.delete(id);
    }
  };

  const forget = (sessionId) => {
    const index = shown.findIndex((s) => s.sessionId === sessionId);
    if (index !== -1) removeRow(index);
    waiting.delete(sessionId);
    checks.delete(sessionId);
  };

  /** Shows what is now known of one session: `created` for a session.created change. */
  const apply = (session, { created = false } = {}) => {
    const index = shown.findIndex((s) => s.sessionId === session.sessionId);
    const known = index !== -1 ? shown[index] : waiting.get(session.sessionId);
    // A list read (or a change) after the creation already said more than the creation does.
    if (created && known) return;
    const merged = merge(known, session);
    if (index !== -1) {
      if (matches(filters, merged)) updateRow(index, merged);
      else removeRow(index);
    } else if (matches(filters, merged) && fits(merged, created)) {
      waiting.delete(merged.sessionId);
      insertRow(merged);
    }
    track(merged);
  };

  const onChange = (change) => {
    if (held) held.push(change);
    applyChange(change);
  };

  const applyChange = (change) => {
    const data = change.data;
    // A deletion, or any change of a call erased since: only its id is left.
    if (change.type === "session.deleted" || !data || typeof data.status !== "string") {
      forget(change.sessionId);
      return;
    }
    apply(data, { created: change.type === "session.created" });
  };

  /** Reads the page; answers whether it could. */
  const read = async ({ quiet }) => {
    const cursor = place.cursors[place.cursors.length - 1];
    held = [];
    try {
      const body = await getJson(listUrl(filters, cursor), { signal });
      if (signal.aborted) return false;
      hasMore = body.pagination.hasMore;
      nextCursor = hasMore ? body.pagination.nextCursor : null;
      const changes = held;
      held = null;
      showRows(body.sessions);
      // The calls waiting to become active stay so if they still belong on this page.
      const before = [...waiting.values()];
      waiting.clear();
      for (const session of [...shown, ...before]) track(session);
      for (const id of checks.keys()) {
        if (!waiting.has(id) && !shown.some((s) => s.sessionId === id && s.status === "initiated")) checks.delete(id);
      }
      for (const change of changes) applyChange(change);
      pageLabel.textContent = `Page ${place.cursors.length}`;
      status.textContent = "";
      authFailed = false;
      return true;
    } catch (error) {
      if (signal.aborted || error.name === "AbortError") return false;
      authFailed = error instanceof ApiError && error.isAuth;
      if (authFailed) {
        if (!quiet || shown.length === 0) showRows([], "Enter an API key to see the calls.");
      }
      status.textContent = `Could not read the calls: ${describe(error)}`;
      return false;
    } finally {
      held = null;
      newer.disabled = place.cursors.length <= 1;
      older.disabled = !nextCursor;
    }
  };

  /** Reads the page (again): one read at a time, and one more if asked meanwhile. */
  const load = async ({ quiet = false } = {}) => {
    if (loading) {
      reloadAgain = true;
      return loading;
    }
    loading = (async () => {
      let ok;
      do {
        reloadAgain = false;
        ok = await read({ quiet });
      } while (reloadAgain && !signal.aborted);
      return ok;
    })();
    try {
      return await loading;
    } finally {
      loading = null;
    }
  };

  /** Reads the initiated calls due for a check (a few per second at most). */
  const checkActivations = () => {
    if (!live || document.hidden) return;
    const now = Date.now();
    const due = [...checks.entries()].filter(([, c]) => c.due <= now && !c.busy).slice(0, CHECKS_PER_TICK);
    for (const [id, check] of due) {
      check.busy = true;
      request(sessionPath(id, "?limit=1"), { signal })
        .then((response) => response.json())
        .then((session) => {
          if (signal.aborted || checks.get(id) !== check) return;
          check.busy = false;
          check.tries += 1;
          check.due = Date.now() + CHECK_DELAYS_MS[Math.min(check.tries, CHECK_DELAYS_MS.length - 1)];
          const { events, ...rest } = session;
          apply(rest);
        })
        .catch((error) => {
          if (signal.aborted || error.name === "AbortError" || checks.get(id) !== check) return;
          if (error instanceof ApiError && (error.status === 404 || error.status === 410)) {
            forget(id);
            return;
          }
          check.busy = false;
          check.tries += 1;
          check.due = Date.now() + CHECK_DELAYS_MS[CHECK_DELAYS_MS.length - 1];
        });
    }
  };

  /** The running calls' durations move on. */
  const tick = () => {
    if (document.hidden) return;
    const now = Date.now();
    const rows = [...tbody.rows].filter((r) => r.dataset.sessionId !== undefined);
    shown.forEach((s, i) => {
      if (s.endedAt) return;
      const cell = rows[i]?.querySelector("td[data-label='Duration']");
      if (cell) cell.textContent = callDuration(s, now);
    });
    checkActivations();
  };

  const pause = (ms) =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });

  /**
   * The feed's head first, then the list, then the feed from that head: nothing written
   * between the read and the stream is missed (what both carry is shown once).
   */
  const run = async () => {
    let delay = 1000;
    while (!signal.aborted) {
      let head;
      try {
        head = (await getJson("/changes?after=now&limit=1", { signal })).nextCursor;
      } catch (error) {
        if (signal.aborted || error.name === "AbortError") return;
        const ok = await load();
        if (error instanceof ApiError && error.status !== 0 && error.status !== 429 && error.status < 500) {
          setFeedState("stopped", `Not live: ${describe(error)}`);
          return;
        }
        if (!ok && !signal.aborted && status.textContent === "") status.textContent = `Could not follow the calls: ${describe(error)}`;
        setFeedState("reconnecting");
        await pause(delay);
        delay = Math.min(delay * 2, 30_000);
        continue;
      }
      if (!(await load())) {
        if (signal.aborted) return;
        if (authFailed) {
          setFeedState("stopped"); // until a key is entered, which renders the list anew
          return;
        }
        setFeedState("reconnecting");
        await pause(delay);
        delay = Math.min(delay * 2, 30_000);
        continue;
      }
      delay = 1000;
      const outcome = await followChanges(head, FEED_TYPES, {
        onChange,
        onState: (state) => setFeedState(state),
        onError: (error) => setFeedState("stopped", `Not live: ${describe(error)}`),
      }, signal);
      if (outcome !== "expired") return;
      // The feed no longer holds our place: read everything again, from a new head.
      setFeedState("reconnecting");
    }
  };

  newer.addEventListener("click", () => {
    if (place.cursors.length > 1) place.cursors.pop();
    load();
  });
  older.addEventListener("click", () => {
    if (nextCursor) place.cursors.push(nextCursor);
    load();
  });

  replace(
    main,
    el("h1", { text: "Calls" }),
    filterForm(filters, (next) => {
      location.hash = hashQuery(next);
    }),
    el(
      "div",
      { class: "list-bar" },
      pageLabel,
      feedState,
      el("button", { type: "button", class: "quiet", text: "Refresh", onclick: () => load() }),
    ),
    status,
    el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { class: "calls" },
        el("caption", { class: "visually-hidden", text: "Calls, newest first" }),
        el(
          "thead",
          {},
          el("tr", {}, ["Call", "Status", "Language", "Started", "Duration", "Events", "End reason"].map((h) => el("th", { scope: "col", text: h }))),
        ),
        tbody,
      ),
    ),
    el("nav", { class: "pager", "aria-label": "Pages" }, newer, older),
  );
  newer.disabled = true;
  older.disabled = true;
  run();
  const timer = setInterval(tick, 1000);
  signal.addEventListener("abort", () => clearInterval(timer), { once: true });
}

/** The hash of the list as the user left it (to go back to from a call). */
export function listHash() {
  return place.query ?? "#/calls";
}
