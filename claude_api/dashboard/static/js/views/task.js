// A task's invocations as a tree (who ran whom, by parent id) with a timeline: each with its own
// cost and the total of everything under it, as the API sums them.
import { ApiError, graphql } from "../api.js";
import { h, link } from "../dom.js";
import * as f from "../format.js";
import { TASK } from "../queries.js";
import { href } from "../state.js";
import { cost, kindBadge, nameLink } from "./common.js";

export async function render({ where, params }) {
  let invocations = [];
  let summary = null;
  try {
    const data = await graphql(TASK, { id: where.id });
    invocations = data.task ? data.task.invocations : [];
    summary = data.task ? data.task.summary : null;
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "NOT_FOUND")) throw error;
  }
  if (!invocations.length) {
    return {
      title: where.id,
      content: [
        h("h1", {}, "Task ", where.id),
        h("p", { class: "banner", role: "alert" }, "No invocation of this task is recorded (or visible to this key)."),
        h("p", {}, link(href("/tasks", params), "← Tasks")),
      ],
    };
  }
  const roots = tree(invocations);
  const span = timeSpan(invocations);
  const rows = [];
  const walk = (node, depth) => {
    rows.push(row(node, depth, span, params));
    for (const child of node.children) walk(child, depth + 1);
  };
  roots.forEach((root) => walk(root, 0));
  const total = { value: summary.totalCostUsd, unpriced: summary.unpricedInvocations };
  return {
    title: `Task ${where.id}`,
    content: [
      h("h1", {}, "Task ", where.id),
      h("p", {},
        `${f.count(invocations.length)} invocations from ${f.dateTime(span.startIso)}; `,
        "total cost ", cost(total.value, total.unpriced), "."),
      h("div", { class: "table-wrap" },
        h("table", { class: "tree", id: "task-tree" },
          h("caption", { class: "sr-only" }, "Invocations of the task, each under the one that ran it"),
          h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, "Invocation"),
            h("th", { scope: "col" }, "Status"),
            h("th", { scope: "col", class: "num" }, "Duration"),
            h("th", { scope: "col", class: "num" }, "Own cost"),
            h("th", { scope: "col", class: "num" }, "With everything under it"),
            h("th", { scope: "col", class: "num hide-narrow" }, "Tokens in / out / cache"),
            h("th", { scope: "col", class: "hide-narrow" }, "Model"),
            h("th", { scope: "col", class: "hide-narrow" }, "Timeline"))),
          h("tbody", {}, rows))),
      h("p", {}, link(href("/tasks", params), "← Tasks")),
    ],
  };
}

const SOURCES = {
  REPORTED: "cost reported by its runner",
  COMPUTED: "cost computed from its model and tokens",
  UNPRICED: "unpriced: its model has no price",
};

/** The invocations as trees by parent id, children in start order; `total` on every node is
 * the cost of its subtree as the API reports it. */
function tree(invocations) {
  const nodes = new Map(invocations.map((inv) => [inv.eventId, { ...inv, children: [] }]));
  const roots = [];
  for (const node of nodes.values()) {
    const parent = node.parentId ? nodes.get(node.parentId) : null;
    if (parent && parent !== node) parent.children.push(node);
    else roots.push(node); // a parent outside this task (or none) makes a root
  }
  const byStart = (a, b) => a.timestamp.localeCompare(b.timestamp) || a.eventId.localeCompare(b.eventId);
  const seen = new Set();
  const total = (node) => {
    if (seen.has(node)) return; // a cycle in bad data: once only
    seen.add(node);
    node.children.sort(byStart);
    node.total = { value: node.totalCostUsd, unpriced: node.unpricedInvocations };
    node.children.forEach(total);
  };
  roots.sort(byStart).forEach(total);
  // Nodes only reachable through a cycle have no root: show them as roots too.
  for (const node of nodes.values()) if (!seen.has(node)) { roots.push(node); total(node); }
  return roots;
}

function timeSpan(invocations) {
  const start = Math.min(...invocations.map((inv) => Date.parse(inv.timestamp)));
  const end = Math.max(...invocations.map((inv) => endOf(inv)));
  return { start, end: Math.max(end, start + 1), startIso: new Date(start).toISOString() };
}

function endOf(inv) {
  if (inv.finishedAt) return Date.parse(inv.finishedAt);
  if (inv.durationSeconds !== null) return Date.parse(inv.timestamp) + inv.durationSeconds * 1000;
  return inv.status === "RUNNING" ? Date.now() : Date.parse(inv.timestamp);
}

function row(node, depth, span, params) {
  const status = node.status.toLowerCase();
  const bar = h("span", { class: status, title: `${f.dateTime(node.timestamp)}, ${f.seconds(node.durationSeconds)}` });
  const start = Date.parse(node.timestamp);
  bar.style.left = `${((start - span.start) / (span.end - span.start)) * 100}%`;
  bar.style.width = `${((endOf(node) - start) / (span.end - span.start)) * 100}%`;
  const name = h("td", { class: "name" },
    h("span", { class: "indent", "aria-hidden": "true" }, depth ? "└ " : ""),
    h("span", { class: "sr-only" }, depth ? `level ${depth + 1}: ` : ""),
    kindBadge(node.kind), nameLink(node.kind, node.name, params),
    node.errorMessage ? h("div", { class: "error" }, node.errorMessage) : null);
  name.style.paddingLeft = `${0.5 + depth * 1.4}em`;
  return h(
    "tr",
    { "data-event": node.eventId, "data-parent": node.parentId || "", "data-depth": depth },
    name,
    h("td", { class: `status-${status}` }, status),
    h("td", { class: "num" }, f.seconds(node.durationSeconds)),
    h("td", { class: "num", "data-key": "own", title: SOURCES[node.costSource] || null }, cost(node.costUsd)),
    h("td", { class: "num", "data-key": "total" }, cost(node.total.value, node.total.unpriced)),
    h("td", { class: "num hide-narrow" },
      `${f.count(node.inputTokens)} / ${f.count(node.outputTokens)}`,
      h("div", { class: "mark" }, `cache read ${f.count(node.cacheReadTokens)} · write ${f.count(node.cacheCreationTokens)}`)),
    h("td", { class: "hide-narrow" }, node.model || f.UNKNOWN),
    h("td", { class: "hide-narrow" }, h("div", { class: "timeline" }, bar)),
  );
}
