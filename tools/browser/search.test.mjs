// The console's search view (console/search.js) in a real browser (Debian's chromium through
// playwright-core), against the real service binary on SQLite: hits as GET /search answers them,
// their matches marked with <mark> exactly where its highlights say, markup in a transcript shown
// as text, a hit opening its call scrolled to the event (also past the call's first page), the
// service's 400 messages, paging with "More" (an empty page with a cursor included), and the view
// at 375 px. Screenshots go to tools/browser/screenshots/ (git-ignored). First, in Node alone,
// how a text is cut at its highlights.
//
// Run by tools/browser/run.sh, which sets SESSION_SERVICE_BIN.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { highlightParts, searchFiltersFrom, searchHashOf, searchUrl } from "../../console/search.js";
import { launch, openPage } from "./lib/browser.mjs";
import { apiClient, startService } from "./lib/service.mjs";

const SCREENSHOTS = join(dirname(fileURLToPath(import.meta.url)), "screenshots");
const TEST_TIMEOUT = 60_000;
const SCRIPT_TEXT = "<img src=x onerror=alert(1)> refund <b>bold</b> please";
const READ_KEY = "search-read-key-0123456789abcdef";
const ADMIN_KEY = "search-admin-key-0123456789abcdef";
/** The long call: enough events that one in the middle is on neither of its first two pages. */
const LONG_EVENTS = 150;
const NEEDLE_SEQ = 30;

