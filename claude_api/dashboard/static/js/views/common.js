// Pieces several pages share: costs that say when they are partial, task rows, error rows.
import { graphql } from "../api.js";
import { h, link } from "../dom.js";
import * as f from "../format.js";
import { TRENDS } from "../queries.js";
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

/** A task's status as the API sums it up, with how many of its invocations run or failed. */
export function taskStatus(task) {
  const status = (task.status || "").toLowerCase();
  const detail = task.running
    ? ` (${f.count(task.running)} running)`
    : task.failed
      ? ` (${f.count(task.failed)} of ${f.count(task.invocations)} failed)`
      : "";
  return h("span", { class: `status-${status}`, "data-status": task.status }, status, h("span", { class: "mark" }, detail));
}

export function nameLink(kind, name, params) {
  return link(href(usagePath(kind, name), params), name);
}

export function kindBadge(kind) {
  return h("span", { class: "kind" }, kind === "SKILL" ? "skill" : "agent");
}

const NAMES_SHOWN = 6; // agents and skills named in a task's row before "+N more"

/** The agents and skills a task used, each a link to its page. */
function usedBy(task, params) {
  const used = [
    ...task.agents.map((name) => ["AGENT", name]),
    ...task.skills.map((name) => ["SKILL", name]),
  ];
  const shown = used.slice(0, NAMES_SHOWN).map(([kind, name], i) => [
    i ? ", " : "",
    h("span", { class: "used", "data-kind": kind, "data-name": name }, kind === "SKILL" ? h("span", { class: "kind" }, "skill") : null, nameLink(kind, name, params)),
  ]);
  const more = used.length > NAMES_SHOWN ? h("span", { class: "mark" }, ` +${used.length - NAMES_SHOWN} more`) : null;
  return [shown, more];
}

/** A table of task summaries, each task id a link to its page, each agent and skill to its. */
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
          h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col", class: "num" }, "Duration"),
          h("th", { scope: "col", class: "hide-narrow" }, "Agents and skills"),
          h("th", { scope: "col", class: "num hide-narrow" }, "Invocations"),
          h("th", { scope: "col", class: "num hide-narrow" }, "Tokens"),
          h("th", { scope: "col", class: "num" }, "Cost")),
      ),
      h(
        "tbody",
        {},
        items.map((task) =>
          h("tr", { "data-task": task.taskId },
            h("td", { class: "name" }, link(href(taskPath(task.taskId), params), task.taskId)),
            h("td", { title: `last start ${f.dateTime(task.lastSeenAt)}` }, f.dateTime(task.firstSeenAt)),
            h("td", { "data-key": "status" }, taskStatus(task)),
            h("td", { class: "num", "data-key": "duration", "data-value": task.durationSeconds ?? "" }, f.seconds(task.durationSeconds)),
            h("td", { class: "name hide-narrow", "data-key": "used" }, usedBy(task, params)),
            h("td", { class: "num hide-narrow", "data-value": task.invocations }, f.count(task.invocations)),
            h("td", { class: "num hide-narrow", title: f.count(task.totalTokens) }, f.shortCount(task.totalTokens)),
            h("td", { class: "num", "data-key": "cost" }, cost(task.totalCostUsd, task.unpricedInvocations))),
        ),
      ),
    ),
  );
}

/** Usage per model: runs, success, cost and tokens; an invocation naming no model says so. */
export function modelTable(models, caption) {
  if (!models.length) return h("p", { class: "note" }, "No invocations in this period.");
  return h(
    "div",
    { class: "table-wrap" },
    h("table", { class: "models", id: "table-models" },
      h("caption", { class: "sr-only" }, caption),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Model"),
        h("th", { scope: "col", class: "num" }, "Runs"),
        h("th", { scope: "col", class: "num" }, "Success"),
        h("th", { scope: "col", class: "num" }, "Cost"),
        h("th", { scope: "col", class: "num hide-narrow" }, "Tokens"))),
      h("tbody", {}, models.map((row) =>
        h("tr", { "data-model": row.model ?? "" },
          h("td", { class: "name" }, row.model ?? h("span", { class: "mark" }, "no model recorded")),
          h("td", { class: "num", "data-key": "invocations", "data-value": row.invocations }, f.count(row.invocations)),
          h("td", { class: "num", "data-key": "successRate", "data-value": row.successRate ?? "" }, f.percent(row.successRate)),
          h("td", { class: "num", "data-key": "cost" }, cost(row.totalCostUsd, row.unpricedInvocations)),
          h("td", { class: "num hide-narrow", title: `${f.count(row.totalTokens)} (${tokenDetail(row)})` }, f.shortCount(row.totalTokens)))))),
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

const NAMES_PER_REQUEST = 100; // the API's bound on the names of one `histories`

/** The histories of [kind, name] pairs over the filter, each as its series (a list per field), by
 * "kind:name": one request for up to 100 agents and 100 skills, those already `known` left out. */
export async function histories(pairs, filter, period, known = new Map()) {
  const missing = { AGENT: [], SKILL: [] };
  for (const [kind, name] of pairs) {
    if (!known.has(`${kind}:${name}`) && !missing[kind].includes(name)) missing[kind].push(name);
  }
  const requests = [];
  for (let start = 0; start < Math.max(missing.AGENT.length, missing.SKILL.length); start += NAMES_PER_REQUEST) {
    const agents = missing.AGENT.slice(start, start + NAMES_PER_REQUEST);
    const skills = missing.SKILL.slice(start, start + NAMES_PER_REQUEST);
    const variables = { filter, period, agents, skills, withAgents: agents.length > 0, withSkills: skills.length > 0 };
    requests.push(graphql(TRENDS, variables).then((data) => {
      for (const [field, kind] of [["agents", "AGENT"], ["skills", "SKILL"]]) {
        for (const history of data[field] || []) known.set(`${kind}:${history.name}`, history.series);
      }
    }));
  }
  await Promise.all(requests);
  return known;
}
