// The console's overview (console/overview.js), its start page, in a real browser (Debian's
// chromium through playwright-core) against the real service binary on SQLite: the headline
// figures and the numbers in the charts' tables are exactly what GET /stats answers for the same
// parameters (the test reads them itself); the x labels are the chosen zone's; the range and zone
// live in the address; grouped by end reason past the limit of 1,000 buckets per hour, the page
// counts per day, and says so clearly when even that is refused; the service's 400 detail is
// shown; end reasons are text; the calls list moved to #/calls and old #/?status=… links still
// open it; nothing sticks out sideways at 375 px. Screenshots go to tools/browser/screenshots/
// (git-ignored). First, in Node alone, the page's address and its ranges in a time zone.
//
// Run by tools/browser/run.sh, which sets SESSION_SERVICE_BIN.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import { formatDuration } from "../../console/format.js";
import { niceTicks } from "../../console/chart.js";
import { overviewHashOf, overviewStateFrom, presetRange } from "../../console/overview.js";
import { browserZone, fromZonedInput } from "../../console/zone.js";
import { launch, openPage } from "./lib/browser.mjs";
import { apiClient, startService } from "./lib/service.mjs";

const SCREENSHOTS = join(dirname(fileURLToPath(import.meta.url)), "screenshots");
const TEST_TIMEOUT = 60_000;
const LONG_REASON = `escalated_to_a_human_agent_after_the_caller_asked_twice_${"x".repeat(8)}`;
const NO_REASON = "No reason, or not ended";
const READ_KEY = "overview-read-key-0123456789abcdef";
const ADMIN_KEY = "overview-admin-key-0123456789abcdef";
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe("the overview's address and ranges (Node)", () => {
  test("the defaults are #/; any other choice is #/overview?… and reads back the same", () => {
    const defaults = overviewStateFrom(new URLSearchParams(""));
    assert.deepEqual(defaults, { range: "24h", bucket: "hour", tz: browserZone(), from: "", to: "" });
    assert.equal(overviewHashOf(defaults), "#/");
    const custom = { range: "custom", bucket: "hour", tz: "Asia/Kolkata", from: "2026-01-01T00:00:00Z", to: "2026-01-03T00:00:00Z" };
    const hash = overviewHashOf(custom);
    assert.match(hash, /^#\/overview\?/);
    assert.deepEqual(overviewStateFrom(new URLSearchParams(hash.slice("#/overview?".length))), custom);
    assert.equal(overviewHashOf({ ...defaults, range: "7d", bucket: "day" }), "#/overview?range=7d", "a preset's own bucket is left out");
    assert.equal(overviewHashOf({ ...defaults, range: "7d", bucket: "hour" }), "#/overview?range=7d&bucket=hour");
    // What cannot be read falls back to the defaults, never to the list's parameters.
    assert.deepEqual(overviewStateFrom(new URLSearchParams("range=custom&from=x")), defaults);
    assert.deepEqual(overviewStateFrom(new URLSearchParams("range=1y&bucket=minute")), defaults);
  });

  test("a preset starts on a whole step of the zone, across a daylight-saving change too", () => {
    // 20:00 UTC is 01:30 the next day in Kolkata (+05:30).
    const now = Date.parse("2026-03-10T20:00:00Z");
    assert.deepEqual(presetRange("7d", "Asia/Kolkata", now), { from: "2026-03-04T18:30:00Z", to: "2026-03-10T20:00:00Z" });
    assert.equal(presetRange("24h", "Asia/Kolkata", now).from, "2026-03-09T20:30:00Z", "02:00 in Kolkata, 23 hours before the current hour");
    // New York is on EDT (−4) on March 20 and was on EST (−5) 29 days before.
    assert.equal(presetRange("30d", "America/New_York", Date.parse("2026-03-20T12:00:00Z")).from, "2026-02-19T05:00:00Z");
    assert.equal(presetRange("7d", "Nowhere/Unknown", now).from, new Date(now - 7 * DAY).toISOString().replace(".000Z", "Z"));
    assert.equal(fromZonedInput("2026-07-01T09:15", "Europe/Paris"), "2026-07-01T07:15:00Z");
    assert.equal(fromZonedInput("not a time", "Europe/Paris"), null);
  });

  test("the y axis ends on a round number at or above the largest value", () => {
    assert.deepEqual(niceTicks(0), [0, 1]);
    assert.deepEqual(niceTicks(7), [0, 2, 4, 6, 8]);
    assert.deepEqual(niceTicks(1), [0, 1]);
    assert.deepEqual(niceTicks(400, { durations: true }), [0, 120, 240, 360, 480]);
    for (const max of [3, 13, 99, 1234, 56789]) {
      const ticks = niceTicks(max);
      assert.ok(ticks.at(-1) >= max && ticks.every(Number.isInteger), `${max}: ${ticks}`);
    }
  });
});

let browser;

before(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/** Asserts that nothing ran that must not: no script dialog, no page error, no CSP refusal. */
function assertClean(trouble) {
  assert.deepEqual(trouble.dialogs, [], "no script dialog opened");
  assert.deepEqual(trouble.errors, [], "no page or console error");
}

/** How far the page sticks out sideways (0 or less: not at all). */
const overflow = (page) => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);

/** Records the page's GET /stats requests, in order, with their answers' statuses. */
function recordStats(page) {
  const seen = [];
  page.on("response", (response) => {
    const url = new URL(response.url());
    if (url.pathname === "/stats") seen.push({ params: url.searchParams, status: response.status() });
  });
  return seen;
}

/** The last read recorded without groupBy (`grouped` false) or with it (true). */
const lastRead = (seen, grouped) => seen.findLast((s) => s.params.has("groupBy") === grouped);

/** The reads recorded, as [groupBy, bucket, status], the first two (sent together) in a fixed order. */
const readsOf = (seen) => {
  const reads = seen.map((s) => [s.params.get("groupBy"), s.params.get("bucket"), s.status]);
  return [...reads.slice(0, 2).sort((a, b) => String(a[0]).localeCompare(String(b[0]))), ...reads.slice(2)];
};

/**
 * Runs `action` (which shows a new view of the overview, or none for the first) and waits until
 * that view has read its numbers: its status says so and nothing is being read.
 */
async function settle(page, action = null) {
  if (action) {
    await page.evaluate(() => {
      const status = document.querySelector(".overview-status");
      if (status) status.dataset.old = "1";
    });
    await action();
  }
  await page.waitForFunction(() => {
    const status = document.querySelector(".overview-status");
    return status && !status.dataset.old && /Read at|Could not/.test(status.textContent) && !document.querySelector(".overview-results[aria-busy]");
  });
}

/** A number as a table shows it ("—": null). */
const parseCell = (text) => (text.trim() === "—" ? null : Number(text.replace(/[^\d.-]/g, "")));

/** A table's body rows: each the cells' texts, and the datetime of a <time> in the row head. */
const tableRows = (page, className) =>
  page.locator(`table.${className} tbody tr`).evaluateAll((rows) =>
    rows.map((row) => ({
      datetime: row.querySelector("time")?.getAttribute("datetime") ?? null,
      head: row.querySelector("th").textContent,
      headNodes: [...row.querySelector("th").childNodes].map((n) => n.nodeName),
      cells: [...row.querySelectorAll("td")].map((td) => td.textContent),
    })),
  );

/**
 * Asserts that the page shows `stats` (GET /stats without groupBy) and `reasons` (with
 * groupBy=endedReason): the headline, the tables, and one bar per non-zero figure.
 */
async function assertShown(page, stats, reasons) {
  const figures = await page.locator(".headline [data-figure]").evaluateAll((nodes) =>
    Object.fromEntries(nodes.map((n) => [n.dataset.figure, { value: n.querySelector("data")?.getAttribute("value") ?? null, text: n.querySelector("dd").textContent }])),
  );
  const d = stats.totals.durationSeconds;
  const expected = {
    activeNow: stats.activeNow,
    calls: stats.totals.calls,
    ended: stats.totals.ended,
    perCall: stats.totals.events.perCall,
    p50: d?.p50 ?? null,
    p90: d?.p90 ?? null,
    p99: d?.p99 ?? null,
    max: d?.max ?? null,
  };
  for (const [key, value] of Object.entries(expected)) {
    assert.equal(figures[key].value === null ? null : Number(figures[key].value), value, `the headline's ${key}`);
  }
  for (const key of ["p50", "p90", "p99", "max"]) {
    if (d) assert.equal(figures[key].text, formatDuration(d[key] * 1000), `${key} as a duration`);
  }

  const steps = await tableRows(page, "numbers-steps");
  assert.deepEqual(
    steps.map((r) => [r.datetime, ...r.cells.map(parseCell)]),
    stats.buckets.map((b) => [b.start, b.calls, b.ended, b.events.total, b.events.perCall]),
    "the calls per step, every step included",
  );
  const durations = await tableRows(page, "numbers-durations");
  assert.deepEqual(
    durations.map((r) => [r.datetime, ...r.cells.map(parseCell)]),
    stats.buckets.map((b) => [b.start, b.ended, b.durationSeconds?.p50 ?? null, b.durationSeconds?.p90 ?? null, b.durationSeconds?.p99 ?? null, b.durationSeconds?.max ?? null]),
    "the durations per step",
  );
  // The calls chart: one stacked part per step with ended calls, one per step with open ones.
  const chart = page.locator(".panel", { has: page.locator("table.numbers-steps") }).locator("svg.chart-svg");
  assert.equal(await chart.locator("rect.bar-ended").count(), stats.buckets.filter((b) => b.ended > 0).length);
  assert.equal(await chart.locator("rect.bar-open").count(), stats.buckets.filter((b) => b.calls > b.ended).length);

  const name = (g) => (g.group === null ? NO_REASON : g.group);
  const shownReasons = await tableRows(page, "numbers-reasons");
  const reasonRow = (g) => [name(g), g.calls, g.ended, g.durationSeconds?.p50 ?? null, g.durationSeconds?.p90 ?? null, g.events.perCall];
  assert.deepEqual(
    shownReasons.map((r) => [r.head, parseCell(r.cells[0]), parseCell(r.cells[2]), parseCell(r.cells[3]), parseCell(r.cells[4]), parseCell(r.cells[5])]).sort(byName),
    reasons.groups.map(reasonRow).sort(byName),
    "the calls by end reason",
  );
  const counts = shownReasons.map((r) => parseCell(r.cells[0]));
  assert.deepEqual(counts, [...counts].sort((a, b) => b - a), "most calls first");
  assert.ok(shownReasons.every((r) => r.headNodes.length === 1 && r.headNodes[0] === "#text"), "each reason is one text node");
  // The reasons chart: one bar per reason (up to 12), each named by its full text in a <title>.
  const bars = await page.locator("svg.chart-svg g.group").evaluateAll((groups) =>
    groups.map((g) => ({ title: g.querySelector("title").textContent, name: g.querySelector(".group-name").textContent })),
  );
  if (reasons.totals.calls > 0) {
    assert.deepEqual(bars.map((b) => b.title.slice(0, b.title.lastIndexOf(": "))).sort(), reasons.groups.map(name).sort());
    for (const bar of bars) {
      const full = bar.title.slice(0, bar.title.lastIndexOf(": "));
      assert.ok(bar.name === full || (bar.name.endsWith("…") && full.startsWith(bar.name.slice(0, -1))), `${bar.name} names ${full}`);
    }
  }

  for (const svg of await page.locator("svg.chart-svg").all()) {
    assert.equal(await svg.getAttribute("role"), "img");
    assert.ok((await svg.getAttribute("aria-label")).length > 10, "each chart says what it shows");
  }
  for (const caption of [/^Calls per/, /^Duration of the ended calls per/, /^Calls by end reason/]) {
    assert.equal(await page.locator("table caption", { hasText: caption }).count(), 1, `a table captioned ${caption}`);
  }
  assert.equal(await page.locator("main img, main script, main b").count(), 0, "no markup from data");
}

const byName = (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

describe("the overview", { timeout: TEST_TIMEOUT * 10 }, () => {
  let service;
  let api;
  /** GET /stats with `params`: its status and JSON. */
  const apiStats = async (params) => {
    const { status, json } = await api.send("GET", `/stats?${new URLSearchParams(params)}`);
    return { status, json };
  };
  const okStats = async (params) => {
    const { status, json } = await apiStats(params);
    assert.equal(status, 200, JSON.stringify(json));
    return json;
  };

  before(async () => {
    service = await startService();
    api = apiClient(service.base);
    // Nine calls: seven ended at 0, 1 or 2 s (so the percentiles differ), with four reasons and
    // one without; two still open (one active, one never spoken in).
    const ids = ["ov-a", "ov-b", "ov-c", "ov-d", "ov-e", "ov-f", "ov-g", "ov-open-1", "ov-open-2"];
    for (const id of ids) await api.createSession(id, { metadata: { note: "<img src=x onerror=alert(1)>" } });
    for (const [id, n] of [["ov-a", 3], ["ov-b", 1], ["ov-c", 5], ["ov-d", 2], ["ov-f", 4], ["ov-open-1", 2]]) {
      for (let i = 1; i <= n; i++) await api.addEvent(id, `e-${i}`, i % 2 ? "user_speech" : "bot_speech", { text: `turn ${i}` });
    }
    await api.complete("ov-a", { reason: "caller_hangup" });
    await api.complete("ov-b", { status: "failed", reason: "agent_error" });
    await sleep(1_100);
    await api.complete("ov-c", { reason: "caller_hangup" });
    await api.complete("ov-d", { reason: "transferred" });
    await api.complete("ov-e");
    await sleep(1_100);
    await api.complete("ov-f", { reason: LONG_REASON });
    await api.complete("ov-g", { reason: "caller_hangup" });
  });

  after(async () => {
    await service?.stop();
  });

  test("the start page is the overview; its figures and tables are GET /stats's for the same range", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser);
    const seen = recordStats(page);
    await page.goto(`${service.base}/console`);
    await settle(page);
    assert.equal(await page.getByRole("heading", { level: 1 }).innerText(), "Overview");
    assert.match(await page.title(), /^Overview/);
    assert.equal(await page.getByRole("link", { name: "Overview", exact: true }).getAttribute("aria-current"), "page");
    assert.equal(await page.getByRole("link", { name: "Calls", exact: true }).getAttribute("aria-current"), null);
    assert.equal(await page.getByRole("link", { name: "Search", exact: true }).getAttribute("aria-current"), null);

    assert.equal(seen.length, 2, "two reads: the totals, and by end reason");
    const plain = lastRead(seen, false);
    const grouped = lastRead(seen, true);
    const zone = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
    assert.equal(await page.getByLabel("Time zone", { exact: true }).inputValue(), zone, "the browser's zone by default");
    assert.equal(plain.params.get("tz"), zone);
    assert.equal(plain.params.get("bucket"), "hour", "the last 24 hours, hourly");
    assert.equal(plain.params.has("groupBy"), false);
    assert.equal(grouped.params.get("groupBy"), "endedReason");
    for (const key of ["from", "to", "bucket", "tz"]) assert.equal(grouped.params.get(key), plain.params.get(key), `the same ${key}`);
    assert.ok(Date.parse(plain.params.get("to")) - Date.parse(plain.params.get("from")) <= 24 * HOUR);

    const stats = await okStats(plain.params);
    const reasons = await okStats(grouped.params);
    assert.equal(stats.totals.calls, 9, "the test's own calls");
    assert.equal(stats.activeNow, 2);
    assert.ok(stats.buckets.length >= 24, "every hour, also those without calls");
    await assertShown(page, stats, reasons);
    assert.deepEqual(reasons.groups.map((g) => g.group).sort(), ["agent_error", "caller_hangup", LONG_REASON, null, "transferred"].sort());
    await page.screenshot({ path: join(SCREENSHOTS, "overview-desktop.png"), fullPage: true });

    // The numbers under each chart, opened; the SVG's text is drawn at 12 px (1 unit = 1 px).
    for (const summary of await page.getByText("Show the numbers").all()) await summary.click();
    const scale = await page.locator("svg.chart-svg").evaluateAll((svgs) => svgs.map((s) => s.getBoundingClientRect().width / s.viewBox.baseVal.width));
    assert.ok(scale.every((s) => Math.abs(s - 1) < 0.02), `the charts are drawn at their width: ${scale}`);
    await page.screenshot({ path: join(SCREENSHOTS, "overview-numbers-desktop.png"), fullPage: true });
    assertClean(trouble);
    await context.close();
  });

  test("a zone and a range chosen in the form go into the address, and the steps are the zone's", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser);
    const seen = recordStats(page);
    await page.goto(`${service.base}/console#/`);
    await settle(page);
    // Kolkata is 5 h 30 min ahead of UTC: its hours start at :30 in UTC (and in this browser's zone
    // unless that is Kolkata's too), so a label on a whole hour is the zone's.
    await page.getByLabel("Time zone", { exact: true }).fill("Asia/Kolkata");
    await settle(page, () => page.getByRole("button", { name: "Show" }).click());
    assert.equal(new URL(page.url()).hash, "#/overview?tz=Asia%2FKolkata");
    const hourly = lastRead(seen, false);
    assert.equal(hourly.params.get("tz"), "Asia/Kolkata");
    const stats = await okStats(hourly.params);
    await assertShown(page, stats, await okStats(lastRead(seen, true).params));
    assert.ok(stats.buckets.every((b) => b.start.endsWith("+05:30")), "the service's steps carry the zone's offset");
    const starts = stats.buckets.map((b) => b.start);
    const expected = await page.evaluate((list) => {
      const full = new Intl.DateTimeFormat(undefined, { timeZone: "Asia/Kolkata", weekday: "short", month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
      const short = new Intl.DateTimeFormat(undefined, { timeZone: "Asia/Kolkata", hour: "numeric", minute: "2-digit" });
      return { rows: list.map((s) => full.format(new Date(s))), labels: list.map((s) => short.format(new Date(s))) };
    }, starts);
    assert.deepEqual((await tableRows(page, "numbers-steps")).map((r) => r.head), expected.rows, "each step in Kolkata's time");
    const labels = await page.locator(".panel", { has: page.locator("table.numbers-steps") }).locator(".x-axis text:not(.date)").allTextContents();
    assert.ok(labels.length >= 3, `labels: ${labels}`);
    assert.ok(labels.every((l) => expected.labels.includes(l)), `x labels in Kolkata's time: ${labels}`);

    // Last 7 days: daily, from midnight in Kolkata 6 days ago.
    await page.getByLabel("Range", { exact: true }).selectOption("7d");
    assert.equal(await page.getByLabel("Per", { exact: true }).inputValue(), "day", "the preset's bucket");
    await settle(page, () => page.getByRole("button", { name: "Show" }).click());
    assert.equal(new URL(page.url()).hash, "#/overview?range=7d&tz=Asia%2FKolkata");
    const daily = lastRead(seen, false);
    assert.equal(daily.params.get("bucket"), "day");
    assert.equal((Date.parse(daily.params.get("from")) + 5.5 * HOUR) % DAY, 0, "from is midnight in Kolkata");
    const week = await okStats(daily.params);
    assert.equal(week.buckets.length, 7);
    await assertShown(page, week, await okStats(lastRead(seen, true).params));
    const dayHeads = await page.evaluate((list) => {
      const full = new Intl.DateTimeFormat(undefined, { timeZone: "Asia/Kolkata", weekday: "short", month: "short", day: "numeric", year: "numeric" });
      return list.map((s) => full.format(new Date(s)));
    }, week.buckets.map((b) => b.start));
    assert.deepEqual((await tableRows(page, "numbers-steps")).map((r) => r.head), dayHeads);

    // Reloaded, the same view; the header's link goes back to it from the list.
    await settle(page, () => page.reload());
    assert.equal(await page.getByLabel("Range", { exact: true }).inputValue(), "7d");
    assert.equal(await page.getByLabel("Time zone", { exact: true }).inputValue(), "Asia/Kolkata");
    await page.getByRole("link", { name: "Calls", exact: true }).click();
    await page.locator("tr[data-session-id='ov-a']").waitFor();
    assert.equal(await page.getByRole("link", { name: "Overview", exact: true }).getAttribute("href"), "#/overview?range=7d&tz=Asia%2FKolkata");
    await settle(page, () => page.getByRole("link", { name: "Overview", exact: true }).click());
    assert.equal(await page.getByLabel("Time zone", { exact: true }).inputValue(), "Asia/Kolkata");
    assertClean(trouble);
    await context.close();
  });

  test("past the limit per hour, the end reasons are counted per day; a range too long for that says so", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser);
    const seen = recordStats(page);
    // 30 days per hour: about 720 steps pass alone, not times five end reasons.
    await page.goto(`${service.base}/console#/overview?range=30d&bucket=hour&tz=UTC`);
    await settle(page);
    assert.deepEqual(readsOf(seen), [
      ["endedReason", "hour", 400],
      [null, "hour", 200],
      ["endedReason", "day", 200],
    ]);
    await page.getByText("Counted per day").waitFor();
    await assertShown(page, await okStats(lastRead(seen, false).params), await okStats(lastRead(seen, true).params));

    // 400 days per day: the totals pass, by reason not even per day.
    const to = new Date();
    const from = new Date(to.getTime() - 400 * DAY);
    seen.length = 0;
    await settle(page, () => page.goto(`${service.base}/console#/overview?range=custom&tz=UTC&from=${from.toISOString()}&to=${to.toISOString()}`));
    assert.deepEqual(readsOf(seen), [["endedReason", "day", 400], [null, "day", 200]]);
    const refused = await apiStats(lastRead(seen, true).params);
    assert.equal(refused.status, 400);
    const problem = page.locator(".chart-problem");
    await problem.waitFor();
    assert.match(await problem.innerText(), /Too many end reasons to count over this many days[\s\S]*Choose a shorter range/);
    assert.ok((await problem.innerText()).includes(refused.json.detail), "the service's detail");
    assert.equal(await problem.getAttribute("role"), "alert");
    const stats = await okStats(lastRead(seen, false).params);
    assert.equal(Number(await page.locator("[data-figure='calls'] data").getAttribute("value")), stats.totals.calls, "the rest is shown");
    assert.equal(await page.getByLabel("Range", { exact: true }).inputValue(), "custom");
    assert.ok(await page.getByLabel("From (in that time zone)").isVisible());
    await page.screenshot({ path: join(SCREENSHOTS, "overview-reasons-refused.png"), fullPage: true });
    assertClean(trouble);
    await context.close();
  });

  test("a range or zone the service refuses: its detail in the notice, the field flagged", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser);
    const seen = recordStats(page);
    // 60 days per hour: 1,440 steps, refused even without grouping.
    const to = new Date();
    const from = new Date(to.getTime() - 60 * DAY);
    await page.goto(`${service.base}/console#/overview?range=custom&bucket=hour&tz=UTC&from=${from.toISOString()}&to=${to.toISOString()}`);
    await settle(page);
    const tooMany = await apiStats(lastRead(seen, false).params);
    assert.equal(tooMany.status, 400);
    const notice = page.locator("#notice");
    assert.ok((await notice.innerText()).includes(`Could not read the statistics: ${tooMany.json.detail}`), await notice.innerText());
    assert.equal(await page.locator(".overview-status").innerText(), "Could not read the statistics.");
    assert.ok(await page.locator(".overview-results").isHidden(), "no figures of another range are left on screen");

    await page.getByLabel("Range", { exact: true }).selectOption("24h");
    await page.getByLabel("Time zone", { exact: true }).fill("Mars/Olympus");
    await settle(page, () => page.getByRole("button", { name: "Show" }).click());
    const unknown = await apiStats(lastRead(seen, false).params);
    assert.equal(unknown.status, 400);
    assert.ok(unknown.json.errors.some((e) => e.field === "tz"), JSON.stringify(unknown.json));
    assert.ok((await notice.innerText()).includes(unknown.json.detail));
    assert.equal(await page.getByLabel("Time zone", { exact: true }).getAttribute("aria-invalid"), "true");
    await page.screenshot({ path: join(SCREENSHOTS, "overview-refused.png") });

    // A custom range the page itself can tell is wrong is not sent.
    const before = seen.length;
    await page.getByLabel("Time zone", { exact: true }).fill("UTC");
    await page.getByLabel("Range", { exact: true }).selectOption("custom");
    await page.getByLabel("From (in that time zone)").fill("2026-03-02T10:00");
    await page.getByLabel("To, not included").fill("2026-03-01T10:00");
    await page.getByRole("button", { name: "Show" }).click();
    await page.getByText("From must be before To.").waitFor();
    assert.equal(seen.length, before, "no request");
    // Fixed, it is: From and To are read in the zone chosen.
    await page.getByLabel("Time zone", { exact: true }).fill("Europe/Paris");
    await page.getByLabel("To, not included").fill("2026-03-03T10:00");
    await settle(page, () => page.getByRole("button", { name: "Show" }).click());
    assert.equal(lastRead(seen, false).params.get("from"), "2026-03-02T09:00:00Z");
    assert.equal(lastRead(seen, false).params.get("to"), "2026-03-03T09:00:00Z");
    assert.equal(await notice.isHidden(), true, "the notice went with the refused range");
    assertClean(trouble);
    await context.close();
  });

  test("the calls list is at #/calls, and an old #/?status=… link still opens it", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${service.base}/console#/calls`);
    await page.locator("tr[data-session-id='ov-a']").waitFor();
    assert.equal(await page.getByRole("heading", { level: 1 }).innerText(), "Calls");
    assert.equal(await page.getByRole("link", { name: "Calls", exact: true }).getAttribute("aria-current"), "page");
    assert.equal(await page.getByRole("link", { name: "Overview", exact: true }).getAttribute("aria-current"), null);
    assert.deepEqual(await page.locator(".top-nav a").allInnerTexts(), ["Overview", "Calls", "Search", "Webhooks"]);

    await page.goto(`${service.base}/console#/?status=active`);
    await page.locator("tr[data-session-id='ov-open-1']").waitFor();
    assert.equal(new URL(page.url()).hash, "#/calls?status=active", "the old address is rewritten");
    assert.ok(await page.getByLabel("active").isChecked());
    assert.equal(await page.locator("tr[data-session-id='ov-a']").count(), 0, "the filter applies");
    await page.getByLabel("completed").check();
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.locator("tr[data-session-id='ov-a']").waitFor();
    assert.equal(new URL(page.url()).hash, "#/calls?status=active%2Ccompleted");

    // A call's way back goes to the list as it was left; the brand goes to the overview.
    await page.getByRole("link", { name: "ov-a", exact: true }).click();
    await page.getByRole("link", { name: "← All calls" }).click();
    await page.locator("tr[data-session-id='ov-a']").waitFor();
    assert.equal(new URL(page.url()).hash, "#/calls?status=active%2Ccompleted");
    await settle(page, () => page.getByRole("link", { name: /session-service/ }).click());
    assert.equal(await page.getByRole("heading", { level: 1 }).innerText(), "Overview");
    assertClean(trouble);
    await context.close();
  });

  test("at 375 px nothing sticks out sideways; the tables scroll in their own box", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser, { width: 375, height: 760 });
    await page.goto(`${service.base}/console`);
    await settle(page);
    assert.ok((await overflow(page)) <= 0, `the overview fits 375 px (${await overflow(page)} px)`);
    await page.screenshot({ path: join(SCREENSHOTS, "overview-375.png"), fullPage: true });
    for (const summary of await page.getByText("Show the numbers").all()) await summary.click();
    assert.ok((await overflow(page)) <= 0, `with its tables open too (${await overflow(page)} px)`);
    const boxes = await page.locator(".table-scroll").evaluateAll((nodes) => nodes.map((n) => ({ scroll: n.scrollWidth, client: n.clientWidth, overflowX: getComputedStyle(n).overflowX })));
    assert.ok(boxes.every((b) => b.overflowX === "auto"), JSON.stringify(boxes));
    assert.ok(boxes.some((b) => b.scroll > b.client), "a wide table scrolls inside its box");
    const scale = await page.locator("svg.chart-svg").evaluateAll((svgs) => svgs.map((s) => s.getBoundingClientRect().width / s.viewBox.baseVal.width));
    assert.ok(scale.every((s) => Math.abs(s - 1) < 0.02), `the charts' 12 px text stays 12 px: ${scale}`);
    // The long reason is cut with "…" in the chart; its full text is in the table.
    assert.equal(await page.locator("table.numbers-reasons th", { hasText: LONG_REASON }).count(), 1);
    await page.screenshot({ path: join(SCREENSHOTS, "overview-numbers-375.png"), fullPage: true });
    await page.getByLabel("Range", { exact: true }).selectOption("custom");
    assert.ok((await overflow(page)) <= 0, "the custom range's fields fit");
    assertClean(trouble);
    await context.close();
  });
});