describe("cutting a hit's text at its highlights (Node)", () => {
  test("the parts join up to the text; marked parts are the highlights' slices", () => {
    const text = "Je veux un remboursement pour le café 😀 Café";
    const highlights = [[11, 24], [33, 37], [41, 45]];
    const parts = highlightParts(text, highlights);
    assert.equal(parts.map(([p]) => p).join(""), text);
    assert.deepEqual(parts.filter(([, m]) => m).map(([p]) => p), ["remboursement", "café", "Café"]);
    assert.deepEqual(highlightParts("abc", []), [["abc", false]]);
    assert.deepEqual(highlightParts("", []), []);
  });

  test("offsets count UTF-16 code units, as the service sends them", () => {
    const text = "😀 refund";
    assert.deepEqual(highlightParts(text, [[3, 9]]), [["😀 ", false], ["refund", true]]);
  });

  test("a span out of order, overlapping, empty or out of range marks nothing, and loses no text", () => {
    const text = "one two three";
    for (const bad of [[[4, 7], [0, 3]], [[0, 5], [4, 7]], [[2, 2]], [[8, 99]], [[-1, 3]], [["0", "3"]], "x", null]) {
      const parts = highlightParts(text, bad);
      assert.equal(parts.map(([p]) => p).join(""), text, JSON.stringify(bad));
    }
    assert.deepEqual(highlightParts(text, [[4, 7], [0, 3]]), [["one ", false], ["two", true], [" three", false]]);
  });

  test("the hash and the API request carry the same search; defaults are left out of the hash", () => {
    const params = new URLSearchParams("q=refund+%22thank+you%22&type=bot_speech&status=active,bogus&key=team&value=a&order=newest&from=2026-01-01T00:00:00.000Z");
    const filters = searchFiltersFrom(params);
    assert.deepEqual(filters.status, ["active"]);
    const api = new URL(searchUrl(filters, "c1"), "http://x");
    assert.equal(api.searchParams.get("q"), 'refund "thank you"');
    assert.equal(api.searchParams.get("type"), "bot_speech");
    assert.equal(api.searchParams.get("metadata.team"), "a");
    assert.equal(api.searchParams.get("startedFrom"), "2026-01-01T00:00:00.000Z");
    assert.equal(api.searchParams.get("after"), "c1");
    assert.deepEqual(searchFiltersFrom(new URLSearchParams(searchHashOf(filters).slice("#/search?".length))), filters);
    assert.equal(searchHashOf(searchFiltersFrom(new URLSearchParams("q=x&order=relevance&type=system"))), "#/search?q=x");
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

/** The numbers from `from` to `to`. */
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** The seqs of the turns on screen, in screen order. */
const shownSeqs = (page) => page.locator(".transcript > li.turn").evaluateAll((items) => items.map((li) => Number(li.dataset.seq)));

/** How far the page sticks out sideways (0 or less: not at all). */
const overflow = (page) => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);

/** The hits on screen: call, seq, speaker, text, the marks' texts, and what the text is made of. */
function shownHits(page) {
  return page.locator(".hits > li.hit").evaluateAll((items) =>
    items.map((li) => {
      const text = li.querySelector(".hit-text");
      return {
        sessionId: li.dataset.sessionId,
        seq: Number(li.dataset.seq),
        speaker: li.querySelector(".speaker").textContent,
        href: li.querySelector("a.hit-call").getAttribute("href"),
        text: text.textContent,
        marks: [...text.querySelectorAll("mark")].map((m) => m.textContent),
        // Only text nodes, and <mark>s holding one text node each.
        pieces: [...text.childNodes].map((n) =>
          n.nodeType === Node.TEXT_NODE ? "text" : n.nodeName === "MARK" && n.childNodes.length === 1 && n.firstChild.nodeType === Node.TEXT_NODE ? "mark" : `other:${n.nodeName}`,
        ),
      };
    }),
  );
}

/** Types `q` into the query box and submits it with Enter; waits for the answer on screen. */
async function search(page, q) {
  const answered = page.waitForResponse((r) => new URL(r.url()).pathname === "/search");
  await page.getByLabel("Find").fill(q);
  await page.getByLabel("Find").press("Enter");
  await answered;
  await page.locator(".hits[aria-busy]").waitFor({ state: "detached" });
}

/** Asserts that the hits on screen are `expected` (GET /search's), marks included. */
async function assertHitsShown(page, expected) {
  const shown = await shownHits(page);
  assert.deepEqual(shown.map((h) => `${h.sessionId}#${h.seq}`), expected.map((h) => `${h.sessionId}#${h.seq}`), "the hits, in the service's order");
  expected.forEach((hit, i) => {
    const on = shown[i];
    assert.equal(on.text, hit.text, "the whole text, as stored");
    assert.deepEqual(on.marks, hit.highlights.map(([start, end]) => hit.text.slice(start, end)), `the marks are the highlights of ${on.sessionId}#${on.seq}`);
    assert.ok(on.pieces.every((p) => p === "text" || p === "mark"), `only text and <mark>: ${on.pieces}`);
    assert.equal(on.speaker, hit.type === "user_speech" ? "Caller" : "Bot");
    assert.equal(on.href, `#/calls/${hit.sessionId}?seq=${hit.seq}`);
  });
}

describe("the search view", { timeout: TEST_TIMEOUT * 10 }, () => {
  let service;
  let api;
  /** GET /search's JSON for these parameters. */
  const apiSearch = async (params) => {
    const { status, json } = await api.send("GET", `/search?${new URLSearchParams(params)}`);
    assert.equal(status, 200, JSON.stringify(json));
    return json;
  };

  before(async () => {
    service = await startService();
    api = apiClient(service.base);
    await api.createSession("cafe-1", { language: "fr-FR", metadata: { team: "paris" } });
    await api.addEvent("cafe-1", "u-1", "user_speech", { text: "Je voudrais un remboursement pour le café, s’il vous plaît." });
    await api.addEvent("cafe-1", "b-1", "bot_speech", { text: "Bien sûr : le REMBOURSEMENT du Café est en cours." });
    await api.addEvent("cafe-1", "s-1", "system", { text: "remboursement café (a system note: not searched)" });
    await api.createSession("markup-1");
    await api.addEvent("markup-1", "u-1", "user_speech", { text: SCRIPT_TEXT });
    await api.addEvent("markup-1", "b-1", "bot_speech", { text: `Your refund: https://example.com/${"x".repeat(160)}/refund-status?id=${"9".repeat(60)}` });
    // The long call: every event says "filler"; one in the middle also says "needle".
    await api.createSession("long-1", { metadata: { team: "paging" } });
    const events = Array.from({ length: LONG_EVENTS }, (_, i) => ({
      eventId: `e-${i + 1}`,
      type: i % 2 ? "bot_speech" : "user_speech",
      payload: { text: i + 1 === NEEDLE_SEQ ? `turn ${i + 1}: the needle is here, filler` : `turn ${i + 1} filler` },
    }));
    for (let i = 0; i < events.length; i += 100) {
      const answer = await api.send("POST", "/sessions/long-1/events:batch", { events: events.slice(i, i + 100) });
      assert.ok([200, 201].includes(answer.status), answer.text);
    }
  });

  after(async () => {
    await service?.stop();
  });

  test("hits show who said what and when, with exactly the matched words marked", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${service.base}/console`);
    await page.getByRole("link", { name: "Search", exact: true }).click();
    await page.getByLabel("Find").waitFor();
    assert.ok(await page.getByLabel("Find").evaluate((i) => i === document.activeElement), "the query box has the focus");
    await search(page, "rembours* CAFE");
    assert.match(decodeURIComponent(page.url()), /#\/search\?q=rembours\*\+CAFE$/, "the search is in the address");
    await page.waitForFunction(() => document.activeElement?.id === "s-q"); // back in the query box
    const expected = (await apiSearch({ q: "rembours* CAFE" })).hits;
    assert.equal(expected.length, 2, "the caller's and the bot's turns, not the system note");
    await assertHitsShown(page, expected);
    // Case and accents: the words as they were said are marked.
    const marks = (await shownHits(page)).map((h) => h.marks).sort();
    assert.deepEqual(marks, [["REMBOURSEMENT", "Café"], ["remboursement", "café"]]);
    assert.deepEqual((await shownHits(page)).map((h) => h.speaker).sort(), ["Bot", "Caller"]);
    assert.equal(await page.locator(".search-status").innerText(), "2 matches.");
    assert.ok(await page.locator(".hit time").first().getAttribute("datetime"));
    assert.ok(await page.getByRole("button", { name: "More" }).isHidden(), "no More without a nextCursor");

    // Only the bot's turns.
    await page.getByLabel("Said by").selectOption("bot_speech");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await page.waitForFunction(() => document.querySelectorAll(".hits > li").length === 1);
    assert.deepEqual((await shownHits(page)).map((h) => h.speaker), ["Bot"]);
    assert.match(page.url(), /type=bot_speech/);
    await page.screenshot({ path: join(SCREENSHOTS, "search-desktop.png"), fullPage: true });
    assertClean(trouble);
    await context.close();
  });

  test("markup in a transcript shows as text, marked where it matched, and runs nothing", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${service.base}/console#/search`);
    await search(page, "onerror refund");
    const expected = (await apiSearch({ q: "onerror refund" })).hits;
    assert.equal(expected.length, 1);
    await assertHitsShown(page, expected);
    const [hit] = await shownHits(page);
    assert.equal(hit.text, SCRIPT_TEXT);
    assert.deepEqual(hit.marks, ["onerror", "refund"]);
    assert.equal(await page.locator("img").count(), 0, "no <img> element was created");
    assert.equal(await page.locator("main b, main script, .hit-text *:not(mark)").count(), 0, "no markup from data");
    await page.waitForTimeout(300); // an onerror would have fired by now
    assertClean(trouble);
    await context.close();
  });

  test("a hit opens its call scrolled to the event and marked, though it is not on the first page", { timeout: TEST_TIMEOUT }, async () => {
    for (const viewport of [{}, { width: 375, height: 760 }]) {
      const { page, context, trouble } = await openPage(browser, viewport);
      await page.goto(`${service.base}/console#/search`);
      await search(page, "needle");
      await assertHitsShown(page, (await apiSearch({ q: "needle" })).hits);
      await page.getByRole("link", { name: "long-1" }).click();
      const target = page.locator(".transcript > li.turn-target");
      await target.waitFor();
      assert.equal(await target.getAttribute("data-seq"), String(NEEDLE_SEQ));
      assert.equal(await page.locator(".transcript > li.turn-target").count(), 1, "one event marked");
      assert.match(await target.innerText(), /the needle is here/);
      assert.equal(await target.getAttribute("aria-current"), "true");
      const inView = await target.evaluate((li) => {
        const box = li.getBoundingClientRect();
        return box.top >= 0 && box.bottom <= window.innerHeight && window.scrollY > 0;
      });
      assert.ok(inView, "the event is scrolled into view");
      // Its page (1–50) and the newest page (101–150) are loaded; the events between wait.
      assert.deepEqual(await shownSeqs(page), [...range(1, 50), ...range(101, LONG_EVENTS)]);
      const gap = page.locator(".transcript > li.gap");
      assert.match(await gap.innerText(), /50 events not shown/);
      assert.ok(await page.getByRole("button", { name: "Load earlier events" }).isHidden(), "nothing earlier than seq 1");
      await page.screenshot({ path: join(SCREENSHOTS, `search-call-target-${viewport.width ? "375" : "desktop"}.png`) });
      assert.ok((await overflow(page)) <= 0, "the call fits sideways");

      if (!viewport.width) {
        await gap.getByRole("button", { name: "Load events #51–#100" }).click();
        await page.waitForFunction(() => document.querySelectorAll(".transcript > li.turn").length === 150);
        assert.equal(await gap.count(), 0, "the gap closed");
        const all = await page.locator(".transcript > li").evaluateAll((items) => items.map((li) => Number(li.dataset.seq)));
        assert.deepEqual(all, range(1, LONG_EVENTS), "every event once, in order");
      }

      // Back to the results: the same hits, the opened one focused, nothing searched again.
      let searched = 0;
      page.on("request", (r) => {
        if (new URL(r.url()).pathname === "/search") searched += 1;
      });
      await page.getByRole("link", { name: "← Search results" }).click();
      const link = page.locator(".hits a.hit-call");
      await link.waitFor();
      await page.waitForFunction(() => document.activeElement?.classList.contains("hit-call"));
      assert.equal(searched, 0);
      assertClean(trouble);
      await context.close();
    }
  });

  test("a hit among the newest events is marked too, with no gap", { timeout: TEST_TIMEOUT }, async () => {
    await api.addEvent("long-1", "late-1", "user_speech", { text: "one more haystack" });
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${service.base}/console#/search?q=haystack`);
    await page.locator(".hits > li").first().waitFor();
    await page.locator(".hit .hit-text").first().click(); // the card, not its link
    const target = page.locator(".transcript > li.turn-target");
    await target.waitFor();
    assert.equal(await target.getAttribute("data-seq"), String(LONG_EVENTS + 1));
    assert.equal(await page.locator(".transcript > li.gap").count(), 0, "no gap: the newest page holds it");
    await page.getByRole("button", { name: "Load earlier events" }).waitFor();
    assertClean(trouble);
    await context.close();
  });

  test("opened at a middle page: earlier events by page, a one-event gap, live events after", { timeout: TEST_TIMEOUT }, async () => {
    const last = LONG_EVENTS + 1; // with the event the test before added
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${service.base}/console#/calls/long-1?seq=75`);
    const target = page.locator(".transcript > li.turn-target");
    await target.waitFor();
    assert.equal(await target.getAttribute("data-seq"), "75");
    // Its page (51–100) and the newest page (102–151): one event between them.
    assert.deepEqual(await shownSeqs(page), [...range(51, 100), ...range(102, last)]);
    assert.match(await page.locator(".transcript > li.gap").innerText(), /^1 event not shown/);
    const earlier = page.getByRole("button", { name: "Load earlier events" });
    await earlier.click();
    await page.waitForFunction(() => document.querySelectorAll(".transcript > li.turn").length === 150);
    assert.deepEqual(await shownSeqs(page), [...range(1, 100), ...range(102, last)]);
    assert.ok(await earlier.isHidden(), "nothing earlier than seq 1");
    await page.getByRole("button", { name: "Load event #101" }).click();
    await page.locator(".transcript > li.gap").waitFor({ state: "detached" });
    assert.deepEqual(await shownSeqs(page), range(1, last));
    await page.locator(".live[data-state='live']").waitFor();
    await api.addEvent("long-1", "late-2", "bot_speech", { text: "and one more" });
    await page.locator(`.transcript > li[data-seq='${last + 1}']`).waitFor({ timeout: 2_000 });
    assert.deepEqual(await shownSeqs(page), range(1, last + 1), "a live event comes last");

    await page.goto(`${service.base}/console#/calls/long-1?seq=999`);
    await page.getByText("This call has no event #999.").waitFor();
    assertClean(trouble);
    await context.close();
  });

  test("a query the service refuses shows its message; nothing found says so", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${service.base}/console#/search`);
    const refused = await api.send("GET", `/search?${new URLSearchParams({ q: '"open' })}`);
    assert.equal(refused.status, 400);
    assert.equal(refused.json.errors[0].field, "q");
    await search(page, '"open');
    const errors = page.locator(".search-errors");
    await errors.waitFor();
    assert.equal(await errors.getAttribute("role"), "alert");
    assert.ok((await errors.innerText()).includes(`Find: ${refused.json.errors[0].message}`), await errors.innerText());
    assert.equal(await page.getByLabel("Find").getAttribute("aria-invalid"), "true");
    assert.equal(await page.locator(".hits > li").count(), 0);
    await page.screenshot({ path: join(SCREENSHOTS, "search-refused.png") });

    // A bad filter: the service's field is named by its label.
    await page.getByLabel("Language").fill("not a language!");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await page.locator(".search-errors", { hasText: "Language:" }).waitFor();
    assert.equal(await page.getByLabel("Language").getAttribute("aria-invalid"), "true");

    await page.getByLabel("Language").fill("");
    await search(page, "zebra");
    assert.equal(await page.locator(".search-status").innerText(), "No matches.");
    assert.equal((await errors.textContent()).trim(), "", "the old error is gone");
    assert.equal(await page.getByLabel("Find").getAttribute("aria-invalid"), null);

    // Nothing to search: said in the page, no request.
    let sent = 0;
    page.on("request", (r) => {
      if (new URL(r.url()).pathname === "/search") sent += 1;
    });
    await page.getByLabel("Find").fill("   ");
    await page.getByLabel("Find").press("Enter");
    await page.getByText("Enter what to find.").waitFor();
    assert.equal(sent, 0);
    assertClean(trouble);
    await context.close();
  });

  test("More walks every page while there is a nextCursor, an empty page included", { timeout: TEST_TIMEOUT }, async () => {
    const params = { q: "filler", order: "newest", "metadata.team": "paging", limit: "20" };
    const pages = [];
    let cursor = null;
    do {
      const page = await apiSearch(cursor ? { ...params, after: cursor } : params);
      pages.push(page);
      cursor = page.nextCursor;
    } while (cursor);
    const all = pages.flatMap((p) => p.hits);
    assert.equal(all.length, LONG_EVENTS);

    const { page, context, trouble } = await openPage(browser);
    // The first answer is made empty (its cursor kept), as when the filters leave out every
    // candidate a request examines: the page must still offer More.
    let emptied = false;
    await page.route((url) => url.pathname === "/search", async (route) => {
      if (emptied) return route.continue();
      emptied = true;
      const answer = await route.fetch();
      const body = await answer.json();
      assert.ok(body.nextCursor);
      await route.fulfill({ response: answer, json: { hits: [], nextCursor: body.nextCursor } });
    });
    await page.goto(`${service.base}/console#/search?q=filler&key=team&value=paging&order=newest`);
    const more = page.getByRole("button", { name: "More" });
    await more.waitFor();
    assert.match(await page.locator(".search-status").innerText(), /No matches among the events examined so far/);
    assert.equal(await page.locator(".hits > li").count(), 0);
    assert.equal(await page.getByLabel("Metadata key").inputValue(), "team", "the filters are in the form");
    assert.equal(await page.getByLabel("Order").inputValue(), "newest");

    // Page 2 onwards as the service pages them; page 1's hits were the ones left out.
    let shown = 0;
    for (const expected of pages.slice(1)) {
      await more.click();
      shown += expected.hits.length;
      await page.waitForFunction((n) => document.querySelectorAll(".hits > li").length === n && !document.querySelector(".hits[aria-busy]"), shown);
      if (expected.nextCursor && expected.hits.length) {
        assert.ok(await more.isVisible(), "More while there is a nextCursor");
        assert.ok(await page.locator(".hits a.hit-call").nth(shown - expected.hits.length).evaluate((a) => a === document.activeElement), "the first new hit has the focus");
      }
    }
    await assertHitsShown(page, all.slice(pages[0].hits.length));
    assert.ok(await more.isHidden(), "no More after the last page");
    assert.equal(await page.locator(".search-status").innerText(), `${shown} matches.`);
    assertClean(trouble);
    await context.close();
  });

  test("at 375 px the view fits: no sideways scrolling, long words wrap", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser, { width: 375, height: 760 });
    await page.goto(`${service.base}/console#/search`);
    assert.ok(await page.locator(".search-filters[open]").count() === 0, "the filters are folded");
    await search(page, "refund");
    await assertHitsShown(page, (await apiSearch({ q: "refund" })).hits);
    assert.ok((await overflow(page)) <= 0, `nothing sticks out sideways (${await overflow(page)} px)`);
    await page.screenshot({ path: join(SCREENSHOTS, "search-375.png"), fullPage: true });
    await page.getByText("Filters").click();
    assert.ok((await overflow(page)) <= 0, "the filters fit too");
    await page.screenshot({ path: join(SCREENSHOTS, "search-filters-375.png"), fullPage: true });
    assertClean(trouble);
    await context.close();
  });
});

