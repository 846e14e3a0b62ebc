// The overview's charts: SVG built with createElementNS, no library. A chart over the time steps
// (stacked bars and lines on a y axis from 0, the zone's wall-clock times on the x axis) and
// horizontal bars per group. Names (end reasons are client-chosen strings) become text nodes,
// never markup. Text is measured in the page's font, at 12 px: 1 unit = 1 CSS px.

import { dayLabel, hourLabel, stepText, stepWall, wallAsUtc } from "./zone.js";

const SVG_NS = "http://www.w3.org/2000/svg";

/** Numbers as the charts, and the tables under them, show them. */
export const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

/**
 * The y axis: ticks from 0 to a round top at or above `max`. `durations`: steps that read well
 * as times (15 s, 1 min, 5 min, …); else 1, 2, 2.5 or 5 × 10ⁿ, whole numbers only.
 */
export function niceTicks(max, { durations = false, count = 4 } = {}) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  let step;
  if (durations) {
    const candidates = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
    step = candidates.find((s) => s >= raw) ?? Math.ceil(raw / 86400) * 86400;
  } else {
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    step = Math.max(1, [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw));
    if (!Number.isInteger(step)) step = Math.ceil(step);
  }
  const ticks = [];
  for (let v = 0; v < max + step; v += step) {
    ticks.push(v);
    if (v >= max) break;
  }
  return ticks;
}

/** Seconds, short: "45 s", "2 min", "1 min 30 s", "1 h 30 min". */
function shortDuration(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return seconds % 60 ? `${Math.floor(seconds / 60)} min ${seconds % 60} s` : `${seconds / 60} min`;
  const minutes = Math.floor(seconds / 60);
  return minutes % 60 ? `${Math.floor(minutes / 60)} h ${minutes % 60} min` : `${minutes / 60} h`;
}

/** An SVG element: `attrs` set as attributes (null, undefined, false: left out), values as text nodes. */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

let measurer;
let fontFamily;

/** How wide `text` is at the charts' 12 px in the page's font (`weight` 400 or 600). */
function textWidth(text, weight = 400) {
  if (measurer === undefined) {
    measurer = document.createElement("canvas").getContext("2d");
    fontFamily = getComputedStyle(document.documentElement).fontFamily;
  }
  if (!measurer) return String(text).length * 7.5;
  measurer.font = `${weight} 12px ${fontFamily}`;
  return measurer.measureText(String(text)).width;
}

/** `text`, cut with "…" to fit `width` px. */
function fitText(text, width, weight) {
  if (textWidth(text, weight) <= width) return text;
  let n = text.length;
  while (n > 1 && textWidth(`${text.slice(0, n)}…`, weight) > width) n -= 1;
  return `${text.slice(0, n)}…`;
}