describe("the overview with API keys", { timeout: TEST_TIMEOUT * 3 }, () => {
  let service;
  let api;

  before(async () => {
    service = await startService({ API_KEYS: `admin:${ADMIN_KEY},read:${READ_KEY}` });
    api = apiClient(service.base, ADMIN_KEY);
    await api.createSession("keyed-ov-1");
  });

  after(async () => {
    await service?.stop();
  });

  test("without a key it asks for one; a read key sees the overview, the key never in a URL", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${service.base}/console`);
    const dialog = page.getByRole("dialog", { name: "API key" });
    await dialog.waitFor();
    await page.getByText("Enter an API key to see the overview.").waitFor();
    await dialog.getByLabel("Key").fill(READ_KEY);
    await settle(page, () => dialog.getByRole("button", { name: "Use this key" }).click());
    assert.equal(await page.locator("[data-figure='activeNow'] data").getAttribute("value"), "1");
    const stats = trouble.requests.filter((r) => new URL(r.url).pathname === "/stats");
    assert.ok(stats.length >= 4, "read without, then with the key");
    assert.deepEqual([...new Set(stats.map((r) => r.headers.authorization))].sort(), [undefined, `Bearer ${READ_KEY}`].sort());
    assert.ok(trouble.requests.every((r) => !r.url.includes(READ_KEY)), "no key in a URL");
    assertClean(trouble);
    await context.close();
  });
});