describe("the search view with API keys", { timeout: TEST_TIMEOUT * 2 }, () => {
  let service;
  let api;

  before(async () => {
    service = await startService({ API_KEYS: `admin:${ADMIN_KEY},read:${READ_KEY}` });
    api = apiClient(service.base, ADMIN_KEY);
    await api.createSession("keyed-1");
    await api.addEvent("keyed-1", "u-1", "user_speech", { text: "Where is my parcel?" });
  });

  after(async () => {
    await service?.stop();
  });

  test("asks for a key, then searches with a read key sent as a bearer token", { timeout: TEST_TIMEOUT }, async () => {
    const { page, context, trouble } = await openPage(browser);
    await page.goto(`${service.base}/console#/search?q=parcel`);
    const dialog = page.getByRole("dialog", { name: "API key" });
    await dialog.waitFor();
    await page.locator(".search-errors", { hasText: "Enter an API key to search." }).waitFor();
    await dialog.getByLabel("Key").fill(READ_KEY);
    await dialog.getByRole("button", { name: "Use this key" }).click();
    await page.locator(".hits > li[data-session-id='keyed-1']").waitFor();
    const reads = trouble.requests.filter((r) => new URL(r.url).pathname === "/search");
    assert.equal(reads.at(-1).headers.authorization, `Bearer ${READ_KEY}`);
    assert.ok(reads.every((r) => !r.url.includes(READ_KEY)), "no key in a URL");
    assertClean(trouble);
    await context.close();
  });
});
