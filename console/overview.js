// The overview, the console's start page: GET /stats for a range of time in a time zone, read
// twice (the calls per time step with the totals and "active now"; then the same range grouped by
// end reason), shown as headline figures and three charts, each chart with a table of its numbers.
//
// Its address: `#/` is the default view (the last 24 hours, hourly, in the browser's time zone);
// any other choice is `#/overview?range=24h|7d|30d|custom&bucket=hour|day&tz=ZONE&from=…&to=…`
// (the defaults left out; from/to, RFC 3339, with range=custom only). It is not `#/?…`: that was
// the calls list's address (its filters) before the overview, and the router still opens the list.
//
// The charts are drawn by chart.js; the time zones and wall clocks are zone.js's. End reasons are
// client-chosen strings: each one becomes a text node, never markup.

import { ApiError, describe, getJson } from "./api.js";
import { groupChart, number, svg, timeChart } from "./chart.js";
import { clearNotice, el, replace, showNotice } from "./dom.js";
import { formatDuration } from "./format.js";
import { browserZone, fromZonedInput, iso, knownZone, stepText, toZonedInput, wallParts, zonedInstant } from "./zone.js";

const PRESETS = {
  "24h": { label: "Last 24 hours (hourly)", bucket: "hour", count: 24 },
  "7d": { label: "Last 7 days (daily)", bucket: "day", count: 7 },
  "30d": { label: "Last 30 days (daily)", bucket: "day", count: 30 },
};
const DEFAULT_RANGE = "24h";
const BUCKETS = { hour: "Hourly", day: "Daily" };
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Past this many end reasons, the chart shows the biggest and one bar for the others (the table has all). */
const MAX_REASON_BARS = 12;
const NO_REASON = "No reason, or not ended";
/** The service's parameter names, and the form control each is set with. */
const FIELD_INPUTS = { from: "o-from", to: "o-to", bucket: "o-bucket", tz: "o-tz" };

/** The overview last shown, as its hash: the header's link goes back to it. */
let lastHash = null;

const isInstant = (text) => typeof text === "string" && text !== "" && !Number.isNaN(Date.parse(text));

/** The view a hash query names (`#/overview?…`; `#/` has none: the defaults). */
export function overviewStateFrom(params) {
  let range = params.get("range") ?? DEFAULT_RANGE;
  const from = params.get("from") ?? "";
  const to = params.get("to") ?? "";
  if (range === "custom" ? !(isInstant(from) && isInstant(to)) : !Object.hasOwn(PRESETS, range)) range = DEFAULT_RANGE;
  const bucket = Object.hasOwn(BUCKETS, params.get("bucket") ?? "") ? params.get("bucket") : defaultBucket(range);
  return {
    range,
    bucket,
    tz: (params.get("tz") ?? "").trim() || browserZone(),
    from: range === "custom" ? from : "",
    to: range === "custom" ? to : "",
  };
}

function defaultBucket(range) {
  return PRESETS[range]?.bucket ?? "day";
}

/** The hash of a view: `#/` for the defaults, else `#/overview?…` with what differs from them. */
export function overviewHashOf(state) {
  const params = new URLSearchParams();
  if (state.range !== DEFAULT_RANGE) params.set("range", state.range);
  if (state.bucket !== defaultBucket(state.range)) params.set("bucket", state.bucket);
  if (state.tz !== browserZone()) params.set("tz", state.tz);
  if (state.range === "custom") {
    params.set("from", state.from);
    params.set("to", state.to);
  }
  const text = params.toString();
  return text ? `#/overview?${text}` : "#/";
}

/** The hash of the overview as the user left it. */
export function overviewHash() {
  return lastHash ?? "#/";
}

/**
 * The instants a preset covers at `now`, aligned on the zone's steps so that its first step is
 * whole: the 24 hours up to the current one, the 7 or 30 days up to today (the last step, this
 * hour or today, runs to now). A zone the browser does not know: exactly the last N hours or days.
 */
