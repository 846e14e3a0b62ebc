// The web console in a real browser (Debian's chromium through playwright-core), against the
// real service binary: one service without keys, one with API_KEYS. The page is loaded through
// a TCP proxy, so a test can drop the browser's connections (the live stream among them) as a
// network would. Screenshots go to tools/browser/screenshots/ (git-ignored).
//
// Run by tools/browser/run.sh (from ./run-tests.sh), which sets SESSION_SERVICE_BIN.

import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { launch, openPage } from "./lib/browser.mjs";
import { startProxy } from "./lib/proxy.mjs";
import { apiClient, startService } from "./lib/service.mjs";

const SCREENSHOTS = join(dirname(fileURLToPath(import.meta.url)), "screenshots");
const TEST_TIMEOUT = 60_000;
/** How soon a live event must be on screen. */
const LIVE_MS = 2_000;
const SCRIPT_TEXT = "<img src=x onerror=alert(1)>";
const ADMIN_KEY = "console-admin-key-0123456789abcdef";
const READ_KEY = "console-read-key-0123456789abcdef";

let browser;

before(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/** The seqs of the turns on screen, in screen order. */
async function shownSeqs(page) {
  return page.locator(".transcript > li").evaluateAll((items) => items.map((li) => Number(li.dataset.seq)));
}

/** Asserts that nothing ran that must not: no script dialog, no page error, no CSP refusal. */
function assertClean(trouble) {
  assert.deepEqual(trouble.dialogs, [], "no script dialog opened");
  assert.deepEqual(trouble.errors, [], "no page or console error");
}

/** Waits until the page's turns are exactly seq 1..n, once each, in order. */
async function waitForTurns(page, n, timeout = 10_000) {
  await page.waitForFunction(
    (n) => document.querySelectorAll(".transcript > li").length >= n,
    n,
    { timeout },
  );
  assert.deepEqual(await shownSeqs(page), Array.from({ length: n }, (_, i) => i + 1));
}

/**
 * Clicks "Clear" and waits for the list drawn anew (on the hashchange): filling a field before
 * that would fill the form being replaced.
 */
async function clearFilters(page) {
  const form = await page.locator("main form").elementHandle();
  await page.getByRole("button", { name: "Clear" }).click();
  await page.waitForFunction((old) => !old.isConnected, form);
}

describe("without API keys", { timeout: TEST_TIMEOUT * 12 }, () => {
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

  test("the list shows a call created through the API, newest first", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("list-older", { metadata: { userId: "u-1" } });
    await api.createSession("list-newer", { metadata: { userId: "u-2" } });
    await api.addEvent("list-newer", "e-1", "user_speech", { text: "hello" });
    await api.createSession("list-ended");
    await api.complete("list-ended", { status: "failed", reason: "caller_hangup" });
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${proxy.base}/`);
    assert.equal(new URL(page.url()).pathname, "/console", "/ redirects to the console");
    // The console opens on its overview; the header's Calls link leads to the list.
    await page.getByRole("heading", { name: "Overview", level: 1 }).waitFor();
    await page.getByRole("link", { name: "Calls", exact: true }).click();
    assert.equal(new URL(page.url()).hash, "#/calls");
    const newer = page.locator("tr[data-session-id='list-newer']");
    await newer.waitFor();
    assert.match(await newer.innerText(), /active/);
    assert.match(await newer.innerText(), /en-US/);
    assert.equal((await newer.locator("td[data-label='Events']").innerText()).trim(), "1");
    const ended = page.locator("tr[data-session-id='list-ended']");
    assert.match(await ended.innerText(), /failed/);
    assert.equal((await ended.locator("td[data-label='End reason']").innerText()).trim(), "caller_hangup");
    const ids = await page.locator("tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.sessionId));
    assert.deepEqual(ids.slice(0, 3), ["list-ended", "list-newer", "list-older"], "newest first");
    await page.screenshot({ path: join(SCREENSHOTS, "list-desktop.png"), fullPage: true });
    assertClean(trouble);
    await context.close();
  });

  test("the filters narrow the list and the refresh keeps them and the page", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${proxy.base}/console#/calls`);
    await page.locator("tr[data-session-id='list-older']").waitFor();
    await page.getByLabel("Metadata key").fill("userId");
    await page.getByLabel("Metadata value").fill("u-1");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForFunction(() => !document.querySelector("tr[data-session-id='list-newer']"));
    await page.locator("tr[data-session-id='list-older']").waitFor();
    // A matching call created now appears by itself; the filters stay as they were.
    await api.createSession("list-later", { metadata: { userId: "u-1" } });
    await page.locator("tr[data-session-id='list-later']").waitFor({ timeout: 15_000 });
    assert.equal(await page.getByLabel("Metadata value").inputValue(), "u-1");
    assert.equal(await page.locator("tr[data-session-id='list-newer']").count(), 0);

    await clearFilters(page);
    await page.getByLabel("active").check();
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForFunction(() => !document.querySelector("tr[data-session-id='list-older']"));
    await page.locator("tr[data-session-id='list-newer']").waitFor();
    assert.match(page.url(), /status=active/, "the filters are in the address, for back and reload");

    // A time range: nothing has started yet in 2099.
    await clearFilters(page);
    await page.getByLabel("Started from (local time)").fill("2099-01-01T00:00");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.getByText("No calls match.").waitFor();
    assert.match(decodeURIComponent(page.url()), /from=2099-01-01T/);

    // A bad filter is refused with a clear message, and the page stays usable.
    await clearFilters(page);
    await page.getByLabel("Metadata key").fill("no spaces allowed");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.getByText("A metadata key is 1 to 64 characters").waitFor();
    assertClean(trouble);
    await context.close();
  });

  test("paging by cursor walks back through many calls and returns", { timeout: TEST_TIMEOUT }, async () => {
    for (let i = 0; i < 22; i++) await api.createSession(`page-${String(i).padStart(2, "0")}`, { metadata: { batch: "paging" } });
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${proxy.base}/console#/?key=batch&value=paging`);
    await page.locator("tr[data-session-id='page-21']").waitFor();
    assert.equal(await page.locator("tbody tr").count(), 20);
    await page.getByRole("button", { name: "Older →" }).click();
    await page.locator("tr[data-session-id='page-00']").waitFor();
    assert.equal(await page.locator("tbody tr").count(), 2);
    assert.equal(await page.locator(".page-label").innerText(), "Page 2");
    assert.ok(await page.getByRole("button", { name: "Older →" }).isDisabled());
    await page.getByRole("button", { name: "← Newer" }).click();
    await page.locator("tr[data-session-id='page-21']").waitFor();
    assertClean(trouble);
    await context.close();
  });

  test("a call opens from the list by keyboard and shows its transcript as a conversation", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("talk-1", { metadata: { from: "+15550100", campaign: { id: 7 } } });
    await api.addEvent("talk-1", "u-1", "user_speech", { text: "I need to change my booking" });
    await api.addEvent("talk-1", "b-1", "bot_speech", { text: "Sure, which one?", confidence: 0.93 });
    await api.addEvent("talk-1", "s-1", "system", { text: "transferred to queue 4" });
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${proxy.base}/console#/calls`);
    const link = page.getByRole("link", { name: "talk-1", exact: true });
    await link.waitFor();
    for (let i = 0; i < 60 && !(await link.evaluate((a) => a === document.activeElement)); i++) {
      await page.keyboard.press("Tab");
    }
    assert.ok(await link.evaluate((a) => a === document.activeElement), "the call's link is reachable with Tab");
    await page.keyboard.press("Enter");
    await waitForTurns(page, 3);
    const user = page.locator(".turn-user");
    const bot = page.locator(".turn-bot");
    assert.equal(await user.locator(".text").innerText(), "I need to change my booking");
    assert.equal(await bot.locator(".text").innerText(), "Sure, which one?");
    assert.match(await page.locator(".turn-system").innerText(), /System.*transferred to queue 4/s);
    const userBox = await user.locator(".bubble").boundingBox();
    const botBox = await bot.locator(".bubble").boundingBox();
    assert.ok(userBox.x < botBox.x, "the caller speaks on the left, the bot on the right");
    const details = await page.locator(".details").innerText();
    for (const text of ["en-US", "+15550100", '{"id":7}', "Inactivity timeout", "3600 s", "Expires"]) {
      assert.ok(details.includes(text), `the details show ${text}: ${details}`);
    }
    assertClean(trouble);
    await context.close();
  });

  test("a live call shows new events within 2 s, then that it ended", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("live-1", { metadata: { from: "+15550123" } });
    await api.addEvent("live-1", "u-1", "user_speech", { text: "Hello, I would like to book a table for four." });
    for (const width of [1280, 375]) {
      const { page, context, trouble } = await openPage(browser, width === 375 ? { width: 375, height: 760 } : {});
      await page.goto(`${proxy.base}/console#/calls/live-1`);
      await page.locator(".live[data-state='live']").waitFor();
      const n = await page.locator(".transcript > li").count();
      const text = `For tonight at eight? (${width})`;
      await api.addEvent("live-1", `b-${width}`, "bot_speech", { text });
      await page.locator(".turn-bot .text", { hasText: text }).waitFor({ timeout: LIVE_MS });
      assert.equal(await page.locator(".transcript > li").count(), n + 1);
      assert.equal((await page.locator(".fields dd").nth(5).textContent()).trim(), String(n + 1), "the event count follows");
      await api.addEvent("live-1", `u-${width}`, "user_speech", { text: "Yes, please." });
      await page.locator(".turn-user .text", { hasText: "Yes, please." }).last().waitFor({ timeout: LIVE_MS });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `nothing sticks out sideways at ${width} px (${overflow} px)`);
      await page.screenshot({ path: join(SCREENSHOTS, `call-live-${width === 375 ? "375" : "desktop"}.png`), fullPage: true });
      if (width === 375) {
        await api.complete("live-1", { reason: "caller_hangup" });
        await page.locator(".live[data-state='ended']").waitFor({ timeout: LIVE_MS });
        assert.equal(await page.locator(".details[open]").count(), 0, "the details are folded at 375 px");
        await page.getByText("Call details").click();
        assert.match(await page.locator(".details").innerText(), /completed[\s\S]*caller_hangup/);
        await page.screenshot({ path: join(SCREENSHOTS, "call-ended-375.png"), fullPage: true });
      } else {
        await page.goto(`${proxy.base}/console#/calls`);
        await page.locator("tr[data-session-id='live-1']").waitFor();
        const overflowList = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        assert.ok(overflowList <= 0);
      }
      assertClean(trouble);
      await context.close();
    }
    const { page, context } = await openPage(browser, { width: 375, height: 760 });
    await page.goto(`${proxy.base}/console#/calls`);
    await page.locator("tr[data-session-id='live-1']").waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the list fits 375 px (${overflow} px)`);
    await page.screenshot({ path: join(SCREENSHOTS, "list-375.png") });
    await context.close();
  });

  test("a script in a payload or metadata shows as text and runs nothing", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("xss-1", { metadata: { note: SCRIPT_TEXT, [SCRIPT_TEXT.slice(0, 3)]: "<b>x</b>" } });
    await api.addEvent("xss-1", "u-1", "user_speech", { text: SCRIPT_TEXT });
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${proxy.base}/console#/calls`);
    await page.locator("tr[data-session-id='xss-1']").waitFor();
    await page.goto(`${proxy.base}/console#/calls/xss-1`);
    await page.locator(".turn-user .text").first().waitFor();
    await page.locator(".live[data-state='live']").waitFor();
    await api.addEvent("xss-1", "b-1", "bot_speech", { text: SCRIPT_TEXT, html: "<script>alert(2)</script>" });
    await page.locator(".turn-bot .text").waitFor({ timeout: LIVE_MS });
    assert.equal(await page.locator(".turn-user .text").innerText(), SCRIPT_TEXT);
    assert.equal(await page.locator(".turn-bot .text").innerText(), SCRIPT_TEXT);
    assert.ok((await page.locator(".details").innerText()).includes(SCRIPT_TEXT));
    assert.equal(await page.locator("img").count(), 0, "no <img> element was created");
    assert.equal(await page.locator("main script, main b").count(), 0, "no markup from data");
    assertClean(trouble);
    await context.close();
  });

  test("a dropped stream resumes after the last seq seen, without a duplicate or a gap", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("drop-1");
    for (let i = 1; i <= 3; i++) await api.addEvent("drop-1", `e-${i}`, "user_speech", { text: `before ${i}` });
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${proxy.base}/console#/calls/drop-1`);
    await page.locator(".live[data-state='live']").waitFor();
    await waitForTurns(page, 3);
    await api.addEvent("drop-1", "e-4", "bot_speech", { text: "live 4" });
    await waitForTurns(page, 4);

    const resumes = [];
    page.on("request", (r) => {
      if (r.url().endsWith("/sessions/drop-1/events") && r.headers().accept === "text/event-stream") resumes.push(r.headers()["last-event-id"]);
    });
    assert.ok(proxy.cutAll() > 0, "the browser had connections open");
    await page.locator(".live[data-state='reconnecting']").waitFor();
    // Written while the console is disconnected.
    await api.addEvent("drop-1", "e-5", "user_speech", { text: "while away 5" });
    await api.addEvent("drop-1", "e-6", "bot_speech", { text: "while away 6" });
    await page.locator(".live[data-state='live']").waitFor({ timeout: 15_000 });
    await waitForTurns(page, 6);
    assert.equal(resumes[0], "4", "the stream resumed after the last seq shown");
    await api.addEvent("drop-1", "e-7", "user_speech", { text: "after 7" });
    await waitForTurns(page, 7);
    const session = (await api.session("drop-1")).json;
    assert.equal(await page.locator(".transcript > li").count(), session.eventCount, "one turn per event");
    assertClean(trouble);
    await context.close();
  });

  test("a long transcript shows its newest events and loads earlier ones on demand", { timeout: TEST_TIMEOUT * 2 }, async () => {
    await api.createSession("long-1");
    for (let i = 1; i <= 120; i++) {
      await api.addEvent("long-1", `e-${i}`, i % 2 ? "user_speech" : "bot_speech", { text: `turn ${i}` });
    }
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${proxy.base}/console#/calls/long-1`);
    await page.locator(".live[data-state='live']").waitFor();
    await page.waitForFunction(() => document.querySelectorAll(".transcript > li").length === 50);
    assert.deepEqual(await shownSeqs(page), Array.from({ length: 50 }, (_, i) => 71 + i));
    const earlier = page.getByRole("button", { name: "Load earlier events" });
    await earlier.click();
    await page.waitForFunction(() => document.querySelectorAll(".transcript > li").length === 100);
    await earlier.click();
    await waitForTurns(page, 120);
    assert.ok(await earlier.isHidden(), "nothing earlier is left");
    await api.addEvent("long-1", "e-121", "user_speech", { text: "turn 121" });
    await waitForTurns(page, 121);
    assertClean(trouble);
    await context.close();
  });

  test("export saves every event as NDJSON, and delete erases the call after confirmation", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("erase-1");
    for (let i = 1; i <= 3; i++) await api.addEvent("erase-1", `e-${i}`, "user_speech", { text: `line ${i}` });
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${proxy.base}/console#/calls/erase-1`);
    await waitForTurns(page, 3);
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export NDJSON" }).click()]);
    assert.equal(download.suggestedFilename(), "erase-1.ndjson");
    const lines = readFileSync(await download.path(), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((e) => e.eventId), ["e-1", "e-2", "e-3"]);

    await page.getByRole("button", { name: "Delete call" }).click();
    const dialog = page.getByRole("dialog", { name: "Erase this call?" });
    await dialog.waitFor();
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "hidden" });
    assert.equal((await api.session("erase-1")).status, 200, "cancel erases nothing");
    await page.getByRole("button", { name: "Delete call" }).click();
    await dialog.getByRole("button", { name: "Erase the call" }).click();
    await page.getByText("The call erase-1 was erased.").waitFor();
    assert.equal(new URL(page.url()).hash.startsWith("#/"), true);
    assert.equal((await api.session("erase-1")).status, 410);
    await page.goto(`${proxy.base}/console#/calls/erase-1`);
    await page.getByText("This call was erased.").waitFor();
    assertClean(trouble);
    await context.close();
  });
});