/** An <svg role="img"> of `width` × `height` user units (1 unit = 1 CSS px at that width). */
function chartSvg(width, height, label) {
  return svg("svg", { class: "chart-svg", viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": label }, svg("title", {}, label));
}

/**
 * A chart over the time steps: `bars` stacked bottom-up (each {className, name, values}) and
 * `lines` (each {className, name, values}, null: no value, the line breaks), on a y axis from 0.
 */
export function timeChart({ steps, bucket, bars = [], lines = [], width, label, durations = false }) {
  const n = steps.length;
  const stacked = steps.map((_, i) => bars.reduce((sum, b) => sum + (b.values[i] ?? 0), 0));
  const max = Math.max(0, ...stacked, ...lines.flatMap((l) => l.values.filter((v) => v !== null)));
  const ticks = niceTicks(max, { durations });
  const top = ticks[ticks.length - 1];
  const tickText = (v) => (durations ? shortDuration(v) : number.format(v));
  // A second line under the labels: the date under hours, the year under days of several years.
  const twoLines = bucket === "hour" || new Set(steps.map((s) => String(s.start).slice(0, 4))).size > 1;
  const height = width < 480 ? 190 : 230;
  const margin = { top: 10, right: 4, bottom: twoLines ? 38 : 24, left: Math.ceil(Math.max(...ticks.map((t) => textWidth(tickText(t))))) + 12 };
  const plotW = Math.max(10, width - margin.left - margin.right);
  const plotH = height - margin.top - margin.bottom;
  const band = plotW / Math.max(n, 1);
  const x = (i) => margin.left + band * i;
  const y = (v) => margin.top + plotH - (v / top) * plotH;
  const root = chartSvg(width, height, label);

  const grid = svg("g", { class: "grid" });
  for (const t of ticks) {
    grid.append(
      svg("line", { x1: margin.left, x2: width - margin.right, y1: y(t), y2: y(t), class: t === 0 ? "axis" : "gridline" }),
      svg("text", { x: margin.left - 6, y: y(t), dy: "0.35em", "text-anchor": "end" }, tickText(t)),
    );
  }
  root.append(grid);

  const barGroup = svg("g", { class: "bars" });
  const barWidth = Math.max(band * (n > 60 ? 0.9 : 0.7), 0.6);
  steps.forEach((step, i) => {
    let base = 0;
    for (const b of bars) {
      const v = b.values[i] ?? 0;
      if (v <= 0) continue;
      const y0 = y(base);
      const y1 = Math.min(y(base + v), y0 - 1); // a value above 0 is never invisible
      barGroup.append(
        svg("rect", { class: b.className, x: x(i) + (band - barWidth) / 2, y: y1, width: barWidth, height: y0 - y1 },
          svg("title", {}, `${stepText(step.start, bucket)}: ${b.name} ${number.format(v)}`)),
      );
      base += v;
    }
  });
  root.append(barGroup);

  // The lines, then their markers: the later lines' wider (p99 a ring), so that equal values
  // show as concentric marks instead of hiding each other.
  const paths = svg("g", { class: "lines" });
  const marks = svg("g", { class: "markers" });
  const markers = band >= 8;
  const isValue = (v) => v !== null && v !== undefined;
  lines.forEach((line, n) => {
    let d = "";
    const own = [];
    line.values.forEach((v, i) => {
      if (!isValue(v)) return;
      const cx = x(i) + band / 2;
      d += `${isValue(line.values[i - 1]) ? "L" : "M"}${cx.toFixed(1)} ${y(v).toFixed(1)}`;
      const alone = !isValue(line.values[i - 1]) && !isValue(line.values[i + 1]);
      if (markers || alone) own.push(svg("circle", { class: `${line.className} marker`, cx, cy: y(v), r: 2.5 + 1.5 * n }));
    });
    if (d) paths.append(svg("path", { class: line.className, d }));
    marks.prepend(...own);
  });
  root.append(paths, marks);
  root.append(xAxis(steps, bucket, { x, band, width, y: margin.top + plotH, twoLines }));
  return root;
}

/**
 * The x axis's labels: every k-th step, k chosen so they do not touch (hours on multiples of k,
 * so that they read 0:00, 6:00, 12:00…); on `twoLines`, the date under an hour where the date
 * changes, or the year under a day where the year changes.
 */
function xAxis(steps, bucket, { x, band, width, y, twoLines }) {
  const group = svg("g", { class: "x-axis" });
  const walls = steps.map((s) => stepWall(s.start));
  const texts = walls.map((w) => (w ? (bucket === "hour" ? hourLabel : dayLabel).format(wallAsUtc(w)) : ""));
  const dates = walls.map((w) => (!w ? "" : bucket === "hour" ? dayLabel.format(wallAsUtc(w)) : String(w.year)));
  const widths = texts.map((t, i) => Math.max(textWidth(t), twoLines ? textWidth(dates[i], 600) : 0));
  const widest = Math.max(12, ...widths) + 10;
  const choices = bucket === "hour" ? [1, 2, 3, 4, 6, 12, 24, 48, 72, 168] : [1, 2, 3, 7, 14, 28, 56, 91, 182, 364];
  let every = choices.find((k) => k * band >= widest) ?? Math.ceil(widest / band);
  // Hours over many days: only the days are labelled (at midnight), with the date alone.
  const byDay = bucket === "hour" && every >= 24;
  if (byDay) {
    const days = Math.ceil((Math.max(12, ...dates.map((d) => textWidth(d, 600))) + 10) / (24 * band));
    every = [1, 2, 3, 7, 14, 28].find((k) => k >= days) ?? days;
  }
  let midnights = -1;
  const labelled = (i) => {
    if (!walls[i]) return false;
    if (byDay) return walls[i].hour === 0 && (midnights += 1) % every === 0;
    if (bucket === "hour" && 24 % every === 0) return walls[i].hour % every === 0;
    return (steps.length - 1 - i) % every === 0; // days: counted back from the last (today)
  };
  let lastDate = null;
  let lastRight = -Infinity;
  steps.forEach((_, i) => {
    if (!labelled(i)) return;
    const w = (byDay ? textWidth(dates[i], 600) : widths[i]) + 2;
    const center = x(i) + band / 2;
    const cx = Math.min(Math.max(center, w / 2), width - w / 2);
    // Moved in from an edge, a label may come too close to the one before: it is left out.
    if (cx - w / 2 < lastRight + 6) return;
    lastRight = cx + w / 2;
    group.append(
      svg("line", { class: "tick", x1: center, x2: center, y1: y, y2: y + 4 }),
      svg("text", { x: cx, y: y + 16, "text-anchor": "middle", class: byDay ? "date" : null }, byDay ? dates[i] : texts[i]),
    );
    if (twoLines && !byDay && dates[i] !== lastDate) {
      group.append(svg("text", { x: cx, y: y + 31, "text-anchor": "middle", class: "date" }, dates[i]));
    }
    lastDate = dates[i];
  });
  return group;
}

/** Horizontal bars, one per group (each {name, none, value, note}), the name above its bar. */
export function groupChart({ rows, width, label }) {
  const rowH = 40;
  const height = rows.length * rowH + 6;
  const root = chartSvg(width, height, label);
  const max = Math.max(1, ...rows.map((r) => r.value));
  const valueW = Math.max(...rows.map((r) => textWidth(r.note))) + 10;
  const barMax = Math.max(20, width - valueW - 4);
  rows.forEach((r, i) => {
    const top = i * rowH;
    const name = fitText(r.name, width - 2, r.none ? 400 : 600);
    const barW = r.value > 0 ? Math.max(2, (r.value / max) * barMax) : 0;
    root.append(
      svg("g", { class: r.none ? "group none" : "group" },
        svg("title", {}, `${r.name}: ${r.note}`),
        svg("text", { class: "group-name", x: 0, y: top + 13 }, name),
        svg("rect", { class: "bar-reason", x: 0, y: top + 19, width: barW, height: 14, rx: 2 }),
        svg("text", { class: "group-value", x: barW + 6, y: top + 30 }, r.note)),
    );
  });
  return root;
}
