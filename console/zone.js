// Time zones and wall clocks, for the overview. The browser's Intl knows the IANA zones; a zone it
// does not know still goes to the service (which answers for itself), the page then only loses the
// alignment of its presets. A step's `start`, as the service writes it (with the zone's offset),
// is read as the wall-clock time it names, so its labels do not depend on the browser knowing the
// zone.

/** The browser's time zone (the default of the zone field). */
export function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

const wallFormatters = new Map();

/** The wall clock in `zone` at the instant `t` (ms): {year, month, day, hour, minute, second}. */
export function wallParts(t, zone) {
  let format = wallFormatters.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
      hour: "numeric", minute: "numeric", second: "numeric",
    });
    wallFormatters.set(zone, format);
  }
  const parts = {};
  for (const { type, value } of format.formatToParts(new Date(t))) parts[type] = Number(value);
  return { year: parts.year, month: parts.month, day: parts.day, hour: parts.hour % 24, minute: parts.minute, second: parts.second };
}

/** Whether the browser knows `zone`. */
export function knownZone(zone) {
  try {
    wallParts(0, zone);
    return true;
  } catch {
    return false;
  }
}

export const wallAsUtc = (w) => Date.UTC(w.year, w.month - 1, w.day, w.hour ?? 0, w.minute ?? 0, w.second ?? 0);

/** The instant (ms) at which the wall clock in `zone` shows `wall` (in a gap: as if it had not jumped). */
export function zonedInstant(wall, zone) {
  const local = wallAsUtc(wall);
  const offsetAt = (t) => wallAsUtc(wallParts(t, zone)) - Math.floor(t / 1000) * 1000;
  const guess = local - offsetAt(local);
  return local - offsetAt(guess);
}

/** An instant as RFC 3339 UTC (no ".000" when whole seconds). */
export function iso(t) {
  return new Date(t).toISOString().replace(".000Z", "Z");
}

/** A datetime-local value (`YYYY-MM-DDTHH:MM[:SS]`) as the instant it names in `zone`; null if it names none. */
export function fromZonedInput(value, zone) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1).map((p) => Number(p ?? 0));
  return iso(zonedInstant({ year, month, day, hour, minute, second }, zone));
}

/** An instant as a datetime-local value in `zone` (to the minute). */
export function toZonedInput(text, zone) {
  const t = Date.parse(text);
  if (Number.isNaN(t)) return "";
  const w = wallParts(t, zone);
  const p = (n) => String(n).padStart(2, "0");
  return `${w.year}-${p(w.month)}-${p(w.day)}T${p(w.hour)}:${p(w.minute)}`;
}

/** The wall-clock date and time a step's `start` (RFC 3339 with the zone's offset) names. */
export function stepWall(start) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(String(start));
  if (!m) return null;
  const [year, month, day, hour, minute] = m.slice(1).map(Number);
  return { year, month, day, hour, minute };
}

// Wall-clock values formatted as they are: a UTC Date holding them, shown in UTC.
const fmt = (options) => new Intl.DateTimeFormat(undefined, { ...options, timeZone: "UTC" });
export const hourLabel = fmt({ hour: "numeric", minute: "2-digit" });
export const dayLabel = fmt({ month: "short", day: "numeric" });
const hourFull = fmt({ weekday: "short", month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
const dayFull = fmt({ weekday: "short", month: "short", day: "numeric", year: "numeric" });

/** A step's start in words: "Tue, Nov 28, 2:00 PM" (hourly) or "Tue, Nov 28, 2026" (daily). */
export function stepText(start, bucket) {
  const w = stepWall(start);
  if (!w) return String(start);
  return (bucket === "hour" ? hourFull : dayFull).format(wallAsUtc(w));
}
