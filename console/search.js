// The search view (#/search?q=…): GET /search with a query and the filters, a page of hits at a
// time ("More" for as long as the service answers a nextCursor), each hit's matches marked. A hit
// opens its call at that event (#/calls/ID?seq=N), which call.js loads, scrolls to and marks.
//
// A hit's text is built from text nodes and <mark> elements only (highlightParts): whatever markup
// a transcript holds is shown as the characters it is, never parsed.

import { ApiError, describe, getJson } from "./api.js";
import { callHref, el, replace } from "./dom.js";
import { formatDateTime } from "./format.js";
import { fromLocalInput, toLocalInput } from "./list.js";

const PAGE_SIZE = 20;
const STATUSES = ["initiated", "active", "completed", "failed"];
const SPEAKERS = { user_speech: "Caller", bot_speech: "Bot" };
const ORDERS = { relevance: "Best match first", newest: "Newest first" };
const METADATA_KEY = /^[A-Za-z0-9_-]{1,64}$/;
/** The service's parameter names as the form labels them, to name a field it refuses. */
const FIELD_LABELS = {
  q: "Find",
  type: "Said by",
  status: "Status",
  language: "Language",
  startedFrom: "Started from",
  startedBefore: "Started before",
  order: "Order",
};
/** Which form control holds each parameter (metadata.* parameters: the key's). */
const FIELD_INPUTS = {
  q: "s-q",
  type: "s-type",
  language: "s-language",
  startedFrom: "s-from",
  startedBefore: "s-before",
  order: "s-order",
};

/**
 * The search last shown (its hash, hits and cursor), kept while the user looks at a call, so
 * going back shows the same hits at the same place instead of searching again.
 */
let kept = null;
/** The hash of the last search run, for the call view's way back to it. */
let lastHash = null;
/** Set by a search asked for in the form: the new view gives the query box the focus back. */
let refocus = false;

/** The search a hash query (`#/search?q=…&type=…&status=…&…`) names. */
export function searchFiltersFrom(params) {
  const type = params.get("type") ?? "";
  const order = params.get("order") ?? "";
  return {
    q: params.get("q") ?? "",
    type: Object.hasOwn(SPEAKERS, type) ? type : "",
    status: (params.get("status") || "").split(",").filter((s) => STATUSES.includes(s)),
    language: params.get("language") || "",
    from: params.get("from") || "",
    before: params.get("before") || "",
    key: params.get("key") || "",
    value: params.get("value") || "",
    order: Object.hasOwn(ORDERS, order) ? order : "relevance",
  };
}

/** The console hash of a search (the defaults left out). */
export function searchHashOf(filters) {
  const params = new URLSearchParams();
  if (filters.q) params.set("q", filters.q);
  if (filters.type) params.set("type", filters.type);
  if (filters.status.length) params.set("status", filters.status.join(","));
  if (filters.language) params.set("language", filters.language);
  if (filters.from) params.set("from", filters.from);
  if (filters.before) params.set("before", filters.before);
  if (filters.key) {
    params.set("key", filters.key);
    params.set("value", filters.value);
  }
  if (filters.order !== "relevance") params.set("order", filters.order);
  const text = params.toString();
  return text ? `#/search?${text}` : "#/search";
}

/** The `GET /search` URL of one page. */
export function searchUrl(filters, cursor = null) {
  const params = new URLSearchParams();
  params.set("q", filters.q);
  if (filters.type) params.set("type", filters.type);
  if (filters.status.length) params.set("status", filters.status.join(","));
  if (filters.language) params.set("language", filters.language);
  if (filters.from) params.set("startedFrom", filters.from);
  if (filters.before) params.set("startedBefore", filters.before);
  if (filters.key) params.set(`metadata.${filters.key}`, filters.value);
  params.set("order", filters.order);
  params.set("limit", String(PAGE_SIZE));
  if (cursor) params.set("after", cursor);
  return `/search?${params}`;
}

/** The hash of the last search run (null: none yet), for a way back from a call. */
export function searchHash() {
  return lastHash;
}

/** The call view of `sessionId`, scrolled to the event `seq`. */
export function eventHref(sessionId, seq) {
  return `${callHref(sessionId)}?seq=${encodeURIComponent(seq)}`;
}