export function presetRange(range, zone, now = Date.now()) {
  const { bucket, count } = PRESETS[range];
  let from;
  try {
    if (bucket === "hour") {
      const t = now - (count - 1) * HOUR_MS;
      const w = wallParts(t, zone);
      from = t - ((w.minute * 60 + w.second) * 1000 + (((t % 1000) + 1000) % 1000));
    } else {
      const w = wallParts(now, zone);
      const day = new Date(Date.UTC(w.year, w.month - 1, w.day - (count - 1)));
      from = zonedInstant({ year: day.getUTCFullYear(), month: day.getUTCMonth() + 1, day: day.getUTCDate() }, zone);
    }
  } catch {
    from = now - count * (bucket === "hour" ? HOUR_MS : DAY_MS);
  }
  return { from: iso(from), to: iso(now) };
}

/** The `GET /stats` URL of a range (from, to, bucket, tz), grouped by `groupBy` if given. */
function statsUrl({ from, to, bucket, tz }, groupBy = null) {
  const params = new URLSearchParams({ from, to, bucket, tz });
  if (groupBy) params.set("groupBy", groupBy);
  return `/stats?${params}`;
}

// The page

/** A small legend: one swatch per series, as HTML text. */
function legend(items) {
  return el(
    "ul",
    { class: "legend" },
    items.map(({ className, name, line }) =>
      el("li", {}, svg("svg", { class: "swatch", viewBox: "0 0 24 12", width: 24, height: 12, "aria-hidden": "true" },
        line ? svg("line", { class: className, x1: 1, x2: 23, y1: 6, y2: 6 }) : svg("rect", { class: className, x: 4, y: 1, width: 16, height: 10, rx: 2 })),
      name),
    ),
  );
}

/** A table of numbers with its caption, folded under a <details>, scrolling sideways if narrow. */
function dataTable({ caption, className, head, rows }) {
  const table = el(
    "table",
    { class: `numbers ${className}` },
    el("caption", { text: caption }),
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { scope: "col", class: i ? "num" : null, text: h })))),
    el("tbody", {}, rows),
  );
  return el(
    "details",
    { class: "chart-data" },
    el("summary", { text: "Show the numbers" }),
    el("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": caption }, table),
  );
}

const num = (v) => (v === null || v === undefined ? "—" : number.format(v));
const cell = (v) => el("td", { class: "num", text: num(v) });
const stepCell = (start, bucket) => el("th", { scope: "row" }, el("time", { datetime: start, text: stepText(start, bucket) }));

/** One headline figure; `value` (a number, or null) kept in a <data> element as the service sent it. */
function figure(key, term, value, text, note) {
  return el(
    "div",
    { class: "figure", dataset: { figure: key } },
    el("dt", { text: term }),
    el("dd", {}, value === null || value === undefined ? el("span", { class: "none", text: "—" }) : el("data", { value: String(value), text })),
    note ? el("dd", { class: "figure-note", text: note }) : null,
  );
}

const durationText = (s) => formatDuration(s * 1000);

