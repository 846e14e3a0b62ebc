// The real session-service binary (SESSION_SERVICE_BIN) as a child process: SQLite in a fresh
// temporary folder, a free port (PORT=0, read back from its "listening" log line), its output
// kept for assertions, stopped with SIGTERM (SIGKILL if it does not exit).

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const STARTUP_LIMIT_MS = 20_000;

/** Starts the service with `env` added to a clean environment; answers once it listens. */
export async function startService(env = {}) {
  const bin = process.env.SESSION_SERVICE_BIN;
  if (!bin) throw new Error("SESSION_SERVICE_BIN is not set (./run-tests.sh sets it)");
  const dir = mkdtempSync(join(tmpdir(), "console-browser-"));
  const child = spawn(bin, [], {
    env: {
      PATH: process.env.PATH,
      HOST: "127.0.0.1",
      PORT: "0",
      DATABASE_URL: `sqlite://${join(dir, "sessions.db")}`,
      LOG_FORMAT: "json",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines = [];
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const address = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the service did not listen in time:\n${lines.join("\n")}`)), STARTUP_LIMIT_MS);
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        lines.push(line);
        try {
          const entry = JSON.parse(line);
          if (entry.message === "listening" && entry.address) {
            clearTimeout(timer);
            resolve(entry.address);
          }
        } catch {
          // not a JSON log line
        }
      });
    }
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the service exited (${code ?? signal}) before listening:\n${lines.join("\n")}`));
    });
  });
  const base = `http://${await address}`;
  return {
    base,
    /** Everything the service has written so far. */
    output: () => lines.join("\n"),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A small client of the service's API, as the callers of the platform use it. */
export function apiClient(base, key = null) {
  const send = async (method, path, body, headers = {}) => {
    const sent = { accept: "application/json", ...headers };
    if (key) sent.authorization = `Bearer ${key}`;
    if (body !== undefined) sent["content-type"] ??= "application/json";
    const response = await fetch(base + path, { method, headers: sent, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: response.status, json, text, etag: response.headers.get("etag") };
  };
  const expect = (status, allowed, what) => {
    if (!allowed.includes(status.status)) throw new Error(`${what}: ${status.status} ${status.text}`);
    return status.json;
  };
  return {
    send,
    async createSession(sessionId, extra = {}) {
      return expect(await send("POST", "/sessions", { sessionId, language: "en-US", ...extra }), [201], `create ${sessionId}`);
    },
    async addEvent(sessionId, eventId, type, payload) {
      return expect(await send("POST", `/sessions/${sessionId}/events`, { eventId, type, payload }), [201], `add ${eventId}`);
    },
    async complete(sessionId, body) {
      return expect(await send("POST", `/sessions/${sessionId}/complete`, body), [200], `complete ${sessionId}`);
    },
    async session(sessionId) {
      return send("GET", `/sessions/${sessionId}?limit=1`);
    },
    /** PATCHes the metadata with a merge patch; answers the whole answer (status, json, etag). */
    async patchMetadata(sessionId, metadata, headers = {}) {
      return send("PATCH", `/sessions/${sessionId}`, { metadata }, { "content-type": "application/merge-patch+json", ...headers });
    },
  };
}