/**
 * `text` cut at the highlights: [part, marked] pairs that join up to the whole text. Offsets are
 * UTF-16 code units, as String.prototype.slice counts them (and as the service sends them). A
 * span out of order, overlapping the one before, empty or past the end is left unmarked rather
 * than trusted: the text itself is always shown whole.
 */
export function highlightParts(text, highlights) {
  const parts = [];
  let at = 0;
  for (const span of Array.isArray(highlights) ? highlights : []) {
    const [start, end] = Array.isArray(span) ? span : [];
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < at || end <= start || end > text.length) continue;
    if (start > at) parts.push([text.slice(at, start), false]);
    parts.push([text.slice(start, end), true]);
    at = end;
  }
  if (at < text.length) parts.push([text.slice(at), false]);
  return parts;
}

/** One hit: who said it and when, in which call (a link to it at this event), the text marked. */
function hitItem(hit) {
  const href = eventHref(hit.sessionId, hit.seq);
  const text = typeof hit.text === "string" ? hit.text : "";
  return el(
    "li",
    { class: `hit hit-${hit.type === "bot_speech" ? "bot" : "user"}`, dataset: { sessionId: hit.sessionId, seq: hit.seq } },
    el(
      "p",
      { class: "hit-head" },
      el("span", { class: "speaker", text: SPEAKERS[hit.type] ?? hit.type }),
      el("time", { datetime: hit.timestamp, text: formatDateTime(hit.timestamp) }),
      el("span", { class: "hit-where" }, el("a", { class: "hit-call", href, text: hit.sessionId }), el("span", { class: "seq", text: ` #${hit.seq}` })),
    ),
    el(
      "p",
      { class: "hit-text" },
      highlightParts(text, hit.highlights).map(([part, marked]) => (marked ? el("mark", { text: part }) : part)),
    ),
  );
}

/** How many filters (besides the order) are set, for the filters' summary. */
function filtersSet(filters) {
  return [filters.type, filters.status.length, filters.language, filters.from, filters.before, filters.key].filter(Boolean).length;
}

/**
 * The query box and the filters. Answers the form and a way to flag the fields the service
 * refused (aria-invalid, described by the error list).
 */