/** The form: the range (a preset or from/to), the bucket, the time zone. */
function rangeForm(state, shown, onApply) {
  const field = (id, label, input, extra = {}) => el("div", { class: "field", ...extra }, el("label", { for: id, text: label }), input);
  const range = el(
    "select",
    { id: "o-range" },
    Object.entries(PRESETS).map(([value, p]) => el("option", { value, text: p.label, selected: state.range === value })),
    el("option", { value: "custom", text: "Custom range", selected: state.range === "custom" }),
  );
  const bucket = el(
    "select",
    { id: "o-bucket" },
    Object.entries(BUCKETS).map(([value, text]) => el("option", { value, text, selected: state.bucket === value })),
  );
  const zones = el("datalist", { id: "o-zones" });
  const tz = el("input", {
    id: "o-tz", type: "text", value: state.tz, list: "o-zones", autocomplete: "off", spellcheck: "false",
    placeholder: "e.g. Europe/Paris", "aria-describedby": "o-tz-help",
  });
  const inputZone = knownZone(state.tz) ? state.tz : "UTC";
  const from = el("input", { id: "o-from", type: "datetime-local", value: toZonedInput(shown.from, inputZone) });
  const to = el("input", { id: "o-to", type: "datetime-local", value: toZonedInput(shown.to, inputZone) });
  const custom = state.range === "custom";
  const fromField = field("o-from", "From (in that time zone)", from, { class: "field wide", hidden: !custom });
  const toField = field("o-to", "To, not included", to, { class: "field wide", hidden: !custom });
  const problem = el("p", { class: "form-error", role: "alert" });
  const form = el(
    "form",
    { class: "filters overview-form", "aria-label": "What the overview shows", novalidate: true },
    field("o-range", "Range", range, { class: "field wide" }),
    el("div", { class: "field wide" },
      el("label", { for: "o-tz", text: "Time zone" }), tz, zones,
      el("span", { id: "o-tz-help", class: "visually-hidden", text: "An IANA name, such as Europe/Paris or America/New_York" })),
    field("o-bucket", "Per", bucket),
    fromField,
    toField,
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", text: "Show" })),
    problem,
  );
  // The zone names the browser knows, offered as the field is typed in.
  let names = [];
  try {
    names = Intl.supportedValuesOf("timeZone");
  } catch {
    // an older browser: no suggestions
  }
  zones.append(...(names.includes("UTC") ? names : ["UTC", ...names]).map((value) => el("option", { value })));
  range.addEventListener("change", () => {
    const isCustom = range.value === "custom";
    fromField.hidden = !isCustom;
    toField.hidden = !isCustom;
    if (!isCustom) bucket.value = PRESETS[range.value].bucket;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const zone = tz.value.trim() || browserZone();
    const next = { range: range.value, bucket: bucket.value, tz: zone, from: "", to: "" };
    let message = "";
    if (next.range === "custom") {
      if (!from.value || !to.value) message = "Enter both From and To for a custom range.";
      else if (!knownZone(zone)) message = `This browser does not know the time zone “${zone}”, so it cannot place From and To in it: use an IANA name such as Europe/Paris or UTC.`;
      else {
        next.from = fromZonedInput(from.value, zone);
        next.to = fromZonedInput(to.value, zone);
        if (next.from === null || next.to === null) message = "From or To is not a valid date and time.";
        else if (Date.parse(next.from) >= Date.parse(next.to)) message = "From must be before To.";
      }
    }
    problem.textContent = message;
    if (!message) onApply(next);
  });

  /** Flags the controls of the service's refused `fields` ([] clears every flag). */
  const flag = (fields) => {
    for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    for (const name of fields) {
      const input = form.querySelector(`#${FIELD_INPUTS[name] ?? "none"}`);
      if (input && !input.closest("[hidden]")) input.setAttribute("aria-invalid", "true");
    }
  };
  return { form, flag };
}

/**
 * Renders the overview for the hash query `params` (empty for `#/`) into `main`, and reads its
 * numbers; `signal` aborts when the user leaves.
 */
