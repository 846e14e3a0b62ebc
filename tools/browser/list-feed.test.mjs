// The calls list follows the change feed (GET /changes as Server-Sent Events): new, ended and
// erased calls show within FEED_MS (polling every 5 s could not), the filters are applied to
// what the feed brings and stay in the form, a dropped stream resumes from the last cursor seen,
// an expired cursor reads the list again, and the stream ends when the user leaves the list.
// Same set-up as console.test.mjs: the real binary behind a TCP proxy, Debian's chromium.
//
// Run by tools/browser/run.sh, which sets SESSION_SERVICE_BIN.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { launch, openPage } from "./lib/browser.mjs";
import { startProxy } from "./lib/proxy.mjs";
import { apiClient, startService } from "./lib/service.mjs";

const SCREENSHOTS = join(dirname(fileURLToPath(import.meta.url)), "screenshots");
const TEST_TIMEOUT = 60_000;
/** How soon a change of the feed must be on screen (the old polling took up to 5 s). */
const FEED_MS = 1_500;
/** A call becoming active (its first event, not in the list's feed) is read again within ~1 s. */
const ACTIVATION_MS = 3_000;
const FEED_TYPES = "session.created,session.ended,session.updated,session.deleted";
const SCRIPT_TEXT = "<img src=x onerror=alert(1)>";
const READ_KEY = "feed-read-key-0123456789abcdef";
const ADMIN_KEY = "feed-admin-key-0123456789abcdef";

let browser;