function searchForm(filters, onSearch) {
  const field = (id, label, input) => el("div", { class: "field" }, el("label", { for: id, text: label }), input);
  const q = el("input", {
    id: "s-q", type: "search", value: filters.q, autocomplete: "off", spellcheck: "false",
    maxlength: "256", enterkeyhint: "search", "aria-describedby": "s-q-help",
  });
  const type = el(
    "select",
    { id: "s-type" },
    el("option", { value: "", text: "Caller or bot", selected: filters.type === "" }),
    Object.entries(SPEAKERS).map(([value, text]) => el("option", { value, text, selected: filters.type === value })),
  );
  const order = el(
    "select",
    { id: "s-order" },
    Object.entries(ORDERS).map(([value, text]) => el("option", { value, text, selected: filters.order === value })),
  );
  const checks = STATUSES.map((s) =>
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "status", value: s, checked: filters.status.includes(s) }), ` ${s}`),
  );
  const language = el("input", { id: "s-language", type: "text", placeholder: "e.g. en-US", autocomplete: "off", spellcheck: "false", value: filters.language });
  const from = el("input", { id: "s-from", type: "datetime-local", step: "1", value: toLocalInput(filters.from) });
  const before = el("input", { id: "s-before", type: "datetime-local", step: "1", value: toLocalInput(filters.before) });
  const key = el("input", { id: "s-key", type: "text", placeholder: "e.g. userId", autocomplete: "off", spellcheck: "false", value: filters.key });
  const value = el("input", { id: "s-value", type: "text", autocomplete: "off", spellcheck: "false", value: filters.value });
  const submit = el("button", { type: "submit", class: "primary", text: "Search" });
  const problem = el("p", { id: "s-problem", class: "form-error", role: "alert" });
  const set = filtersSet(filters);
  // Open beside a wide screen's results; folded on a narrow one unless a filter is set.
  const details = el(
    "details",
    { class: "search-filters", open: set > 0 || !window.matchMedia("(max-width: 720px)").matches },
    el("summary", { text: set ? `Filters (${set} set)` : "Filters" }),
    el(
      "div",
      { class: "filter-grid" },
      field("s-type", "Said by", type),
      field("s-order", "Order", order),
      field("s-language", "Language", language),
      field("s-from", "Started from (local time)", from),
      field("s-before", "Started before (local time)", before),
      field("s-key", "Metadata key", key),
      field("s-value", "Metadata value", value),
      el("fieldset", { class: "statuses" }, el("legend", { text: "Call status" }), checks),
    ),
  );
  const form = el(
    "form",
    { class: "search-form", role: "search", "aria-label": "Search transcripts", novalidate: true },
    el(
      "div",
      { class: "search-row" },
      field("s-q", "Find", q),
      submit,
    ),
    el("p", { id: "s-q-help", class: "muted small search-help" },
      "All words must match, in any order. ", el("code", { text: '"exact phrase"' }), " ", el("code", { text: "prefix*" }), " ",
      el("code", { text: "-leave-out" }), ". Case and accents do not matter; only what the caller and the bot said is searched."),
    problem,
    details,
  );

  /** Flags the controls of `fields` (parameter names; [] clears every flag). */
  const flag = (fields) => {
    for (const input of form.querySelectorAll("[aria-invalid]")) {
      input.removeAttribute("aria-invalid");
      if (input !== q) input.removeAttribute("aria-describedby");
    }
    q.setAttribute("aria-describedby", "s-q-help");
    for (const name of fields) {
      const input = name.startsWith("metadata.") ? key : form.querySelector(`#${FIELD_INPUTS[name] ?? "none"}`);
      if (!input) continue;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", input === q ? "s-errors s-q-help" : "s-errors");
      if (!details.open && input !== q) details.open = true;
    }
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = {
      q: q.value.trim(),
      type: type.value,
      status: checks.map((c) => c.querySelector("input")).filter((i) => i.checked).map((i) => i.value),
      language: language.value.trim(),
      from: fromLocalInput(from.value),
      before: fromLocalInput(before.value),
      key: key.value.trim(),
      value: value.value,
      order: order.value,
    };
    let message = "";
    if (!next.q) message = "Enter what to find.";
    else if (next.from === null || next.before === null) message = "A start time is not a valid date and time.";
    else if (next.key && !METADATA_KEY.test(next.key)) message = "A metadata key is 1 to 64 characters of A-Z a-z 0-9 _ -.";
    else if (!next.key && next.value) message = "Give the metadata key that the value is for.";
    problem.textContent = message;
    if (message) {
      if (!next.q) q.focus();
      return;
    }
    onSearch(next);
  });
  return { form, flag, submit, q };
}

/** A sentence for how many hits are shown, and whether "More" may find others. */
function countText(count, more) {
  if (count === 0) return more ? "No matches among the events examined so far; “More” looks further." : "No matches.";
  const shown = `${count} match${count === 1 ? "" : "es"}`;
  return more ? `${shown} so far; “More” looks for further ones.` : `${shown}.`;
}

