// Pieces several pages share: costs that say when they are partial, task rows, error rows.
import { graphql } from "../api.js";
import { h, link } from "../dom.js";
import * as f from "../format.js";
import { trends } from "../queries.js";
import { href, taskPath, usagePath } from "../state.js";

/** A cost, "–" when unknown, marked when some invocations under it report no cost. */
export function cost(value, unpriced = 0, exact = value) {
  const text = f.usd(value);
  if (!unpriced) return h("span", { "data-value": exact ?? "" }, text);
  const note = `${f.count(unpriced)} unpriced`;
  return h(
    "span",
    { "data-value": exact ?? "", "data-unpriced": unpriced, title: `${note}: the sum leaves out invocations that report no cost` },
    text,
    h("span", { class: "mark" }, value === null || value === undefined ? ` (${note})` : ` + ${note}`),
  );
}

/** Input, output, cache write and cache read tokens, in one line. */
export function tokenDetail(totals) {
  return [
    `input ${f.shortCount(totals.inputTokens)}`,
    `output ${f.shortCount(totals.outputTokens)}`,
    `cache write ${f.shortCount(totals.cacheCreationTokens)}`,
    `cache read ${f.shortCount(totals.cacheReadTokens)}`,
  ].join(" · ");
}

/** The status of a task from its counts: running while any invocation runs. */
export function taskStatus(task) {
  if (task.running) return h("span", { class: "status-running" }, `running (${f.count(task.running)})`);
  if (task.failed) return h("span", { class: "status-failed" }, `${f.count(task.failed)} failed`);
  return h("span", { class: "status-completed" }, "completed");
}

export function nameLink(kind, name, params) {
  return link(href(usagePath(kind, name), params), name);
}

export function kindBadge(kind) {
  return h("span", { class: "kind" }, kind === "SKILL" ? "skill" : "agent");
}

/** A table of task summaries, each task id a link to its page. */
export function taskTable(items, params, caption) {
  if (!items.length) return h("p", { class: "note" }, "No tasks in this period.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "tasks" },
      h("caption", { class: "sr-only" }, caption),
      h(
        "thead",
        {},
        h("tr", {},
          h("th", { scope: "col" }, "Task"),
          h("th", { scope: "col" }, "Started"),
          h("th", { scope: "col", class: "hide-narrow" }, "Last start"),
          h("th", { scope: "col", class: "num" }, "Invocations"),
          h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col", class: "num hide-narrow" }, "Tokens"),
          h("th", { scope: "col", class: "num" }, "Cost")),
      ),
      h(
        "tbody",
        {},
        items.map((task) =>
          h("tr", { "data-task": task.taskId },
            h("td", { class: "name" }, link(href(taskPath(task.taskId), params), task.taskId)),
            h("td", {}, f.dateTime(task.firstSeenAt)),
            h("td", { class: "hide-narrow" }, f.dateTime(task.lastSeenAt)),
            h("td", { class: "num", "data-value": task.invocations }, f.count(task.invocations)),
            h("td", {}, taskStatus(task)),
            h("td", { class: "num hide-narrow", title: f.count(task.totalTokens) }, f.shortCount(task.totalTokens)),
            h("td", { class: "num" }, cost(task.totalCostUsd, task.unpricedInvocations))),
        ),
      ),
    ),
  );
}

/** The most frequent errors, each agent or skill a link. */
export function errorTable(errors, params, caption) {
  if (!errors.length) return h("p", { class: "note" }, "No failures with a message in this period.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "errors" },
      h("caption", { class: "sr-only" }, caption),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Agent or skill"),
        h("th", { scope: "col" }, "Error"),
        h("th", { scope: "col", class: "num" }, "Failures"))),
      h(
        "tbody",
        {},
        errors.map((error) =>
          h("tr", {},
            h("td", { class: "name" }, kindBadge(error.kind), nameLink(error.kind, error.name, params)),
            h("td", { class: "name" }, error.errorMessage),
            h("td", { class: "num", "data-value": error.count }, f.count(error.count))),
        ),
      ),
    ),
  );
}

const ALIASES_PER_REQUEST = 15; // the API's bound on aliases in one document

/** The histories of [kind, name] pairs over the filter, by "kind:name", 15 to a request. */
export async function histories(pairs, filter, period, known = new Map()) {
  const missing = [...new Map(pairs.map(([kind, name]) => [`${kind}:${name}`, [kind, name]])).values()]
    .filter(([kind, name]) => !known.has(`${kind}:${name}`));
  const chunks = [];
  for (let start = 0; start < missing.length; start += ALIASES_PER_REQUEST) {
    chunks.push(missing.slice(start, start + ALIASES_PER_REQUEST));
  }
  await Promise.all(chunks.map(async (chunk) => {
    const variables = { filter, period };
    chunk.forEach(([kind, name], i) => {
      variables[`k${i}`] = kind;
      variables[`n${i}`] = name;
    });
    const data = await graphql(trends(chunk.length), variables);
    chunk.forEach(([kind, name], i) => known.set(`${kind}:${name}`, data[`h${i}`].buckets));
  }));
  return known;
}
