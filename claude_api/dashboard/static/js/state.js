// What a view shows is its URL: the path names the page, the query string its period and filters,
// so every view can be bookmarked and shared.

export const TZ = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
export const PERIODS = ["24h", "7d", "30d", "90d", "custom"];
export const DEFAULT_PERIOD = "7d";
const DAYS = { "7d": 7, "30d": 30, "90d": 90 };
// Query parameters carried from page to page; the others belong to one page.
const SHARED = ["period", "from", "to", "project"];

/** The page a location names: {page, kind, name, id}. */
export function route(location) {
  const parts = location.pathname.split("/").filter(Boolean);
  const rest = () => decodeURIComponent(parts.slice(1).join("/"));
  if (parts.length === 0) return { page: "overview" };
  if (parts[0] === "agents" && parts.length > 1) return { page: "usage", kind: "AGENT", name: rest() };
  if (parts[0] === "skills" && parts.length > 1) return { page: "usage", kind: "SKILL", name: rest() };
  if (parts[0] === "tasks" && parts.length === 1) return { page: "tasks" };
  if (parts[0] === "tasks") return { page: "task", id: rest() };
  return { page: "missing" };
}

/** The path of an agent's or skill's page. */
export function usagePath(kind, name) {
  return `/${kind === "SKILL" ? "skills" : "agents"}/${encodeURIComponent(name)}`;
}

export function taskPath(id) {
  return `/tasks/${encodeURIComponent(id)}`;
}

/** `path` with the shared parameters of `params` and `extra` (null or "" removes one). */
export function href(path, params, extra = {}) {
  const query = new URLSearchParams();
  for (const key of SHARED) if (params.get(key)) query.set(key, params.get(key));
  for (const [key, value] of Object.entries(extra)) {
    if (value === null || value === undefined || value === "") query.delete(key);
    else query.set(key, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

function localDay(text) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text || "");
  if (!match) return null;
  const day = new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  return Number.isNaN(day.getTime()) ? null : day;
}

function addDays(day, days) {
  // Calendar arithmetic in the browser's zone: a day across a DST change is 23 or 25 hours.
  return new Date(day.getFullYear(), day.getMonth(), day.getDate() + days);
}

export function isoDay(day) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${day.getFullYear()}-${pad(day.getMonth() + 1)}-${pad(day.getDate())}`;
}

/** A period's name with the time zone its days and hours are in. */
function zoned(text) {
  return `${text} · ${TZ}`;
}

/**
 * The range a URL's period names, and the one before it of the same length, as Dates; the
 * bucket (HOUR, DAY, WEEK or MONTH) of its charts; `problem` when the custom range is unusable.
 * Days are the browser's, its time zone named in the label: 7 days are today and the 6 before,
 * to the end of today.
 */
export function range(params, now = new Date()) {
  let period = params.get("period") || DEFAULT_PERIOD;
  let problem = null;
  if (!PERIODS.includes(period)) {
    problem = `unknown period ${JSON.stringify(period)}: showing the last 7 days`;
    period = DEFAULT_PERIOD;
  }
  if (period === "custom") {
    const from = localDay(params.get("from"));
    const to = localDay(params.get("to"));
    if (from && to && from <= to) {
      const days = Math.round((addDays(to, 1) - from) / 86400000);
      return {
        period, label: zoned(`${isoDay(from)} to ${isoDay(to)}`),
        since: from, until: addDays(to, 1),
        previousSince: addDays(from, -days), previousUntil: from,
        bucket: days > 730 ? "MONTH" : days > 120 ? "WEEK" : days > 2 ? "DAY" : "HOUR",
      };
    }
    problem = "a custom range needs a From date on or before its To date: showing the last 7 days";
    period = DEFAULT_PERIOD;
  }
  if (period === "24h") {
    const until = new Date(now);
    until.setMinutes(60, 0, 0); // the end of this hour, so answers stay the same within it
    const since = new Date(until - 86400000);
    return {
      period, label: zoned("last 24 hours"), problem, since, until,
      previousSince: new Date(since - 86400000), previousUntil: since, bucket: "HOUR",
    };
  }
  const days = DAYS[period];
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const since = addDays(today, 1 - days);
  return {
    period, label: zoned(`last ${days} days`), problem, since, until: addDays(today, 1),
    previousSince: addDays(since, -days), previousUntil: since, bucket: "DAY",
  };
}

/** The GraphQL UsageFilterInput of [since, until) with the URL's project. */
export function filterOf(params, since, until, extra = {}) {
  const filter = { since: since.toISOString(), until: until.toISOString(), tz: TZ, ...extra };
  const project = params.get("project");
  if (project) filter.projectId = project;
  return filter;
}