/** Renders the search view for the hash query `params` into `main`; runs its search, if any. */
export function renderSearch(main, params, signal) {
  const filters = searchFiltersFrom(params);
  const hash = searchHashOf(filters);
  const status = el("p", { class: "search-status", role: "status" });
  const errors = el("div", { id: "s-errors", class: "search-errors", role: "alert" });
  const hits = el("ol", { class: "hits", "aria-label": "Matches" });
  const more = el("button", { type: "button", class: "more", text: "More", hidden: true });
  let shown = [];
  let nextCursor = null;
  if (filters.q) lastHash = hash;

  const { form, flag, submit, q } = searchForm(filters, (next) => {
    const target = searchHashOf(next);
    kept = null; // a search asked for is run anew, even the one kept
    const before = location.hash;
    refocus = true;
    location.hash = target;
    // The same hash again is no hashchange (no new view): search again here.
    if (location.hash === before) {
      refocus = false;
      load(null);
    }
  });

  const showHits = (list, append) => {
    const items = list.map(hitItem);
    if (append) hits.append(...items);
    else replace(hits, items);
    return items;
  };

  const showFailure = (error) => {
    const refused = error instanceof ApiError && error.status === 400 && Array.isArray(error.problem.errors) && error.problem.errors.length > 0;
    if (refused) {
      replace(
        errors,
        el("p", { text: "The service refused this search:" }),
        el(
          "ul",
          {},
          error.problem.errors.map((e) => {
            const field = String(e.field ?? "");
            const label = FIELD_LABELS[field] ?? (field.startsWith("metadata.") ? `Metadata ${field.slice(9)}` : field);
            return el("li", {}, el("strong", { text: `${label}: ` }), String(e.message ?? ""));
          }),
        ),
      );
      flag(error.problem.errors.map((e) => String(e.field ?? "")));
    } else if (error instanceof ApiError && error.status === 401) {
      replace(errors, el("p", { text: "Enter an API key to search." }));
    } else if (error instanceof ApiError && error.status === 403) {
      replace(errors, el("p", { text: `This API key may not search (searching needs the read scope). ${describe(error)}` }));
    } else {
      replace(errors, el("p", { text: `Could not search: ${describe(error)}` }));
    }
  };

  /** Reads one page: the first (`cursor` null: the hits shown are replaced) or the next. */
  const load = async (cursor) => {
    submit.disabled = true;
    more.disabled = true;
    hits.setAttribute("aria-busy", "true");
    status.textContent = cursor ? "Looking for more…" : "Searching…";
    try {
      const page = await getJson(searchUrl(filters, cursor), { signal });
      if (signal.aborted) return;
      const found = Array.isArray(page.hits) ? page.hits : [];
      errors.replaceChildren();
      flag([]);
      const items = showHits(found, cursor !== null);
      shown = cursor === null ? found : shown.concat(found);
      nextCursor = page.nextCursor ?? null;
      kept = { hash, hits: shown, nextCursor, scrollY: 0, opened: null };
      status.textContent = countText(shown.length, nextCursor !== null);
      // After "More", the keyboard goes on from the first new hit.
      if (cursor !== null && items.length) items[0].querySelector("a").focus();
    } catch (error) {
      if (signal.aborted || error.name === "AbortError") return;
      if (cursor === null) {
        shown = [];
        nextCursor = null;
        hits.replaceChildren();
      }
      status.textContent = cursor === null ? "" : countText(shown.length, nextCursor !== null);
      showFailure(error);
    } finally {
      if (!signal.aborted) {
        submit.disabled = false;
        more.disabled = false;
        more.hidden = nextCursor === null;
        hits.removeAttribute("aria-busy");
      }
    }
  };

  more.addEventListener("click", () => {
    if (nextCursor) load(nextCursor);
  });
  // The whole card opens the hit (its link is what the keyboard reaches), unless text is being
  // selected in it.
  hits.addEventListener("click", (event) => {
    const item = event.target.closest?.(".hit");
    const link = item?.querySelector("a.hit-call");
    if (!link) return;
    if (kept) kept.opened = link.getAttribute("href");
    if (event.target.closest("a") || String(window.getSelection?.() ?? "") !== "") return;
    link.click();
  });

  replace(
    main,
    el("h1", { text: "Search" }),
    form,
    errors,
    status,
    hits,
    el("nav", { class: "pager", "aria-label": "More matches" }, more),
  );

  if (kept && kept.hash === hash) {
    // Back from a call: the same hits, where the user was, the focus on the one they opened.
    const back = kept;
    shown = back.hits;
    nextCursor = back.nextCursor;
    showHits(shown, false);
    status.textContent = countText(shown.length, nextCursor !== null);
    more.hidden = nextCursor === null;
    requestAnimationFrame(() => {
      if (signal.aborted) return;
      window.scrollTo(0, back.scrollY);
      const opened = [...hits.querySelectorAll("a.hit-call")].find((a) => a.getAttribute("href") === back.opened);
      opened?.focus({ preventScroll: true });
    });
  } else if (filters.q) {
    load(null);
  }
  // An empty search page, or a search just asked for: the query box has the focus (the router
  // focuses <main> after rendering, hence the frame's wait).
  if (refocus || !filters.q) {
    requestAnimationFrame(() => {
      if (!signal.aborted) q.focus();
    });
  }
  refocus = false;
  signal.addEventListener("abort", () => {
    if (kept?.hash === hash) kept.scrollY = window.scrollY;
  }, { once: true });
}
