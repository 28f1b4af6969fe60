// Numbers as people read them. Unknown (null) is shown as "–", never as 0.

export const UNKNOWN = "–";
const counts = new Intl.NumberFormat(undefined);
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
const dollars = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD" });
const cents = new Intl.NumberFormat(undefined, {
  style: "currency", currency: "USD", minimumFractionDigits: 4, maximumFractionDigits: 4,
});
const axisDollars = new Intl.NumberFormat(undefined, {
  style: "currency", currency: "USD", minimumFractionDigits: 0, maximumFractionDigits: 2,
});
const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const day = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const hour = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });

const known = (value) => value !== null && value !== undefined && !Number.isNaN(value);

export function count(value) {
  return known(value) ? counts.format(value) : UNKNOWN;
}

export function shortCount(value) {
  return known(value) ? compact.format(value) : UNKNOWN;
}

/** Dollars: two decimals from $1, four below (an agent's run often costs a fraction of a cent). */
export function usd(value) {
  if (!known(value)) return UNKNOWN;
  return Math.abs(value) >= 1 || value === 0 ? dollars.format(value) : cents.format(value);
}

/** Dollars on a chart's axis: no more decimals than the ticks need. */
export function usdAxis(value) {
  return known(value) ? axisDollars.format(value) : "";
}

export function percent(rate) {
  return known(rate) ? `${(rate * 100).toFixed(1)}%` : UNKNOWN;
}

export function seconds(value) {
  if (!known(value)) return UNKNOWN;
  if (value < 10) return `${value.toFixed(2)} s`;
  if (value < 60) return `${value.toFixed(1)} s`;
  const s = Math.round(value);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export function dateTime(iso) {
  return iso ? when.format(new Date(iso)) : UNKNOWN;
}

export function date(value) {
  return value ? day.format(value instanceof Date ? value : new Date(value)) : UNKNOWN;
}

/** The start of a chart's bucket: its date, and its time of day for an hour's. */
export function bucketStart(value, period = "DAY") {
  if (!value) return UNKNOWN;
  const moment = value instanceof Date ? value : new Date(value);
  return period === "HOUR" ? hour.format(moment) : day.format(moment);
}

/** A duration bucket's edge, as a number and its unit: [500, "ms"], [20, "s"], or [text, ""]. */
function edgeParts(value) {
  if (value < 1) return [Math.round(value * 1e6) / 1e3, "ms"];
  if (value < 1000) return [counts.format(value), "s"];
  return [seconds(value), ""];
}

export function durationEdge(value) {
  const [number, unit] = edgeParts(value);
  return unit ? `${number} ${unit}` : number;
}

/** A duration bucket [min, max) in words: "20–50 s", "500 ms – 1 s", "< 1 ms", "≥ 50 s". */
export function durationRange(min, max) {
  if (max === null || max === undefined) return `≥ ${durationEdge(min)}`;
  if (min === 0) return `< ${durationEdge(max)}`;
  const [low, lowUnit] = edgeParts(min);
  const [high, highUnit] = edgeParts(max);
  if (lowUnit && lowUnit === highUnit) return `${low}–${high} ${lowUnit}`;
  return `${durationEdge(min)} – ${durationEdge(max)}`;
}

/** The relative change of a figure against the previous period, as text ("+12.0%"). */
export function change(current, previous) {
  if (!known(current) || !known(previous) || previous === 0) return null;
  const relative = (current - previous) / Math.abs(previous);
  return `${relative >= 0 ? "+" : "−"}${Math.abs(relative * 100).toFixed(1)}%`;
}

/** The change of a rate, in percentage points ("+2.5 pp"). */
export function pointChange(current, previous) {
  if (!known(current) || !known(previous)) return null;
  const points = (current - previous) * 100;
  return `${points >= 0 ? "+" : "−"}${Math.abs(points).toFixed(1)} pp`;
}

/** Cost per completed run: everything its runs cost, failures included, per success. */
export function perSuccess(totalCost, completed) {
  return known(totalCost) && completed > 0 ? totalCost / completed : null;
}
