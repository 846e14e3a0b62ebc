// One webhook endpoint's delivery log (GET /webhooks/{id}/deliveries), failures first. The
// service pages its log newest first whatever the status, so it is read as three lists, one per
// status (failed, then pending, then succeeded), each newest first with a "More" of its own. A
// message that changed status between two of those reads is shown once, in its newer state: the
// one with more attempts (a tie is a recover, which made a delivered or failed message pending).
// While the log is open it is read again: every few seconds (or when its next attempt is due)
// while a delivery is pending, else every 15 s. Each row opens to show every attempt.

import { ApiError, describe, getJson } from "./api.js";
import { callHref, el, replace } from "./dom.js";
import { formatDateTime } from "./format.js";

/** The order of the log: what needs attention first. */
export const STATUS_ORDER = ["failed", "pending", "succeeded"];
const STATUS_TEXT = { failed: "Failed", pending: "Pending", succeeded: "Succeeded" };
const PAGE_SIZE = 20;
const MAX_LIMIT = 100;
const REFRESH_MIN_MS = 2_000;
const REFRESH_MAX_MS = 30_000;
const IDLE_REFRESH_MS = 15_000;
const COLUMNS = ["Status", "Type", "Call", "Attempts", "Last result", "Next attempt", "Created"];

/** The `GET` URL of one status's page of the log. */
export function deliveriesUrl(endpointId, status, { after = null, limit = PAGE_SIZE } = {}) {
  const params = new URLSearchParams({ status, limit: String(limit) });
  if (after) params.set("after", after);
  return `/webhooks/${encodeURIComponent(endpointId)}/deliveries?${params}`;
}

/** Of two reads of one message, the newer: more attempts; on a tie, the pending one. */
function newer(a, b) {
  const attempts = (d) => (Array.isArray(d.attempts) ? d.attempts.length : 0);
  if (attempts(a) !== attempts(b)) return attempts(a) > attempts(b) ? a : b;
  return b.status === "pending" ? b : a;
}

/**
 * The deliveries of the three lists (`{failed: [...], pending: [...], succeeded: [...]}`, each
 * newest first), each message once in its newer state, failed first, then pending, then
 * succeeded; within a status, in the service's order (newest first).
 */
export function orderDeliveries(lists) {
  const chosen = new Map();
  for (const status of STATUS_ORDER) {
    for (const d of lists[status] ?? []) {
      const seen = chosen.get(d.messageId);
      chosen.set(d.messageId, seen ? newer(seen, d) : d);
    }
  }
  const ordered = [];
  for (const status of STATUS_ORDER) {
    for (const d of lists[status] ?? []) {
      if (chosen.get(d.messageId) === d && d.status === status && !ordered.includes(d)) ordered.push(d);
    }
  }
  return ordered;
}

/** What the last attempt got: "HTTP 500", the error, or "—" before any attempt. */
export function lastResult(delivery) {
  const attempts = Array.isArray(delivery.attempts) ? delivery.attempts : [];
  const last = attempts[attempts.length - 1];
  if (!last) return "—";
  const parts = [];
  if (last.responseStatus !== null && last.responseStatus !== undefined) parts.push(`HTTP ${last.responseStatus}`);
  if (last.error) parts.push(last.error);
  return parts.length ? parts.join(": ") : "no answer";
}

function badge(status) {
  const known = STATUS_ORDER.includes(status) ? status : "unknown";
  return el("span", { class: `badge status-${known}`, text: status });
}

/** Every attempt of a delivery, oldest first (a list: a table in a table's cell would take on
 * the outer table's narrow-screen layout). */
function attemptList(delivery) {
  const attempts = Array.isArray(delivery.attempts) ? delivery.attempts : [];
  if (attempts.length === 0) return el("p", { class: "muted small", text: "No attempt yet." });
  return el(
    "ol",
    { class: "attempt-list", "aria-label": `Attempts to deliver ${delivery.messageId}` },
    attempts.map((a, i) =>
      el(
        "li",
        { class: "attempt" },
        el("span", { class: "attempt-n", text: `#${i + 1}` }),
        el("time", { datetime: a.at, text: formatDateTime(a.at) }),
        el("span", { class: "attempt-status", text: a.responseStatus !== null && a.responseStatus !== undefined ? `HTTP ${a.responseStatus}` : "no answer" }),
        el("span", { class: "attempt-duration", text: `${a.durationMs} ms` }),
        a.error ? el("span", { class: "attempt-error", text: a.error }) : null,
      ),
    ),
  );
}

