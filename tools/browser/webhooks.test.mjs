// The console's webhooks page (#/webhooks) in a real browser (Debian's chromium through
// playwright-core), against the real service binary run with WEBHOOK_ALLOW_PRIVATE_NETWORKS=true
// and a short retry schedule (three attempts, a second apart), delivering to receivers started
// here with Node's http module. Everything listens on 127.0.0.1 only. Screenshots go to
// tools/browser/screenshots/ (git-ignored).
//
// Run by tools/browser/run.sh (from ./run-tests.sh), which sets SESSION_SERVICE_BIN.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdirSync } from "node:fs";
import http from "node:http";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { orderDeliveries } from "../../console/deliveries.js";
import { launch, openPage } from "./lib/browser.mjs";
import { apiClient, startService } from "./lib/service.mjs";

const SCREENSHOTS = join(dirname(fileURLToPath(import.meta.url)), "screenshots");
const TEST_TIMEOUT = 60_000;
/** How long a delivery may take to show in the log (three attempts a second apart, then a read). */
const SETTLE_MS = 20_000;
const WEBHOOK_ENV = { WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true", WEBHOOK_RETRY_SCHEDULE: "0,1,1" };
const ADMIN_KEY = "webhooks-admin-key-0123456789abcdef";
const READ_KEY = "webhooks-read-key-0123456789abcdef";
const DEFAULT_TYPES = ["session.created", "session.updated", "session.ended", "session.deleted"];

let browser;

before(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/**
 * A receiver on 127.0.0.1: every request is recorded; each path answers its status (set with
 * `answer(path, status)`; 204 unless told otherwise).
 */
async function startReceiver() {
  const statuses = new Map();
  const received = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      received.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(statuses.get(req.url) ?? 204).end();
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    received,
    answer: (path, status) => statuses.set(path, status),
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Whether `header` (webhook-signature) holds a v1 signature of the message made with `secret`. */
function signedWith(secret, message) {
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const { "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": header } = message.headers;
  const expected = `v1,${createHmac("sha256", key).update(`${id}.${ts}.${message.body}`).digest("base64")}`;
  return String(header).split(" ").includes(expected);
}

/** Asserts that nothing ran that must not: no script dialog, no page error, no CSP refusal. */
function assertClean(trouble) {
  assert.deepEqual(trouble.dialogs, [], "no script dialog opened");
  assert.deepEqual(trouble.errors, [], "no page or console error");
}

/** The statuses of the log's rows, in screen order. */
const shownStatuses = (card) => card.locator("tr.delivery").evaluateAll((rows) => rows.map((r) => r.dataset.status));

/** Waits for `selector` in the card (its log polled by the page); a timeout says what it showed. */
async function waitInCard(card, selector, timeout = SETTLE_MS) {
  try {
    await card.locator(selector).first().waitFor({ timeout });
  } catch (error) {
    throw new Error(`${error.message}\nThe card showed:\n${await card.innerText().catch(() => "?")}`);
  }
}

async function waitFor(what, check, timeout = SETTLE_MS) {
  const end = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("the failures-first order of the delivery log", () => {
  test("failed, then pending, then succeeded; each message once, in its newer state", () => {
    const d = (messageId, status, attempts) => ({ messageId, status, attempts: Array.from({ length: attempts }, () => ({})) });
    const ordered = orderDeliveries({
      failed: [d("m1", "failed", 3)],
      pending: [d("m2", "pending", 1), d("m3", "pending", 0), d("m4", "pending", 2)],
      // m2 was delivered between the reads (one more attempt); m4 was recovered (same attempts).
      succeeded: [d("m5", "succeeded", 1), d("m2", "succeeded", 2), d("m4", "succeeded", 2)],
    });
    assert.deepEqual(ordered.map((x) => `${x.messageId}:${x.status}`), ["m1:failed", "m3:pending", "m4:pending", "m5:succeeded", "m2:succeeded"]);
  });
});

describe("the webhooks page", { timeout: TEST_TIMEOUT * 10 }, () => {
  let service;
  let receiver;
  let api;

  before(async () => {
    receiver = await startReceiver();
    service = await startService(WEBHOOK_ENV);
    api = apiClient(service.base);
  });

  after(async () => {
    await service?.stop();
    await receiver?.stop();
  });

  const endpoints = async () => (await api.send("GET", "/webhooks")).json.webhooks;
  const secretOf = async (id) => (await api.send("GET", `/webhooks/${id}/secret`)).json.secret;

  /** The webhooks page, reached from the header's link. */
  async function openWebhooks(viewport) {
    const opened = await openPage(browser, viewport);
    await opened.page.goto(`${service.base}/console#/`);
    await opened.page.getByRole("link", { name: "Webhooks", exact: true }).click();
    await opened.page.getByRole("heading", { name: "Webhooks", level: 1 }).waitFor();
    await opened.page.locator(".page-label", { hasText: /endpoint/ }).waitFor();
    return opened;
  }

  /** Creates an endpoint through the form; answers its card and the secret shown. */
  async function createThroughForm(page, url, { description = "", filter = "", types = null } = {}) {
    await page.getByLabel("URL").fill(url);
    if (description) await page.getByLabel("Description (optional)").fill(description);
    if (filter) await page.getByLabel("Metadata filter (optional, JSON)").fill(filter);
    if (types) {
      for (const box of await page.locator(".webhook-types input").all()) {
        await box.setChecked(types.includes(await box.getAttribute("value")));
      }
    }
    await page.getByRole("button", { name: "Create endpoint" }).click();
    const box = page.locator(".created-secret .secret-value");
    await page.locator(".created-secret h2").waitFor();
    const secret = await box.inputValue();
    const created = (await endpoints()).find((e) => e.url.startsWith(url));
    assert.ok(created, `the endpoint for ${url} exists`);
    const card = page.locator(`article.webhook[data-endpoint-id="${created.id}"]`);
    await card.waitFor();
    return { card, secret, id: created.id };
  }

  test("an endpoint created through the form is listed, with its secret shown once to copy", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openWebhooks();
    assert.equal(new URL(page.url()).hash, "#/webhooks");
    assert.equal(await page.locator("#nav-webhooks").getAttribute("aria-current"), "page");
    await page.getByText("No endpoints yet.").waitFor();
    const checked = await page.locator(".webhook-types input").evaluateAll((boxes) => boxes.filter((b) => b.checked).map((b) => b.value));
    assert.deepEqual(checked, DEFAULT_TYPES, "the four session.* types are checked by default");

    const { card, secret, id } = await createThroughForm(page, `${receiver.base}/ok`, { description: "the good receiver", filter: '{"tenant": "acme"}' });
    assert.match(secret, /^whsec_[A-Za-z0-9+/=]+$/);
    assert.equal(secret, await secretOf(id), "the secret shown is the endpoint's");
    assert.match(await page.locator(".created-secret").innerText(), new RegExp(`Signing secret of ${receiver.base}/ok`));
    const text = await card.innerText();
    for (const part of [`${receiver.base}/ok`, "Enabled", id, DEFAULT_TYPES.join(", "), "the good receiver", 'tenant = "acme"']) {
      assert.ok(text.includes(part), `the card shows ${part}: ${text}`);
    }
    assert.equal(await card.locator(".secret-value").count(), 0, "the card itself shows no secret until asked");
    assert.equal(await page.getByLabel("URL").inputValue(), "", "the form is empty again");
    assert.equal(await page.locator(".page-label").innerText(), "1 endpoint");

    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: service.base });
    await page.locator(".created-secret").getByRole("button", { name: "Copy" }).click();
    await page.locator(".created-secret .copy-status", { hasText: "Copied." }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret, "Copy puts the secret on the clipboard");

    // Shown once: after a reload the page has the endpoint but not its secret.
    await page.reload();
    await card.waitFor();
    assert.ok(await page.locator(".created-secret").isHidden());
    assert.ok(!(await page.locator("main").innerText()).includes(secret));
    await page.screenshot({ path: join(SCREENSHOTS, "webhooks-desktop.png"), fullPage: true });
    assertClean(trouble);
    await context.close();
  });

  test("validation errors show next to their fields, and nothing is created", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openWebhooks();
    const before = (await endpoints()).length;
    const requests = [];
    page.on("request", (r) => {
      if (r.method() === "POST" && new URL(r.url()).pathname === "/webhooks") requests.push(r.postDataJSON());
    });
    // Checked in the page first: no type, a filter that is not JSON.
    for (const box of await page.locator(".webhook-types input").all()) await box.uncheck();
    await page.getByLabel("URL").fill(`${receiver.base}/ok`);
    await page.getByLabel("Metadata filter (optional, JSON)").fill("{tenant: acme}");
    await page.getByRole("button", { name: "Create endpoint" }).click();
    await page.locator("#wh-types-error", { hasText: "Choose at least one type." }).waitFor();
    await page.locator("#wh-filter-error", { hasText: "not valid JSON" }).waitFor();
    assert.equal(requests.length, 0, "nothing was sent");

    // Refused by the service: its message next to the URL field.
    await page.locator(".webhook-types input[value='session.ended']").check();
    await page.getByLabel("Metadata filter (optional, JSON)").fill('{"tenant": {"nested": true}}');
    const url = page.getByLabel("URL");
    await url.fill("ftp://x");
    await page.getByRole("button", { name: "Create endpoint" }).click();
    const urlError = page.locator("#wh-url-error");
    await urlError.getByText("must be an http or https URL").waitFor();
    assert.equal(await url.getAttribute("aria-invalid"), "true");
    assert.match(await url.getAttribute("aria-describedby"), /wh-url-error/);
    assert.ok(await url.evaluate((input) => input === document.activeElement), "the first field refused has the focus");
    assert.match(await page.locator("#wh-filter-error").innerText(), /string, number or boolean/, "every field the service refused is marked");
    assert.equal(await page.locator("#wh-types-error").innerText(), "", "the fixed field's error is gone");
    assert.equal(requests.length, 1);
    assert.deepEqual(requests[0], { url: "ftp://x", types: ["session.ended"], filter: { metadata: { tenant: { nested: true } } } });
    assert.equal((await endpoints()).length, before, "nothing was created");
    await page.screenshot({ path: join(SCREENSHOTS, "webhooks-invalid.png"), fullPage: true });
    assertClean(trouble);
    await context.close();
  });

  test("send test leads to a succeeded delivery in the log, signed with the secret shown", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openWebhooks();
    const card = page.locator("article.webhook", { hasText: `${receiver.base}/ok` });
    const id = await card.getAttribute("data-endpoint-id");
    // A call matching the endpoint's filter: its session.created is delivered too.
    await api.createSession("wh-call-1", { metadata: { tenant: "acme" } });
    await card.getByRole("button", { name: "Send test" }).click();
    const said = await card.locator(".action-status", { hasText: /Test message msg_\w+ queued\./ }).innerText();
    const messageId = /msg_\w+/.exec(said)[0];
    // The log opened by itself, and follows the pending test until it is delivered.
    const row = card.locator(`tr.delivery[data-message-id="${messageId}"]`);
    await row.waitFor();
    await waitInCard(card, `tr.delivery[data-message-id="${messageId}"][data-status="succeeded"]`);
    assert.equal(await row.locator("td[data-label='Type']").innerText(), "webhook.test");
    assert.equal(await row.locator("td[data-label='Last result']").innerText(), "HTTP 204");
    assert.equal(await row.locator("td[data-label='Next attempt']").innerText(), "—");
    const toggle = row.getByRole("button", { name: "1 attempt" });
    assert.equal(await toggle.getAttribute("aria-expanded"), "false");
    await toggle.click();
    assert.equal(await toggle.getAttribute("aria-expanded"), "true");
    const attempts = card.locator(`#${await toggle.getAttribute("aria-controls")} li`);
    assert.equal(await attempts.count(), 1);
    assert.match(await attempts.first().innerText(), /#1[\s\S]*HTTP 204[\s\S]*ms/);

    // The call's change is in the log too, with a link to the call.
    // (The fan-out may queue it after the log was last read: the log's Refresh reads it again.)
    const call = card.locator("tr.delivery", { hasText: "session.created" });
    await waitFor("the call's delivery", async () => {
      if (await call.count()) return true;
      await card.locator(".delivery-log").getByRole("button", { name: "Refresh" }).click();
      await page.waitForTimeout(300);
      return false;
    });
    await card.locator("tr.delivery[data-status='succeeded']", { hasText: "session.created" }).waitFor({ timeout: SETTLE_MS });
    assert.equal(await call.getByRole("link", { name: "wh-call-1" }).getAttribute("href"), "#/calls/wh-call-1");

    // What the receiver got is signed with the secret the page reveals.
    await card.getByRole("button", { name: "Reveal secret" }).click();
    const secret = await card.locator(".secret-value").inputValue();
    assert.equal(secret, await secretOf(id));
    const message = receiver.received.find((m) => m.headers["webhook-id"] === messageId);
    assert.ok(message, "the receiver got the test message");
    assert.equal(JSON.parse(message.body).type, "webhook.test");
    assert.ok(signedWith(secret, message), "its signature verifies with the secret shown");
    await card.getByRole("button", { name: "Hide secret" }).click();
    assert.equal(await card.locator(".secret-value").count(), 0);
    assertClean(trouble);
    await context.close();
  });

  test("failed and pending deliveries are listed before the succeeded ones; recover sends them again", { timeout: TEST_TIMEOUT * 2 }, async () => {
    const { page, context, trouble } = await openWebhooks();
    receiver.answer("/flaky", 500);
    const { card } = await createThroughForm(page, `${receiver.base}/flaky`, { types: ["session.ended"] });
    const send = async () => {
      await card.getByRole("button", { name: "Send test" }).click();
      const said = await card.locator(".action-status", { hasText: /Test message msg_\w+ queued\./ }).innerText();
      return /msg_\w+/.exec(said)[0];
    };
    const rowOf = (id, status = null) => card.locator(`tr.delivery[data-message-id="${id}"]${status ? `[data-status="${status}"]` : ""}`);

    // 1. Answered 500 three times: failed.
    const first = await send();
    await waitInCard(card, `tr.delivery[data-message-id="${first}"][data-status="failed"]`);
    const failedRow = rowOf(first);
    assert.equal(await failedRow.locator("td[data-label='Last result']").innerText(), "HTTP 500");
    await failedRow.getByRole("button", { name: "3 attempts" }).click();
    const attempts = card.locator(`#${await failedRow.locator(".attempts-toggle").getAttribute("aria-controls")} li`);
    assert.deepEqual(await attempts.evaluateAll((items) => items.map((li) => li.querySelector(".attempt-status").textContent)), ["HTTP 500", "HTTP 500", "HTTP 500"]);

    // 2. Answered 204: succeeded, and newer than the failure, yet listed after it.
    receiver.answer("/flaky", 204);
    const second = await send();
    await waitInCard(card, `tr.delivery[data-message-id="${second}"][data-status="succeeded"]`);
    assert.deepEqual(await shownStatuses(card), ["failed", "succeeded"]);

    // 3. Answered 500 again: pending while it is retried, between the two.
    receiver.answer("/flaky", 500);
    const third = await send();
    await rowOf(third, "pending").waitFor();
    assert.deepEqual(await shownStatuses(card), ["failed", "pending", "succeeded"]);
    const pendingText = await rowOf(third).innerText();
    assert.ok(/HTTP 500|—/.test(pendingText), pendingText);
    await page.screenshot({ path: join(SCREENSHOTS, "webhooks-log.png"), fullPage: true });
    await waitInCard(card, `tr.delivery[data-message-id="${third}"][data-status="failed"]`);
    const order = await card.locator("tr.delivery").evaluateAll((rows) => rows.map((r) => r.dataset.messageId));
    assert.deepEqual(order, [third, first, second], "failures (newest first), then the success");
    assert.ok(await failedRow.getByRole("button", { name: "3 attempts" }).getAttribute("aria-expanded") === "true", "an opened row stays open as the log is read again");
    assert.match(await card.locator(".log-summary").innerText(), /2 failed · 0 pending · 1 succeeded/);

    // Recover since five minutes ago: the three messages (failed or delivered) are queued again,
    // and now delivered.
    receiver.answer("/flaky", 204);
    const since = new Date(Date.now() - 300_000);
    const p = (n) => String(n).padStart(2, "0");
    // Chromium writes a datetime-local back without ":00" seconds, and Playwright's fill refuses
    // a value that does not read back as written ("Malformed value"): no seconds when they are 0.
    const seconds = since.getSeconds() ? `:${p(since.getSeconds())}` : "";
    const local = `${since.getFullYear()}-${p(since.getMonth() + 1)}-${p(since.getDate())}T${p(since.getHours())}:${p(since.getMinutes())}${seconds}`;
    await card.getByLabel(/Send again every delivered or failed message since/).fill(local);
    await card.getByRole("button", { name: "Recover" }).click();
    await card.locator(".recover-status", { hasText: "3 messages queued again." }).waitFor();
    await waitFor("every delivery to succeed", async () => {
      const statuses = await shownStatuses(card);
      return statuses.length === 3 && statuses.every((s) => s === "succeeded");
    });
    assert.equal(await rowOf(first).locator("td[data-label='Last result']").innerText(), "HTTP 204");

    // A time that is not one: said next to the field, nothing sent.
    await card.getByLabel(/Send again every delivered or failed message since/).fill("");
    await card.getByRole("button", { name: "Recover" }).click();
    await card.locator(".field-error", { hasText: "Choose a date and time." }).waitFor();
    assertClean(trouble);
    await context.close();
  });

  test("disable and enable toggle the endpoint's state", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openWebhooks();
    const card = page.locator("article.webhook", { hasText: `${receiver.base}/ok` });
    const id = await card.getAttribute("data-endpoint-id");
    const state = async () => (await api.send("GET", `/webhooks/${id}`)).json.enabled;
    await card.getByRole("button", { name: "Disable" }).click();
    await card.locator(".webhook-head .badge", { hasText: "Disabled" }).waitFor();
    await card.getByRole("button", { name: "Enable" }).waitFor();
    assert.equal(await card.getAttribute("data-enabled"), "false");
    assert.equal(await state(), false);
    await card.getByRole("button", { name: "Enable" }).click();
    await card.locator(".webhook-head .badge", { hasText: "Enabled" }).waitFor();
    await card.getByRole("button", { name: "Disable" }).waitFor();
    assert.equal(await state(), true);
    assertClean(trouble);
    await context.close();
  });

  test("an endpoint the service disabled shows why", { timeout: TEST_TIMEOUT }, async () => {
    receiver.answer("/gone", 410);
    const created = await api.send("POST", "/webhooks", { url: `${receiver.base}/gone` });
    assert.equal(created.status, 201);
    await api.send("POST", `/webhooks/${created.json.id}/test`);
    await waitFor("the endpoint to be disabled", async () => (await api.send("GET", `/webhooks/${created.json.id}`)).json.enabled === false);
    const { page, context, trouble } = await openWebhooks();
    const card = page.locator(`article.webhook[data-endpoint-id="${created.json.id}"]`);
    await card.locator(".webhook-reason", { hasText: "Disabled by the service: the receiver answered 410 Gone." }).waitFor();
    assert.equal(await card.locator(".webhook-head .badge").innerText(), "Disabled");
    // Nothing queued for a disabled endpoint would go, so the service refuses and the page says why.
    await card.getByRole("button", { name: "Send test" }).click();
    await card.getByText("Could not send a test message: this endpoint is disabled; enable it first.").waitFor();
    await card.getByRole("button", { name: "Recover" }).click();
    await card.getByText("Could not queue the messages again: this endpoint is disabled; enable it first.").waitFor();
    assertClean(trouble);
    await context.close();
  });

  test("rotate shows a new secret, which signs what is sent next", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openWebhooks();
    const card = page.locator("article.webhook", { hasText: `${receiver.base}/ok` });
    const id = await card.getAttribute("data-endpoint-id");
    await card.getByRole("button", { name: "Reveal secret" }).click();
    const old = await card.locator(".secret-value").inputValue();
    await card.getByRole("button", { name: "Rotate secret" }).click();
    await card.locator(".action-status", { hasText: "The secret was rotated." }).waitFor();
    await card.getByText("New signing secret").waitFor();
    const fresh = await card.locator(".secret-value").inputValue();
    assert.match(fresh, /^whsec_/);
    assert.notEqual(fresh, old);
    assert.equal(fresh, await secretOf(id));

    await card.getByRole("button", { name: "Send test" }).click();
    const said = await card.locator(".action-status", { hasText: /Test message msg_\w+ queued\./ }).innerText();
    const messageId = /msg_\w+/.exec(said)[0];
    const message = await waitFor("the test message", async () => receiver.received.find((m) => m.headers["webhook-id"] === messageId));
    assert.ok(signedWith(fresh, message), "signed with the new secret");
    assert.ok(signedWith(old, message), "and, for the overlap, with the old one");
    assertClean(trouble);
    await context.close();
  });

  test("delete asks first, then removes the endpoint", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openWebhooks();
    const card = page.locator("article.webhook", { hasText: `${receiver.base}/flaky` });
    const id = await card.getAttribute("data-endpoint-id");
    await card.getByRole("button", { name: "Delete" }).click();
    const dialog = page.getByRole("dialog", { name: "Delete this endpoint?" });
    await dialog.waitFor();
    assert.match(await dialog.innerText(), new RegExp(`${receiver.base}/flaky`));
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "hidden" });
    assert.equal((await api.send("GET", `/webhooks/${id}`)).status, 200, "cancel deletes nothing");
    await card.getByRole("button", { name: "Delete" }).click();
    await dialog.getByRole("button", { name: "Delete the endpoint" }).click();
    await page.getByText(`The endpoint ${receiver.base}/flaky was deleted.`).waitFor();
    await card.waitFor({ state: "detached" });
    assert.equal((await api.send("GET", `/webhooks/${id}`)).status, 404);
    assert.equal(await page.locator(".page-label").innerText(), `${(await endpoints()).length} endpoints`);
    assertClean(trouble);
    await context.close();
  });

  test("the page fits 375 px", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openWebhooks({ width: 375, height: 760 });
    const card = page.locator("article.webhook", { hasText: `${receiver.base}/ok` });
    await card.locator("summary", { hasText: "Delivery log" }).click();
    await card.locator("tr.delivery").first().waitFor();
    await card.locator(".attempts-toggle").first().click();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    const wide = await page.evaluate(() => [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth).map((e) => `${e.tagName}.${e.className} ${e.getBoundingClientRect().right}`).slice(0, 20));
    await page.screenshot({ path: join(SCREENSHOTS, "webhooks-375.png"), fullPage: true });
    assert.ok(overflow <= 0, `nothing sticks out sideways at 375 px (${overflow} px): ${wide.join(", ")}`);
    assertClean(trouble);
    await context.close();
  });
});