export function renderOverview(main, params, signal) {
  const state = overviewStateFrom(params);
  lastHash = overviewHashOf(state);
  const per = state.bucket;
  const status = el("p", { class: "overview-status", role: "status" });
  const refresh = el("button", { type: "button", class: "quiet", text: "Refresh" });
  const headlineSlot = el("div", { class: "headline-slot" });
  const callsSlot = el("section", { class: "panel", "aria-label": `Calls per ${per}` });
  const durationsSlot = el("section", { class: "panel", "aria-label": `Call duration per ${per}` });
  const reasonsSlot = el("section", { class: "panel", "aria-label": "Calls by end reason" });
  const results = el("div", { class: "overview-results" }, headlineSlot, callsSlot, el("div", { class: "panel-row" }, durationsSlot, reasonsSlot));
  const initial = state.range === "custom" ? { from: state.from, to: state.to } : presetRange(state.range, state.tz);
  const { form, flag } = rangeForm(state, initial, (next) => {
    const target = overviewHashOf(next);
    // The same view again is no hashchange: it is read again here (from a new "now").
    if (target === (location.hash || "#/")) load();
    else location.hash = target;
  });

  // Each chart is drawn for the width it has (1 unit = 1 px: its text stays 12 px on any
  // screen), and again when that width changes.
  const charts = new Map();
  const chartBox = (name, draw) => {
    const box = el("div", { class: "chart" });
    charts.set(name, { box, draw });
    return box;
  };
  const drawAll = () => {
    const width = Math.max(200, Math.floor(results.clientWidth) || 640);
    for (const { box, draw } of charts.values()) {
      const chart = draw(Math.floor(box.clientWidth) || width);
      box.replaceChildren(...(chart ? [chart] : []));
    }
  };

  const showMain = (answer, zone) => {
    const steps = Array.isArray(answer.buckets) ? answer.buckets : [];
    const totals = answer.totals ?? {};
    const d = totals.durationSeconds ?? null;
    const bucket = answer.bucket === "hour" ? "hour" : "day";
    const stepHead = bucket === "hour" ? "Hour starting" : "Day";
    replace(
      headlineSlot,
      el(
        "dl",
        { class: "headline" },
        figure("activeNow", "Active now", answer.activeNow, num(answer.activeNow), "open calls, whenever they started"),
        figure("calls", "Calls", totals.calls, num(totals.calls), "started in this range"),
        figure("ended", "Ended", totals.ended, num(totals.ended), "of those calls"),
        figure("perCall", "Events per call", totals.events?.perCall, num(totals.events?.perCall), `${num(totals.events?.total)} events in all`),
        figure("p50", "Duration p50", d?.p50, d ? durationText(d.p50) : "", "the median ended call"),
        figure("p90", "Duration p90", d?.p90, d ? durationText(d.p90) : ""),
        figure("p99", "Duration p99", d?.p99, d ? durationText(d.p99) : ""),
        figure("max", "Longest call", d?.max, d ? durationText(d.max) : ""),
      ),
    );
    const calls = chartBox("calls", (width) =>
      timeChart({
        steps, bucket, width,
        label: `Calls per ${bucket}, ${rangeWords(answer, zone)}: ${num(totals.calls)} in all, ${num(totals.ended)} ended`,
        bars: [
          { className: "bar-ended", name: "ended", values: steps.map((s) => s.ended ?? 0) },
          { className: "bar-open", name: "not ended", values: steps.map((s) => Math.max(0, (s.calls ?? 0) - (s.ended ?? 0))) },
        ],
      }));
    replace(
      callsSlot,
      el("h2", { text: `Calls per ${bucket}` }),
      (totals.calls ?? 0) > 0 ? null : el("p", { class: "muted", text: "No call started in this range." }),
      legend([{ className: "bar-ended", name: "Ended" }, { className: "bar-open", name: "Not ended yet" }]),
      calls,
      dataTable({
        caption: `Calls per ${bucket} (${zone})`,
        className: "numbers-steps",
        head: [stepHead, "Calls", "Ended", "Events", "Events per call"],
        rows: steps.map((s) => el("tr", {}, stepCell(s.start, bucket), cell(s.calls), cell(s.ended), cell(s.events?.total), cell(s.events?.perCall))),
      }),
    );
    const durations = chartBox("durations", (width) =>
      timeChart({
        steps, bucket, width, durations: true,
        label: `Duration of the ended calls per ${bucket}, ${rangeWords(answer, zone)}: p50, p90 and p99`,
        lines: ["p50", "p90", "p99"].map((p) => ({ className: `line-${p}`, name: p, values: steps.map((s) => s.durationSeconds?.[p] ?? null) })),
      }));
    replace(
      durationsSlot,
      el("h2", { text: `Call duration per ${bucket}` }),
      d ? null : el("p", { class: "muted", text: "No call that started in this range has ended: no durations yet." }),
      legend([
        { className: "line-p50", name: "p50 (median)", line: true },
        { className: "line-p90", name: "p90", line: true },
        { className: "line-p99", name: "p99", line: true },
      ]),
      durations,
      dataTable({
        caption: `Duration of the ended calls per ${bucket}, in seconds (${zone})`,
        className: "numbers-durations",
        head: [stepHead, "Ended", "p50 (s)", "p90 (s)", "p99 (s)", "Max (s)"],
        rows: steps.map((s) => {
          const sd = s.durationSeconds;
          return el("tr", {}, stepCell(s.start, bucket), cell(s.ended), cell(sd?.p50), cell(sd?.p90), cell(sd?.p99), cell(sd?.max));
        }),
      }),
    );
  };

  const showReasons = (answer, note) => {
    const groups = Array.isArray(answer.groups) ? answer.groups : [];
    const total = groups.reduce((sum, g) => sum + (g.calls ?? 0), 0);
    const share = (calls) => (total ? `${Math.round((calls / total) * 100)}%` : "—");
    const nameOf = (g) => (g.group === null || g.group === undefined ? NO_REASON : String(g.group));
    // Most calls first; the service's order (by name) breaks ties.
    const sorted = groups.map((g, i) => [g, i]).sort(([a, i], [b, j]) => (b.calls ?? 0) - (a.calls ?? 0) || i - j).map(([g]) => g);
    const bars = sorted.slice(0, MAX_REASON_BARS).map((g) => ({ name: nameOf(g), none: g.group === null, value: g.calls ?? 0, note: `${num(g.calls)} · ${share(g.calls ?? 0)}` }));
    if (sorted.length > MAX_REASON_BARS) {
      const rest = sorted.slice(MAX_REASON_BARS).reduce((sum, g) => sum + (g.calls ?? 0), 0);
      bars.push({ name: `${sorted.length - MAX_REASON_BARS} other reasons`, none: true, value: rest, note: `${num(rest)} · ${share(rest)}` });
    }
    const chart = chartBox("reasons", (width) =>
      total ? groupChart({ rows: bars, width, label: `Calls by end reason: ${bars.map((r) => `${r.name} ${r.value}`).join(", ")}` }) : null);
    replace(
      reasonsSlot,
      el("h2", { text: "Calls by end reason" }),
      note ? el("p", { class: "muted small", text: note }) : null,
      total ? null : el("p", { class: "muted", text: "No call started in this range." }),
      chart,
      dataTable({
        caption: "Calls by end reason",
        className: "numbers-reasons",
        head: ["End reason", "Calls", "Share", "Ended", "p50 (s)", "p90 (s)", "Events per call"],
        rows: sorted.map((g) =>
          el("tr", { class: g.group === null ? "none" : null },
            el("th", { scope: "row", class: "reason", text: nameOf(g) }),
            cell(g.calls), el("td", { class: "num", text: share(g.calls ?? 0) }), cell(g.ended),
            cell(g.durationSeconds?.p50), cell(g.durationSeconds?.p90), cell(g.events?.perCall)),
        ),
      }),
    );
  };

  /** The calls by end reason could not be read: why, in their place. */
  const reasonsProblem = (error, tooMany) => {
    charts.delete("reasons");
    replace(
      reasonsSlot,
      el("h2", { text: "Calls by end reason" }),
      el("div", { class: "chart-problem", role: "alert" },
        el("p", { text: tooMany
          ? "Too many end reasons to count over this many days: one answer holds at most 1,000 figures (days × reasons). Choose a shorter range to see the calls by end reason."
          : "Could not read the calls by end reason." }),
        el("p", { class: "small", text: describe(error) })),
    );
  };

  const fail = (error) => {
    charts.clear();
    results.hidden = true;
    if (error instanceof ApiError && error.isAuth) {
      // app.js asks for a key (401) or says what this one may not do (403).
      status.textContent = error.status === 401 ? "Enter an API key to see the overview." : "This API key may not read the statistics.";
      return;
    }
    status.textContent = "Could not read the statistics.";
    showNotice(`Could not read the statistics: ${describe(error)}`);
    if (error instanceof ApiError && Array.isArray(error.problem.errors)) flag(error.problem.errors.map((e) => String(e.field ?? "")));
  };

  let reading = null;

  /** Reads the numbers (a preset from a new "now") and shows them. */
  const load = async () => {
    reading?.abort();
    const mine = new AbortController();
    reading = mine;
    const options = { signal: mine.signal };
    const range = {
      ...(state.range === "custom" ? { from: state.from, to: state.to } : presetRange(state.range, state.tz)),
      bucket: state.bucket,
      tz: state.tz,
    };
    clearNotice();
    flag([]);
    refresh.disabled = true;
    results.setAttribute("aria-busy", "true");
    status.textContent = "Reading…";
    const [totals, grouped] = await Promise.allSettled([
      getJson(statsUrl(range), options),
      getJson(statsUrl(range, "endedReason"), options),
    ]);
    try {
      if (mine.signal.aborted) return;
      if (totals.status === "rejected") {
        fail(totals.reason);
        return;
      }
      charts.clear();
      results.hidden = false;
      showMain(totals.value, range.tz);
      // Grouped, the same range may pass the limit of 1,000 figures (steps × reasons) that the
      // ungrouped read did not: counted per day instead (a reason's totals are the same).
      const refused = (r) => r.status === "rejected" && r.reason instanceof ApiError && r.reason.status === 400;
      let reasons = grouped;
      let note = null;
      if (refused(reasons) && range.bucket === "hour") {
        reasons = await getJson(statsUrl({ ...range, bucket: "day" }, "endedReason"), options).then(
          (value) => ({ status: "fulfilled", value }),
          (reason) => ({ status: "rejected", reason }),
        );
        if (mine.signal.aborted) return;
        note = "Counted per day: per hour, there were too many figures (hours × reasons) for one answer.";
      }
      if (reasons.status === "fulfilled") showReasons(reasons.value, note);
      else reasonsProblem(reasons.reason, refused(reasons));
      status.replaceChildren(
        `Calls started ${rangeWords(totals.value, range.tz)}, per ${totals.value.bucket === "hour" ? "hour" : "day"}. `,
        el("span", { class: "muted", text: `Read at ${new Date().toLocaleTimeString()}.` }),
      );
      drawAll();
    } finally {
      if (reading === mine) {
        reading = null;
        refresh.disabled = false;
        results.removeAttribute("aria-busy");
      }
    }
  };

  refresh.addEventListener("click", () => load());
  replace(main, el("h1", { text: "Overview" }), form, el("div", { class: "list-bar overview-bar" }, status, refresh), results);

  let lastWidth = 0;
  let frame = 0;
  const observer = new ResizeObserver(() => {
    const width = Math.round(results.clientWidth);
    if (!width || width === lastWidth) return;
    lastWidth = width;
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(drawAll);
  });
  observer.observe(results);
  signal.addEventListener("abort", () => {
    observer.disconnect();
    cancelAnimationFrame(frame);
    reading?.abort();
  }, { once: true });
  load();
}

/** "from Nov 27, 12:00 AM to Dec 4, 10:23 AM (Europe/Paris)": the range the service answered for. */
function rangeWords(answer, zone) {
  const tz = typeof answer.tz === "string" ? answer.tz : zone;
  const thisYear = new Date().getFullYear();
  const otherYear = [answer.from, answer.to].some((t) => isInstant(t) && new Date(t).getUTCFullYear() !== thisYear);
  let format;
  try {
    format = new Intl.DateTimeFormat(undefined, {
      timeZone: tz, year: otherYear ? "numeric" : undefined, month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
    });
  } catch {
    return `from ${answer.from} to ${answer.to} (${tz})`;
  }
  const at = (text) => (isInstant(text) ? format.format(new Date(text)) : String(text));
  return `from ${at(answer.from)} to ${at(answer.to)} (${tz})`;
}