describe("with API keys", { timeout: TEST_TIMEOUT * 4 }, () => {
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

  test("the console asks for a key, refuses a wrong one clearly, and works with the right one", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("keyed-1", { metadata: { from: "+15550199" } });
    await api.addEvent("keyed-1", "u-1", "user_speech", { text: "Is anyone there?" });
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${proxy.base}/console#/calls`);
    const dialog = page.getByRole("dialog", { name: "API key" });
    await dialog.waitFor();
    assert.match(await dialog.innerText(), /needs an API key/);

    await dialog.getByLabel("Key").fill("not-a-key-of-this-service-000");
    await dialog.getByRole("button", { name: "Use this key" }).click();
    await dialog.getByText(/refused this key \(401/).waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, "key-refused.png") });

    await dialog.getByLabel("Key").fill(ADMIN_KEY);
    await dialog.getByRole("button", { name: "Use this key" }).click();
    await dialog.waitFor({ state: "hidden" });
    await page.locator("tr[data-session-id='keyed-1']").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("session-service.api-key")), ADMIN_KEY);

    await page.getByRole("link", { name: "keyed-1", exact: true }).click();
    await page.locator(".live[data-state='live']").waitFor();
    await api.addEvent("keyed-1", "b-1", "bot_speech", { text: "Yes, how can I help?" });
    await page.locator(".turn-bot .text", { hasText: "Yes, how can I help?" }).waitFor({ timeout: LIVE_MS });

    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export NDJSON" }).click()]);
    assert.equal(readFileSync(await download.path(), "utf8").trim().split("\n").length, 2);

    for (const { url, headers } of trouble.requests) {
      assert.ok(!url.includes(ADMIN_KEY), `no key in a URL: ${url}`);
      if (new URL(url).pathname.startsWith("/sessions")) {
        const sent = headers.authorization;
        assert.ok([undefined, `Bearer ${ADMIN_KEY}`, "Bearer not-a-key-of-this-service-000"].includes(sent), url);
      }
    }
    assert.ok(!service.output().includes(ADMIN_KEY), "no key in the service's log");
    assertClean(trouble);
    await context.close();
  });

  test("a key that may not erase gets a clear message and erases nothing", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("keyed-2");
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${proxy.base}/console#/calls/keyed-2`);
    const keyDialog = page.getByRole("dialog", { name: "API key" });
    await keyDialog.getByLabel("Key").fill(READ_KEY);
    await keyDialog.getByRole("button", { name: "Use this key" }).click();
    await page.locator(".live[data-state='live']").waitFor();
    await page.getByRole("button", { name: "Delete call" }).click();
    const dialog = page.getByRole("dialog", { name: "Erase this call?" });
    await dialog.getByRole("button", { name: "Erase the call" }).click();
    await dialog.getByText(/may not erase calls/).waitFor();
    assert.equal((await api.session("keyed-2")).status, 200);
    assertClean(trouble);
    await context.close();
  });
});

