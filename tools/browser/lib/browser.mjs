// Debian's chromium, driven by playwright-core (no browser of Playwright's own: it cannot be
// downloaded here, and PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 says so).

import { execFileSync } from "node:child_process";
import { chromium } from "playwright-core";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** The chromium on PATH (CHROMIUM_BIN overrides). */
export function chromiumPath() {
  if (process.env.CHROMIUM_BIN) return process.env.CHROMIUM_BIN;
  return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
}

export async function launch() {
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: CHROMIUM_ARGS });
}

/**
 * A new page of its own context at `viewport`, recording what must never happen: script
 * dialogs, page errors, and console errors (CSP refusals among them).
 */
export async function openPage(browser, { width = 1280, height = 860 } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, acceptDownloads: true });
  const page = await context.newPage();
  const trouble = { dialogs: [], errors: [], requests: [] };
  page.on("dialog", (dialog) => {
    trouble.dialogs.push(dialog.message());
    dialog.dismiss().catch(() => {});
  });
  page.on("pageerror", (error) => trouble.errors.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) trouble.errors.push(`console: ${message.text()}`);
  });
  page.on("request", (request) => trouble.requests.push({ url: request.url(), headers: request.headers() }));
  return { page, context, trouble };
}