before(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

function assertClean(trouble) {
  assert.deepEqual(trouble.dialogs, [], "no script dialog opened");
  assert.deepEqual(trouble.errors, [], "no page or console error");
}

const isFeedStream = (r) => new URL(r.url()).pathname === "/changes" && r.headers().accept === "text/event-stream";
const isListRead = (r) => new URL(r.url()).pathname === "/sessions" && r.method() === "GET";
const isHeadRead = (r) => new URL(r.url()).pathname === "/changes" && new URL(r.url()).searchParams.get("after") === "now";

/** Opens the list at `hash` and waits until it follows the feed; records its requests. */
async function openList(proxy, hash = "#/calls", viewport = {}) {
  const opened = await openPage(browser, viewport);
  const streams = [];
  const listReads = [];
  const headReads = [];
  opened.page.on("request", (r) => {
    if (isFeedStream(r)) streams.push({ url: r.url(), headers: r.headers() });
    if (isListRead(r)) listReads.push(r.url());
    if (isHeadRead(r)) headReads.push(r.url());
  });
  await opened.page.goto(`${proxy.base}/console${hash}`);
  await liveState(opened.page).waitFor();
  return { ...opened, streams, listReads, headReads };
}

const liveState = (page) => page.locator(".feed-state[data-state='live']");
const rowOf = (page, sessionId) => page.locator(`tbody tr[data-session-id='${sessionId}']`);
const shownIds = (page) => page.locator("tbody tr[data-session-id]").evaluateAll((rows) => rows.map((r) => r.dataset.sessionId));

/** The cursor of the newest change of FEED_TYPES (read from the oldest; the tests' feeds are short). */
async function lastFeedCursor(api) {
  const { json } = await api.send("GET", `/changes?types=${FEED_TYPES}&limit=1000`);
  assert.equal(json.hasMore, false);
  return json.changes.at(-1).cursor;
}

describe("the calls list follows the change feed", { timeout: TEST_TIMEOUT * 10 }, () => {
  let service;
  let proxy;
  let api;

  before(async () => {
    service = await startService();
    proxy = await startProxy(new URL(service.base).host);
    api = apiClient(service.base);
  });

  after(async () => {
    await proxy?.stop();
    await service?.stop();
  });

  test("a new call appears, then its end, then its erasure, each within 1.5 s, without reading the list again", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("feed-old");
    const { page, context, trouble, listReads, streams } = await openList(proxy);
    assert.equal(await page.getByRole("status").filter({ hasText: "Live" }).count(), 1, "the feed's state is a status");
    assert.equal(streams.length, 1);
    assert.equal(new URL(streams[0].url).searchParams.get("types"), FEED_TYPES, "no event.appended");
    await rowOf(page, "feed-old").waitFor();

    await api.createSession("feed-new", { metadata: { userId: "u-9" } });
    await rowOf(page, "feed-new").waitFor({ timeout: FEED_MS });
    assert.deepEqual((await shownIds(page)).slice(0, 2), ["feed-new", "feed-old"], "inserted newest first");
    assert.match(await rowOf(page, "feed-new").innerText(), /initiated[\s\S]*en-US/);

    await api.addEvent("feed-new", "e-1", "user_speech", { text: "hello" });
    await rowOf(page, "feed-new").locator(".badge", { hasText: "active" }).waitFor({ timeout: ACTIVATION_MS });

    await api.complete("feed-new", { status: "failed", reason: "caller_hangup" });
    await rowOf(page, "feed-new").locator(".badge", { hasText: "failed" }).waitFor({ timeout: FEED_MS });
    assert.equal((await rowOf(page, "feed-new").locator("td[data-label='End reason']").innerText()).trim(), "caller_hangup");
    assert.equal((await rowOf(page, "feed-new").locator("td[data-label='Events']").innerText()).trim(), "1");

    assert.equal((await api.send("DELETE", "/sessions/feed-new")).status, 204);
    await rowOf(page, "feed-new").waitFor({ state: "detached", timeout: FEED_MS });
    assert.equal(await rowOf(page, "feed-old").count(), 1);
    assert.deepEqual(listReads.length, 1, "the list was read once, then followed");
    assert.equal(streams.length, 1, "one stream throughout");
    await page.screenshot({ path: join(SCREENSHOTS, "list-live.png"), fullPage: true });
    assertClean(trouble);
    await context.close();
  });

  test("with a status filter, a new initiated call stays out and the filter stays; it comes in once active", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("filter-active");
    await api.addEvent("filter-active", "e-1", "user_speech", { text: "hi" });
    await api.createSession("filter-sentinel");
    await api.addEvent("filter-sentinel", "e-1", "user_speech", { text: "hi" });
    const { page, context, trouble } = await openList(proxy, "#/?status=active");
    await rowOf(page, "filter-sentinel").waitFor();
    await rowOf(page, "filter-active").waitFor();

    await api.createSession("filter-initiated");
    // The feed is in order: once the sentinel's end has removed its row, the creation before it
    // was seen too, and left out.
    await api.complete("filter-sentinel", { reason: "done" });
    await rowOf(page, "filter-sentinel").waitFor({ state: "detached", timeout: FEED_MS });
    assert.equal(await rowOf(page, "filter-initiated").count(), 0, "an initiated call is not active");
    assert.ok(await page.getByLabel("active").isChecked(), "the filter stays in the form");
    assert.equal(await page.getByLabel("initiated").isChecked(), false);
    assert.match(page.url(), /status=active/);

    await api.addEvent("filter-initiated", "e-1", "user_speech", { text: "now I talk" });
    await rowOf(page, "filter-initiated").waitFor({ timeout: ACTIVATION_MS });
    assert.deepEqual((await shownIds(page)).slice(0, 2), ["filter-initiated", "filter-active"]);

    await api.complete("filter-active", { reason: "done" });
    await rowOf(page, "filter-active").waitFor({ state: "detached", timeout: FEED_MS });
    assert.ok(await page.getByLabel("active").isChecked());
    assertClean(trouble);
    await context.close();
  });

  test("a metadata filter applies to what the feed brings, and markup in metadata stays text", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openList(proxy, `#/?key=note&value=${encodeURIComponent(SCRIPT_TEXT)}`);
    assert.equal(await page.getByLabel("Metadata value").inputValue(), SCRIPT_TEXT, "the value is shown as typed");
    await api.createSession("md-other", { metadata: { note: "<b>other</b>" } });
    await api.createSession("md-markup", { metadata: { note: SCRIPT_TEXT, "<b>": "<script>alert(2)</script>" } });
    await rowOf(page, "md-markup").waitFor({ timeout: FEED_MS });
    assert.equal(await rowOf(page, "md-other").count(), 0, "another note does not match");
    // A metadata change that no longer matches takes the call out; one that matches brings it in.
    await api.patchMetadata("md-markup", { note: "plain" });
    await rowOf(page, "md-markup").waitFor({ state: "detached", timeout: FEED_MS });
    await api.patchMetadata("md-other", { note: SCRIPT_TEXT });
    await rowOf(page, "md-other").waitFor({ timeout: FEED_MS });
    assert.equal(await page.locator("img").count(), 0, "no <img> element was created");
    assert.equal(await page.locator("main script, main b").count(), 0, "no markup from data");
    assert.equal(await page.getByLabel("Metadata value").inputValue(), SCRIPT_TEXT);
    assertClean(trouble);
    await context.close();
  });

  test("a dropped feed resumes with Last-Event-ID, the last cursor seen, and misses nothing", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble, streams, listReads } = await openList(proxy);
    await api.createSession("drop-a");
    await rowOf(page, "drop-a").waitFor({ timeout: FEED_MS });
    const seen = await lastFeedCursor(api);

    assert.ok(proxy.cutAll() > 0, "the browser had connections open");
    await page.locator(".feed-state[data-state='reconnecting']").waitFor();
    assert.equal(await page.getByRole("status").filter({ hasText: "Reconnecting…" }).count(), 1);
    // Written while the list is disconnected.
    await api.createSession("drop-b");
    await api.complete("drop-a", { reason: "done" });
    await liveState(page).waitFor({ timeout: 15_000 });
    await rowOf(page, "drop-b").waitFor({ timeout: FEED_MS });
    await rowOf(page, "drop-a").locator(".badge", { hasText: "completed" }).waitFor({ timeout: FEED_MS });
    assert.equal(streams.length, 2);
    assert.ok(streams[0].headers["last-event-id"], "the first stream starts at the head read before the list");
    assert.equal(streams[1].headers["last-event-id"], seen, "resumed after the last change seen");
    assert.equal(listReads.length, 1, "resuming needs no new read of the list");
    assert.deepEqual((await shownIds(page)).filter((id) => id.startsWith("drop-")), ["drop-b", "drop-a"], "each call once");
    assertClean(trouble);
    await context.close();
  });

  test("an expired cursor (410) reads the list again and follows from the new head", { timeout: TEST_TIMEOUT }, async () => {
    const opened = await openPage(browser);
    const { page, context, trouble } = opened;
    const streams = [];
    const listReads = [];
    page.on("request", (r) => {
      if (isFeedStream(r)) streams.push(r.headers()["last-event-id"]);
      if (isListRead(r)) listReads.push(r.url());
    });
    let refused = 0;
    await page.route((url) => url.pathname === "/changes" && url.searchParams.has("types"), async (route) => {
      if (refused > 0) return route.continue();
      refused += 1;
      // Written after the first read of the list, and never sent by this feed: only a new read shows it.
      await api.createSession("expired-1");
      await route.fulfill({
        status: 410,
        contentType: "application/problem+json",
        body: JSON.stringify({ type: "urn:session-service:problem:cursor_expired", title: "Gone", status: 410, code: "cursor_expired", detail: "the cursor is older than the changes kept" }),
      });
    });
    await page.goto(`${proxy.base}/console#/calls`);
    await liveState(page).waitFor();
    await rowOf(page, "expired-1").waitFor();
    assert.equal(refused, 1);
    assert.equal(listReads.length, 2, "the list was read again");
    assert.equal(streams.length, 2);
    assert.notEqual(streams[1], streams[0], "the new stream starts from a new head");
    await api.createSession("expired-2");
    await rowOf(page, "expired-2").waitFor({ timeout: FEED_MS });
    assertClean(trouble);
    await context.close();
  });

  test("leaving the list ends its stream; paging and Refresh keep following", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("leave-1");
    const { page, context, trouble, streams } = await openList(proxy);
    await rowOf(page, "leave-1").waitFor();
    const ended = page.waitForEvent("requestfailed", { predicate: isFeedStream, timeout: 5_000 });
    await page.getByRole("link", { name: "leave-1", exact: true }).click();
    await page.locator(".live[data-state='live']").waitFor();
    await ended;
    assert.equal(streams.length, 1);
    await page.goBack();
    await liveState(page).waitFor();
    assert.equal(streams.length, 2, "back on the list, it follows again");
    await page.getByRole("button", { name: "Refresh" }).click();
    await api.createSession("after-refresh");
    await rowOf(page, "after-refresh").waitFor({ timeout: FEED_MS });
    assert.equal(streams.length, 2, "a refresh reads the list, the stream goes on");
    assertClean(trouble);
    await context.close();
  });
});