describe("the webhooks page with API keys", { timeout: TEST_TIMEOUT * 3 }, () => {
  let service;
  let receiver;

  before(async () => {
    receiver = await startReceiver();
    service = await startService({ ...WEBHOOK_ENV, API_KEYS: `admin:${ADMIN_KEY},read:${READ_KEY}` });
  });

  after(async () => {
    await service?.stop();
    await receiver?.stop();
  });

  test("a read key is told webhooks need an admin key; the admin key manages them", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${service.base}/console#/webhooks`);
    const keyDialog = page.getByRole("dialog", { name: "API key" });
    await keyDialog.getByLabel("Key").fill(READ_KEY);
    await keyDialog.getByRole("button", { name: "Use this key" }).click();
    await page.getByText("This API key may not manage webhooks: they need an admin key.").waitFor();
    await page.locator("#notice", { hasText: "403 forbidden" }).waitFor();

    await page.locator("#notice").getByRole("button", { name: "Use another key" }).click();
    await keyDialog.getByLabel("Key").fill(ADMIN_KEY);
    await keyDialog.getByRole("button", { name: "Use this key" }).click();
    await page.getByText("No endpoints yet.").waitFor();
    await page.getByLabel("URL").fill(`${receiver.base}/keyed`);
    await page.getByRole("button", { name: "Create endpoint" }).click();
    const secret = await page.locator(".created-secret .secret-value").inputValue();
    assert.match(secret, /^whsec_/);
    const card = page.locator("article.webhook");
    await card.getByRole("button", { name: "Send test" }).click();
    await waitInCard(card, "tr.delivery[data-status='succeeded']");
    const message = receiver.received.find((m) => m.path === "/keyed");
    assert.ok(message && signedWith(secret, message));
    for (const { url, headers } of trouble.requests) {
      assert.ok(!url.includes(ADMIN_KEY) && !url.includes(secret), `no key or secret in a URL: ${url}`);
      if (new URL(url).pathname.startsWith("/webhooks")) assert.ok([undefined, `Bearer ${ADMIN_KEY}`, `Bearer ${READ_KEY}`].includes(headers.authorization), url);
    }
    assert.ok(!service.output().includes(secret), "no secret in the service's log");
    assertClean(trouble);
    await context.close();
  });
});
