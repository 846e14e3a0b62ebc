// How times, durations and values are shown. Times are the viewer's local time.

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const timeOnly = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

/** An RFC 3339 time as local date and time; "—" for null. */
export function formatDateTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : dateTime.format(date);
}

/** An RFC 3339 time as local time of day. */
export function formatTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : timeOnly.format(date);
}

/** Milliseconds as "45 s", "3 min 05 s", "2 h 03 min", "3 d 4 h". */
export function formatDuration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return "—";
  const seconds = Math.floor(ms / 1000);
  const pad = (n) => String(n).padStart(2, "0");
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${pad(seconds % 60)} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ${pad(minutes % 60)} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** How long a call lasted, or has lasted so far if it is still open. */
export function callDuration(session, now = Date.now()) {
  const start = Date.parse(session.startedAt);
  const end = session.endedAt ? Date.parse(session.endedAt) : now;
  return formatDuration(end - start);
}

/** A timer in seconds: "off" for 0, else e.g. "3600 s (1 h 00 min)". */
export function formatTimer(seconds) {
  if (!seconds) return "off";
  return seconds < 60 ? `${seconds} s` : `${seconds} s (${formatDuration(seconds * 1000)})`;
}

/** "in 5 min 02 s" or "5 min 02 s ago" from now. */
export function relative(iso, now = Date.now()) {
  const diff = Date.parse(iso) - now;
  return diff >= 0 ? `in ${formatDuration(diff)}` : `${formatDuration(-diff)} ago`;
}

/** A JSON value as text: strings as they are, anything else as JSON. */
export function valueText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

export const TERMINAL = new Set(["completed", "failed"]);
