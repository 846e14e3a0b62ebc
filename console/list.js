// The calls list: GET /sessions with the user's filters, newest first, paged by cursor, and
// re-read every few seconds without losing the page, the filters or the focused row.

import { ApiError, describe, getJson } from "./api.js";
import { callHref, el, replace } from "./dom.js";
import { callDuration, formatDateTime, formatTime } from "./format.js";

export const REFRESH_MS = 5000;
const PAGE_SIZE = 20;
const STATUSES = ["initiated", "active", "completed", "failed"];
const METADATA_KEY = /^[A-Za-z0-9_-]{1,64}$/;

// Where the user is in the list, kept across visits to a call: the filters (as the hash query
// they came from) and the cursors of the pages up to the current one (null: the first page).
const place = { query: null, cursors: [null] };

/** The filters a list hash query (`#/?status=…&from=…&before=…&key=…&value=…`) names. */
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
  return text ? `#/?${text}` : "#/";
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
function toLocalInput(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A datetime-local value as RFC 3339 UTC; "" for empty. */
function fromLocalInput(value) {
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

/**
 * Renders the list into `main` for the hash query `params`, and keeps it fresh until `signal`
 * aborts.
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
  const updated = el("span", { class: "muted small" });
  const status = el("p", { class: "list-status", role: "status" });
  const newer = el("button", { type: "button", text: "← Newer" });
  const older = el("button", { type: "button", text: "Older →" });
  let nextCursor = null;
  let loading = false;
  let paused = false;

  const load = async ({ quiet = false } = {}) => {
    if (loading) return;
    loading = true;
    const cursor = place.cursors[place.cursors.length - 1];
    try {
      const body = await getJson(listUrl(filters, cursor), { signal });
      if (signal.aborted) return;
      nextCursor = body.pagination.hasMore ? body.pagination.nextCursor : null;
      showRows(body.sessions, body.pagination.hasMore);
      pageLabel.textContent = `Page ${place.cursors.length}`;
      updated.textContent = `Updated ${formatTime(new Date().toISOString())}`;
      status.textContent = "";
      paused = false;
    } catch (error) {
      if (signal.aborted || error.name === "AbortError") return;
      if (error instanceof ApiError && error.isAuth) {
        paused = true; // until the key changes (which renders the list anew)
        if (!quiet || tbody.childElementCount === 0) showRows([], false, "Enter an API key to see the calls.");
      }
      status.textContent = `Could not read the calls: ${describe(error)}`;
    } finally {
      loading = false;
      newer.disabled = place.cursors.length <= 1;
      older.disabled = !nextCursor;
    }
  };

  let shownJson = null;
  const showRows = (sessions, hasMore, empty) => {
    const now = Date.now();
    const json = JSON.stringify([sessions, hasMore, empty]);
    if (json === shownJson) {
      // Nothing changed: only the running calls' durations move (selections and focus stay).
      sessions.forEach((s, i) => {
        const cell = tbody.rows[i]?.querySelector("td[data-label='Duration']");
        if (cell) cell.textContent = callDuration(s, now);
      });
      return;
    }
    shownJson = json;
    const focused = document.activeElement?.closest?.("tr")?.dataset.sessionId;
    if (sessions.length === 0) {
      const text = empty ?? (hasMore
        ? "No match among the calls examined for this page; “Older →” looks further."
        : "No calls match.");
      replace(tbody, el("tr", { class: "empty" }, el("td", { colspan: "7", text })));
    } else {
      replace(tbody, sessions.map((s) => row(s, now)));
    }
    if (focused) {
      const again = [...tbody.rows].find((r) => r.dataset.sessionId === focused);
      again?.querySelector("a")?.focus();
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
      updated,
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
  load();
  const timer = setInterval(() => {
    if (!document.hidden && !paused) load({ quiet: true });
  }, REFRESH_MS);
  signal.addEventListener("abort", () => clearInterval(timer), { once: true });
}

/** The hash of the list as the user left it (to go back to from a call). */
export function listHash() {
  return place.query ?? "#/";
}
