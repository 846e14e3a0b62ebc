// The small HTTP client both roles share: where the service is, the API key, and `send`, which
// retries what is safe to retry. Every write of this service is idempotent (a replay answers 200
// with what is stored), so a retry of the *same request* can never duplicate a turn: the one rule
// is to build the body once and send those same bytes on every attempt.

/** Where the service is and which keys to send (README "Configuration", "Running it safely"). */
export interface Config {
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` by the agent; needs the `write` scope. */
  apiKey: string | undefined;
  /** Sent by the transcript follower; `read` is enough. Defaults to `apiKey`. */
  readKey: string | undefined;
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): Config {
  const apiKey = env.SESSION_SERVICE_API_KEY || undefined;
  return {
    baseUrl: (env.SESSION_SERVICE_URL || "http://127.0.0.1:3000").replace(/\/+$/, ""),
    apiKey,
    readKey: env.SESSION_SERVICE_READ_KEY || apiKey,
  };
}

/** An answer the client will not retry (a 4xx other than 429), or the last one when retries ran out. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface Answer<T> {
  status: number;
  body: T;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** 503 (storage_unavailable, storage_full, request_timeout, too_many_streams), any other 5xx, and 429. */
export const isRetryableStatus = (status: number): boolean => status === 429 || status >= 500;

/** The wait before attempt `attempt + 1`: exponential backoff with jitter, at least `Retry-After`. */
export function backoffMs(attempt: number, retryAfter: string | null): number {
  const exponential = Math.min(200 * 2 ** attempt, 5_000);
  const jittered = exponential / 2 + Math.random() * (exponential / 2);
  const seconds = retryAfter !== null && /^\d+$/.test(retryAfter) ? Number(retryAfter) : 0;
  return Math.max(jittered, seconds * 1000);
}

export function authHeaders(key: string | undefined): Record<string, string> {
  return key ? { authorization: `Bearer ${key}` } : {};
}

export interface SendOptions {
  key: string | undefined;
  /** What to call this request in the log lines ("turn-0003"). */
  label: string;
  maxAttempts?: number;
  log?: (line: string) => void;
}

/**
 * Sends `method path` with `body` (serialised once, here) and retries on a network error, a 5xx
 * or a 429 with backoff, sending the identical request again. Answers the first 2xx; throws an
 * ApiError for any other status (problem JSON: its `code` and `detail`), or when attempts run out.
 */
export async function send<T>(config: Config, method: string, path: string, body: unknown, options: SendOptions): Promise<Answer<T>> {
  const { key, label, maxAttempts = 6, log = () => {} } = options;
  const headers: Record<string, string> = { accept: "application/json", ...authHeaders(key) };
  let payload: string | undefined;
  if (body !== undefined) {
    payload = JSON.stringify(body); // once: every attempt sends exactly these bytes
    headers["content-type"] = "application/json";
  }
  for (let attempt = 1; ; attempt++) {
    let failure: string;
    let retryAfter: string | null = null;
    try {
      const init: RequestInit = { method, headers, signal: AbortSignal.timeout(10_000) };
      if (payload !== undefined) init.body = payload;
      const response = await fetch(config.baseUrl + path, init);
      const text = await response.text();
      if (response.ok) return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
      const problem = parseProblem(text);
      const description = `${response.status} ${problem.code ?? ""}${problem.detail ? `: ${problem.detail}` : ""}`.trim();
      if (!isRetryableStatus(response.status)) throw new ApiError(response.status, problem.code, `${label}: ${description}`);
      if (attempt >= maxAttempts) {
        throw new ApiError(response.status, problem.code, `${label}: still ${description} after ${attempt} attempts`);
      }
      failure = description;
      retryAfter = response.headers.get("retry-after");
    } catch (error) {
      if (error instanceof ApiError) throw error;
      // fetch failed: refused, reset, timed out. The request may or may not have been stored;
      // sending it again is safe either way (201 if it was not, 200 with the stored event if it was).
      const reason = error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
      if (attempt >= maxAttempts) throw new ApiError(0, undefined, `${label}: network error after ${attempt} attempts: ${reason}`);
      failure = `network error (${reason})`;
    }
    const wait = backoffMs(attempt - 1, retryAfter);
    log(`${label}: ${failure}; retrying the same request in ${Math.round(wait)} ms (attempt ${attempt + 1} of ${maxAttempts})`);
    await sleep(wait);
  }
}

/** The `code` and `detail` of a problem JSON body (README "Errors"), if it is one. */
export function parseProblem(text: string): { code?: string; detail?: string } {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === "object" && value !== null) {
      const { code, detail } = value as Record<string, unknown>;
      return {
        ...(typeof code === "string" ? { code } : {}),
        ...(typeof detail === "string" ? { detail } : {}),
      };
    }
  } catch {
    // not problem JSON (a proxy's error page, say)
  }
  return {};
}