describe("the metadata editor", { timeout: TEST_TIMEOUT * 8 }, () => {
  const WRITE_KEY = "console-write-key-0123456789abcdef";
  let service;
  let proxy;
  let api;

  before(async () => {
    service = await startService({ API_KEYS: `write:${WRITE_KEY},read:${READ_KEY}` });
    proxy = await startProxy(new URL(service.base).host);
    api = apiClient(service.base, WRITE_KEY);
  });

  after(async () => {
    await proxy?.stop();
    await service?.stop();
  });

  /** The call's page with `key` entered, once its metadata is shown; PATCH requests recorded. */
  async function openCall(sessionId, key, viewport = {}) {
    const opened = await openPage(browser, viewport);
    const patches = [];
    opened.page.on("request", (r) => {
      if (r.method() === "PATCH") patches.push({ url: r.url(), headers: r.headers(), body: r.postDataJSON() });
    });
    await opened.page.goto(`${proxy.base}/console#/calls/${sessionId}`);
    const keyDialog = opened.page.getByRole("dialog", { name: "API key" });
    await keyDialog.getByLabel("Key").fill(key);
    await keyDialog.getByRole("button", { name: "Use this key" }).click();
    await opened.page.locator(".metadata-view > *").waitFor({ state: "attached" });
    return { ...opened, patches };
  }

  const metadataOf = async (sessionId) => (await api.session(sessionId)).json.metadata;
  /** The metadata list on the page, as [key, text] pairs. */
  const shownMetadata = (page) =>
    page.locator(".metadata-view dl").evaluate((dl) => [...dl.querySelectorAll("dt")].map((dt) => [dt.textContent, dt.nextElementSibling.textContent]));
  const editorText = (page) => page.getByLabel("Metadata (JSON)").inputValue();

  test("a write key adds, changes and removes keys; the page and the API agree", { timeout: TEST_TIMEOUT }, async () => {
    const before = { agent: "a-1", disposition: "open", tmp: "x", campaign: { id: 7, name: "spring" } };
    await api.createSession("md-edit", { metadata: before });
    await api.addEvent("md-edit", "u-1", "user_speech", { text: "Hello" });
    const etag = (await api.session("md-edit")).etag;
    const { page, context, trouble, patches } = await openCall("md-edit", WRITE_KEY);
    assert.deepEqual(await shownMetadata(page), [["agent", "a-1"], ["disposition", "open"], ["tmp", "x"], ["campaign", '{"id":7,"name":"spring"}']]);

    // Opened from the keyboard; the textarea gets the focus and holds the metadata as JSON.
    const edit = page.getByRole("button", { name: "Edit metadata" });
    await edit.focus();
    await page.keyboard.press("Enter");
    const textarea = page.getByLabel("Metadata (JSON)");
    assert.ok(await textarea.evaluate((t) => t === document.activeElement), "the editor has the focus");
    assert.deepEqual(JSON.parse(await textarea.inputValue()), before);
    assert.equal(await textarea.getAttribute("aria-describedby") !== null, true);

    const after = { agent: "a-1", disposition: "sale", campaign: { id: 7 }, summaryId: "sum-9" };
    await textarea.fill(JSON.stringify(after, null, 2));
    // Held in flight: Save is disabled and the text cannot change until the answer.
    let release;
    const held = new Promise((resolve) => (release = resolve));
    await page.route("**/sessions/md-edit", async (route) => {
      if (route.request().method() === "PATCH") await held;
      await route.continue();
    });
    const save = page.getByRole("button", { name: /^Sav/ });
    await save.click();
    await page.waitForFunction(() => document.querySelector(".metadata-editor button[type='submit']").disabled);
    assert.ok(await textarea.evaluate((t) => t.readOnly));
    assert.equal(patches.length, 1);
    release();
    await page.getByText("Metadata saved.").waitFor();
    await page.unroute("**/sessions/md-edit");

    assert.equal(patches[0].headers["content-type"], "application/merge-patch+json");
    assert.equal(patches[0].headers["if-match"], etag, "If-Match: the ETag of the session as read");
    assert.deepEqual(patches[0].body, { metadata: { tmp: null, disposition: "sale", campaign: { name: null }, summaryId: "sum-9" } });
    assert.deepEqual(await metadataOf("md-edit"), after, "the API has exactly the edit");
    assert.deepEqual(await shownMetadata(page), [["agent", "a-1"], ["disposition", "sale"], ["campaign", '{"id":7}'], ["summaryId", "sum-9"]]);
    assert.ok(await page.getByLabel("Metadata (JSON)").isHidden(), "the editor closed");
    assert.ok(await edit.evaluate((b) => b === document.activeElement), "the focus is back on Edit metadata");

    // The answer's ETag is kept: a second edit right away (saved with Ctrl+Enter) is not a conflict.
    await page.keyboard.press("Enter");
    await textarea.fill(JSON.stringify({ ...after, summaryId: undefined, disposition: "callback" }));
    await page.keyboard.press("Control+Enter");
    await page.getByText("Metadata saved.").waitFor();
    assert.equal(patches.length, 2);
    assert.notEqual(patches[1].headers["if-match"], etag);
    assert.deepEqual(patches[1].body, { metadata: { summaryId: null, disposition: "callback" } });
    assert.deepEqual(await metadataOf("md-edit"), { agent: "a-1", disposition: "callback", campaign: { id: 7 } });
    assert.deepEqual(await shownMetadata(page), [["agent", "a-1"], ["disposition", "callback"], ["campaign", '{"id":7}']]);
    assertClean(trouble);
    await context.close();
  });

  test("a change made elsewhere meanwhile is not overwritten: conflict, reload, the edit kept, re-applied", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("md-race", { metadata: { a: "1", b: "2" } });
    const { page, context, trouble, patches } = await openCall("md-race", WRITE_KEY);
    await page.getByRole("button", { name: "Edit metadata" }).click();
    const textarea = page.getByLabel("Metadata (JSON)");
    const mine = '{\n  "a": "mine",\n  "b": "2"\n}';
    await textarea.fill(mine);
    // Behind the page's back.
    const theirs = await api.patchMetadata("md-race", { b: "theirs", c: "added elsewhere" });
    assert.equal(theirs.status, 200);

    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText(/metadata was changed elsewhere while you were editing/).waitFor();
    assert.match(await page.locator(".editor-message").innerText(), /“b”, “c”[\s\S]*nothing was saved/);
    assert.equal(patches.length, 1);
    assert.deepEqual(await metadataOf("md-race"), { a: "1", b: "theirs", c: "added elsewhere" }, "the other change is still there");
    assert.equal(await textarea.inputValue(), mine, "the user's text is still in the editor");
    await page.locator(".metadata-view dd", { hasText: "added elsewhere" }).waitFor();
    assert.deepEqual(await shownMetadata(page), [["a", "1"], ["b", "theirs"], ["c", "added elsewhere"]], "the call was read again");
    await page.screenshot({ path: join(SCREENSHOTS, "metadata-conflict.png"), fullPage: true });

    await page.getByRole("button", { name: "Re-apply my changes" }).click();
    assert.deepEqual(JSON.parse(await textarea.inputValue()), { a: "mine", b: "theirs", c: "added elsewhere" });
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText("Metadata saved.").waitFor();
    assert.equal(patches.length, 2);
    assert.equal(patches[1].headers["if-match"], theirs.etag, "the second save names the version read again");
    assert.deepEqual(patches[1].body, { metadata: { a: "mine" } });
    assert.deepEqual(await metadataOf("md-race"), { a: "mine", b: "theirs", c: "added elsewhere" });
    assert.deepEqual(await shownMetadata(page), [["a", "mine"], ["b", "theirs"], ["c", "added elsewhere"]]);
    assertClean(trouble);
    await context.close();
  });

  test("new events while editing a live call do not stop the save", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("md-live", { metadata: { step: "1" } });
    const { page, context, trouble, patches } = await openCall("md-live", WRITE_KEY);
    await page.locator(".live[data-state='live']").waitFor();
    await page.getByRole("button", { name: "Edit metadata" }).click();
    await page.getByLabel("Metadata (JSON)").fill('{"step": "2"}');
    const refreshed = page.waitForResponse((r) => r.url().includes("/sessions/md-live?limit=1"));
    await api.addEvent("md-live", "u-1", "user_speech", { text: "still talking" });
    await page.locator(".turn-user .text", { hasText: "still talking" }).waitFor({ timeout: LIVE_MS });
    await refreshed;
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText("Metadata saved.").waitFor();
    assert.equal(patches.length, 1, "saved at once, with the ETag read after the event");
    assert.deepEqual(await metadataOf("md-live"), { step: "2" });
    assertClean(trouble);
    await context.close();
  });

  test("text that is not a JSON object is refused in the page: a message, no request", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("md-json", { metadata: { a: 1 } });
    const { page, context, trouble, patches } = await openCall("md-json", WRITE_KEY);
    await page.getByRole("button", { name: "Edit metadata" }).click();
    const textarea = page.getByLabel("Metadata (JSON)");
    const message = page.locator(".editor-message");
    for (const [text, said] of [
      ['{"a": 1, "b": }', /not valid JSON, so nothing was sent/],
      ["[1, 2]", /must be one JSON object/],
      ['{"a": null}', /cannot be set to null[\s\S]*“a”/],
    ]) {
      await textarea.fill(text);
      await page.getByRole("button", { name: "Save" }).click();
      await page.locator(".editor-message", { hasText: said }).waitFor();
      assert.equal(await textarea.getAttribute("aria-invalid"), "true");
      assert.equal(await textarea.inputValue(), text, "the text is kept");
    }
    assert.match(await message.getAttribute("role"), /alert/);
    assert.equal(patches.length, 0, "no request was sent");
    assert.deepEqual(await metadataOf("md-json"), { a: 1 });
    await page.screenshot({ path: join(SCREENSHOTS, "metadata-invalid.png"), fullPage: true });

    // Metadata the service refuses (400): its field errors next to the editor.
    await textarea.fill('{"a": 1, "$where": "x"}');
    await page.getByRole("button", { name: "Save" }).click();
    await page.locator(".editor-message .field-errors li").first().waitFor();
    assert.match(await message.innerText(), /refused this metadata[\s\S]*\$where/);
    assert.equal(patches.length, 1);
    assert.deepEqual(await metadataOf("md-json"), { a: 1 });
    assert.ok(await page.getByRole("button", { name: "Save" }).isEnabled());
    assertClean(trouble);
    await context.close();
  });

  test("markup in metadata shows as text, in the details and in the editor, also at 375 px", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("md-xss", { metadata: { note: SCRIPT_TEXT } });
    for (const viewport of [{}, { width: 375, height: 760 }]) {
      const { page, context, trouble } = await openCall("md-xss", WRITE_KEY, viewport);
      if (viewport.width) await page.getByText("Call details").click();
      await page.getByRole("button", { name: "Edit metadata" }).click();
      const textarea = page.getByLabel("Metadata (JSON)");
      assert.equal(JSON.parse(await textarea.inputValue()).note, SCRIPT_TEXT);
      if (!viewport.width) {
        await textarea.fill(JSON.stringify({ note: SCRIPT_TEXT, "<b>key</b>": "<script>alert(2)</script>" }));
        await page.getByRole("button", { name: "Save" }).click();
        await page.getByText("Metadata saved.").waitFor();
        assert.deepEqual(await shownMetadata(page), [["note", SCRIPT_TEXT], ["<b>key</b>", "<script>alert(2)</script>"]]);
      } else {
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        assert.ok(overflow <= 0, `the editor fits 375 px (${overflow} px)`);
        await page.screenshot({ path: join(SCREENSHOTS, "metadata-editor-375.png"), fullPage: true });
      }
      assert.equal(await page.locator("img").count(), 0, "no <img> element was created");
      assert.equal(await page.locator("main script, main b").count(), 0, "no markup from data");
      assertClean(trouble);
      await context.close();
    }
  });

  test("a read-only key is told it cannot write, and nothing changes", { timeout: TEST_TIMEOUT }, async () => {
    await api.createSession("md-read", { metadata: { a: "1" } });
    const { page, context, trouble, patches } = await openCall("md-read", READ_KEY);
    await page.getByRole("button", { name: "Edit metadata" }).click();
    const textarea = page.getByLabel("Metadata (JSON)");
    await textarea.fill('{"a": "2"}');
    await page.getByRole("button", { name: "Save" }).click();
    await page.locator(".editor-message", { hasText: "This API key cannot write" }).waitFor();
    assert.equal(patches.length, 1);
    assert.equal(await textarea.inputValue(), '{"a": "2"}', "the edit is kept");
    assert.deepEqual(await metadataOf("md-read"), { a: "1" });
    assert.deepEqual(await shownMetadata(page), [["a", "1"]]);
    assertClean(trouble);
    await context.close();
  });
});