describe("the calls list's feed with API keys", { timeout: TEST_TIMEOUT * 3 }, () => {
  let service;
  let proxy;
  let api;

  before(async () => {
    service = await startService({ API_KEYS: `admin:${ADMIN_KEY},read:${READ_KEY}` });
    proxy = await startProxy(new URL(service.base).host);
    api = apiClient(service.base, ADMIN_KEY);
  });

  after(async () => {
    await proxy?.stop();
    await service?.stop();
  });

  test("a read key follows the feed with its Authorization header, never in the URL", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser, { width: 375, height: 760 });
    await page.goto(`${proxy.base}/console#/calls`);
    const dialog = page.getByRole("dialog", { name: "API key" });
    await dialog.getByLabel("Key").fill(READ_KEY);
    await dialog.getByRole("button", { name: "Use this key" }).click();
    await liveState(page).waitFor();
    await api.createSession("keyed-feed");
    await rowOf(page, "keyed-feed").waitFor({ timeout: FEED_MS });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the list with its feed state fits 375 px (${overflow} px)`);
    await page.screenshot({ path: join(SCREENSHOTS, "list-live-375.png") });
    const stream = trouble.requests.filter((r) => new URL(r.url).pathname === "/changes" && r.headers.accept === "text/event-stream");
    assert.equal(stream.length, 1, "one stream, opened once the key was entered");
    assert.equal(stream[0].headers.authorization, `Bearer ${READ_KEY}`);
    for (const { url, headers } of trouble.requests) {
      assert.ok(!url.includes(READ_KEY), `no key in a URL: ${url}`);
      if (new URL(url).pathname === "/changes") assert.ok([undefined, `Bearer ${READ_KEY}`].includes(headers.authorization), url);
    }
    assertClean(trouble);
    await context.close();
  });

  test("without a key the list asks for one and does not follow", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${proxy.base}/console#/calls`);
    await page.getByRole("dialog", { name: "API key" }).waitFor();
    await page.locator(".feed-state[data-state='stopped']").waitFor();
    await page.getByText("Enter an API key to see the calls.").waitFor();
    assert.equal(trouble.requests.filter((r) => new URL(r.url).pathname === "/changes" && r.headers.accept === "text/event-stream").length, 0);
    assertClean(trouble);
    await context.close();
  });
});