/**
 * The delivery log of the endpoint `endpointId`. Answers `node`, `load()` (reads it again) and
 * `loaded` (whether it was read at least once). While `active()` (the log is open), it reads
 * itself again now and then; it stops reading when `signal` aborts.
 */
export function deliveryLog(endpointId, signal, { active = () => true } = {}) {
  const uid = `dl-${Math.random().toString(36).slice(2, 8)}`;
  const summary = el("p", { class: "log-summary", role: "status" });
  const problem = el("p", { class: "list-status", role: "alert" });
  const refresh = el("button", { type: "button", class: "quiet", text: "Refresh" });
  const table = el("table", { class: "calls deliveries" });
  const more = el("div", { class: "pager log-more" });
  const node = el("div", { class: "delivery-log" }, el("div", { class: "list-bar" }, summary, refresh), problem, el("div", { class: "table-wrap" }, table), more);

  /** Per status: the deliveries read (newest first) and the cursor of the next page. */
  const lists = Object.fromEntries(STATUS_ORDER.map((s) => [s, { items: [], cursor: null }]));
  const open = new Set(); // the messages whose attempts are shown
  let drawn = null; // what is on screen, as JSON: drawn again only when it changed
  let timer = null;
  let reading = null;
  let again = false;
  let loaded = false;

  const row = (d, i) => {
    const expanded = open.has(d.messageId);
    const detailId = `${uid}-a${i}`;
    const count = Array.isArray(d.attempts) ? d.attempts.length : 0;
    const toggle = el("button", {
      type: "button",
      class: "quiet attempts-toggle",
      "aria-expanded": String(expanded),
      "aria-controls": detailId,
      text: `${count} attempt${count === 1 ? "" : "s"}`,
    });
    toggle.addEventListener("click", () => {
      const now = !open.has(d.messageId);
      if (now) open.add(d.messageId);
      else open.delete(d.messageId);
      toggle.setAttribute("aria-expanded", String(now));
      document.getElementById(detailId).hidden = !now;
    });
    return [
      el(
        "tr",
        { class: "delivery", dataset: { messageId: d.messageId, status: d.status } },
        el("td", { "data-label": "Status" }, badge(d.status)),
        el("td", { "data-label": "Type", text: d.type }),
        el("td", { "data-label": "Call", class: "delivery-call" }, d.sessionId ? el("a", { href: callHref(d.sessionId), text: d.sessionId }) : "—"),
        el("td", { "data-label": "Attempts" }, toggle),
        el("td", { "data-label": "Last result", class: "last-result", text: lastResult(d) }),
        el("td", { "data-label": "Next attempt" }, d.nextAttemptAt ? el("time", { datetime: d.nextAttemptAt, text: formatDateTime(d.nextAttemptAt) }) : "—"),
        el("td", { "data-label": "Created" }, el("time", { datetime: d.createdAt, text: formatDateTime(d.createdAt) })),
      ),
      el("tr", { id: detailId, class: "attempts-row", hidden: !expanded }, el("td", { colspan: COLUMNS.length }, attemptList(d))),
    ];
  };

  const draw = () => {
    const ordered = orderDeliveries(Object.fromEntries(STATUS_ORDER.map((s) => [s, lists[s].items])));
    const json = JSON.stringify([ordered, STATUS_ORDER.map((s) => lists[s].cursor)]);
    if (json === drawn) return ordered;
    drawn = json;
    // The focused control goes back to its message's row once the table is drawn again.
    const focused = document.activeElement?.closest?.("tr.delivery")?.dataset.messageId;
    let i = 0;
    const bodies = STATUS_ORDER.map((status) => {
      const items = ordered.filter((d) => d.status === status);
      if (items.length === 0) return null;
      const label = `${STATUS_TEXT[status]} (${items.length}${lists[status].cursor ? "+" : ""})`;
      return el(
        "tbody",
        { dataset: { status } },
        el("tr", { class: "group-row" }, el("th", { scope: "rowgroup", colspan: COLUMNS.length, text: label })),
        items.map((d) => row(d, i++)),
      );
    });
    replace(
      table,
      el("caption", { class: "visually-hidden", text: "Deliveries: failed first, then pending, then succeeded; newest first in each" }),
      el("thead", {}, el("tr", {}, COLUMNS.map((h) => el("th", { scope: "col", text: h })))),
      ordered.length ? bodies : el("tbody", {}, el("tr", { class: "empty" }, el("td", { colspan: COLUMNS.length, text: "No deliveries yet." }))),
    );
    replace(
      more,
      STATUS_ORDER.filter((s) => lists[s].cursor).map((s) =>
        el("button", { type: "button", class: "quiet", text: `More ${s}`, onclick: (event) => readMore(s, event.currentTarget) }),
      ),
    );
    const counts = STATUS_ORDER.map((s) => {
      const n = ordered.filter((d) => d.status === s).length;
      return `${n}${lists[s].cursor ? "+" : ""} ${s}`;
    });
    summary.textContent = counts.join(" · ");
    if (focused) table.querySelector(`tr.delivery[data-message-id="${CSS.escape(focused)}"] .attempts-toggle`)?.focus();
    return ordered;
  };

  /**
   * When to read again while the log is open: soon while a delivery is pending (by its next
   * attempt, within bounds), else now and then; not while the tab is hidden.
   */
  const schedule = (ordered) => {
    clearTimeout(timer);
    timer = null;
    if (signal.aborted || !active()) return;
    const pending = ordered.filter((d) => d.status === "pending");
    const soonest = Math.min(...pending.map((d) => (d.nextAttemptAt ? Date.parse(d.nextAttemptAt) : Date.now())));
    const wait = pending.length ? Math.min(REFRESH_MAX_MS, Math.max(REFRESH_MIN_MS, soonest - Date.now() + 500)) : IDLE_REFRESH_MS;
    timer = setTimeout(() => {
      if (!active()) return;
      if (document.hidden) schedule(ordered);
      else load();
    }, wait);
  };

  const showError = (error) => {
    if (error instanceof ApiError && error.status === 401) problem.textContent = "Enter an API key to see the delivery log.";
    else if (error instanceof ApiError && error.status === 403) problem.textContent = "This API key may not read the delivery log (webhooks need an admin key).";
    else problem.textContent = `Could not read the delivery log: ${describe(error)}`;
  };

  /** Reads the three lists again, as much of each as is shown (at least a page). */
  const read = async () => {
    const pages = await Promise.all(
      STATUS_ORDER.map((status) => {
        const limit = Math.min(MAX_LIMIT, Math.max(PAGE_SIZE, lists[status].items.length));
        return getJson(deliveriesUrl(endpointId, status, { limit }), { signal });
      }),
    );
    STATUS_ORDER.forEach((status, i) => {
      lists[status] = { items: Array.isArray(pages[i].deliveries) ? pages[i].deliveries : [], cursor: pages[i].nextCursor ?? null };
    });
  };

  /** Reads the log again (one read at a time; one more if asked meanwhile). */
  const load = async () => {
    loaded = true;
    if (reading) {
      again = true;
      return reading;
    }
    reading = (async () => {
      refresh.disabled = true;
      node.setAttribute("aria-busy", "true");
      try {
        do {
          again = false;
          try {
            await read();
            problem.textContent = "";
            schedule(draw());
          } catch (error) {
            if (signal.aborted || error.name === "AbortError") return;
            showError(error);
            clearTimeout(timer);
            // No answer, too many requests, or the service's trouble: try again in a while.
            const transient = !(error instanceof ApiError) || error.status === 0 || error.status === 429 || error.status >= 500;
            if (transient) timer = setTimeout(() => active() && load(), (error.retryAfter ?? 5) * 1000);
          }
        } while (again && !signal.aborted);
      } finally {
        reading = null;
        refresh.disabled = false;
        node.removeAttribute("aria-busy");
      }
    })();
    return reading;
  };

  /** The next page of one status's list. */
  const readMore = async (status, button) => {
    button.disabled = true;
    try {
      const page = await getJson(deliveriesUrl(endpointId, status, { after: lists[status].cursor }), { signal });
      const known = new Set(lists[status].items.map((d) => d.messageId));
      lists[status] = {
        items: lists[status].items.concat((page.deliveries ?? []).filter((d) => !known.has(d.messageId))),
        cursor: page.nextCursor ?? null,
      };
      problem.textContent = "";
      schedule(draw());
    } catch (error) {
      if (signal.aborted || error.name === "AbortError") return;
      showError(error);
      button.disabled = false;
    }
  };

  refresh.addEventListener("click", () => load());
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  return {
    node,
    load,
    get loaded() {
      return loaded;
    },
  };
}
