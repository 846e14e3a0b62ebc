// Every request the console makes goes through `request`: same origin, the API key (if one was
// entered) as `Authorization: Bearer …`, problem JSON turned into an ApiError. The key lives in
// sessionStorage only: never in a URL, never logged.

const KEY_ITEM = "session-service.api-key";

/** The key entered in this tab, or null. */
export function apiKey() {
  try {
    return sessionStorage.getItem(KEY_ITEM);
  } catch {
    return null;
  }
}

export function setApiKey(key) {
  sessionStorage.setItem(KEY_ITEM, key);
}

export function forgetApiKey() {
  sessionStorage.removeItem(KEY_ITEM);
}

/** A failed request: the HTTP status (0: no answer) and the problem JSON (or a stand-in). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }

  /** 401 or 403: the key is missing, unknown, or may not do this. */
  get isAuth() {
    return this.status === 401 || this.status === 403;
  }
}

const authListeners = new Set();

/** Calls `listener(error)` on every 401 and 403 answer. */
export function onAuthProblem(listener) {
  authListeners.add(listener);
}

async function problemOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body === "object") return body;
  } catch {
    // not JSON: described below
  }
  return { title: response.statusText || `HTTP ${response.status}` };
}

/**
 * Sends a request to the API and answers the response when it is a 2xx; anything else throws
 * an ApiError (an abort through `signal` throws the AbortError as is). `body`, if given, is sent
 * as JSON, labelled `contentType` (e.g. application/merge-patch+json for a PATCH).
 */
export async function request(path, { method = "GET", accept = "application/json", headers = {}, body, contentType = "application/json", signal } = {}) {
  const sent = new Headers(headers);
  sent.set("Accept", accept);
  const key = apiKey();
  if (key) sent.set("Authorization", `Bearer ${key}`);
  let payload;
  if (body !== undefined) {
    sent.set("Content-Type", contentType);
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: sent,
      body: payload,
      signal,
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { title: "The service did not answer", detail: "The service did not answer; check that it is running." });
  }
  if (response.ok) return response;
  const error = new ApiError(response.status, await problemOf(response));
  error.retryAfter = Number(response.headers.get("Retry-After")) || null;
  if (error.isAuth) for (const listener of authListeners) listener(error, key !== null);
  throw error;
}

/** GETs `path` and answers its JSON body. */
export async function getJson(path, options = {}) {
  const response = await request(path, options);
  return response.json();
}

/** `/sessions/{id}` and below, with the id encoded. */
export function sessionPath(sessionId, rest = "") {
  return `/sessions/${encodeURIComponent(sessionId)}${rest}`;
}

/** A sentence for an error, with the field errors of a validation problem. */
export function describe(error) {
  if (!(error instanceof ApiError)) return String(error && error.message ? error.message : error);
  const p = error.problem;
  const parts = [p.detail || p.title || `HTTP ${error.status}`];
  if (Array.isArray(p.errors)) {
    for (const e of p.errors) parts.push(`${e.field}: ${e.message}`);
  }
  if (error.status) parts.push(`(${error.status}${p.code ? ` ${p.code}` : ""})`);
  return parts.join(" ");
}
