// Budgets in their current period and the open alerts, as the API reports them: each names what
// it covers with a link to that agent's, skill's or project's page; a spent budget and a forecast
// past the limit are said in words and marked, not told by colour alone.
import { graphql } from "../api.js";
import { h, link } from "../dom.js";
import * as f from "../format.js";
import { GUARDRAILS } from "../queries.js";
import { href, usagePath } from "../state.js";

/**
 * The budgets and open alerts covering the URL's project (and `kind` and `name`, on an agent's
 * or skill's page): `ask()` asks for them, `sections(answer)` draws them, and `tick()` asks again
 * and redraws them in place, as they change with the clock (a new day, an alert resolving) and
 * not only with the data. Their answer is asked apart from the analytics', which is kept until
 * the data changes.
 */
export function guardrails(params, kind = null, name = null) {
  const variables = { projectId: params.get("project") || null, kind, name };
  const ask = () => graphql(GUARDRAILS, variables);
  return {
    ask,
    sections: (answer) => [
      h("section", { id: "alerts" }, h("h2", {}, "Open alerts"), alertTable(answer.alertRules, params)),
      h("section", { id: "budgets" },
        h("h2", {}, "Budgets ", h("span", { class: "sub" }, "in their current period")),
        budgetTable(answer.budgetStatus, params)),
    ],
    tick: async () => {
      const now = await ask();
      document.querySelector("#alerts > .table-wrap, #alerts > p")?.replaceWith(alertTable(now.alertRules, params));
      document.querySelector("#budgets > .table-wrap, #budgets > p")?.replaceWith(budgetTable(now.budgetStatus, params));
    },
  };
}

/** Where a budget's or a rule's scope is shown: its agent or skill, else its project. */
function scopeLink(scope, label, params) {
  const extra = scope.projectId ? { project: scope.projectId } : {};
  if (scope.name) {
    // A budget or rule of a name without a kind covers it as an agent and as a skill: the
    // agent's page, where most such names are.
    return link(href(usagePath(scope.kind || "AGENT", scope.name), params, extra), label);
  }
  if (scope.projectId && scope.projectId !== params.get("project")) {
    return link(href("/", params, extra), label);
  }
  return h("span", {}, label);
}

/** A budget's amount in its unit: dollars or tokens; unknown as "–". */
function amount(unit, value) {
  return unit === "TOKENS" ? f.count(value) : f.usd(value);
}

function limitOf(budget) {
  return budget.unit === "TOKENS" ? budget.limitTokens : budget.limitUsd;
}

/** Where a budget stands: spent, on pace to pass its limit, or within it. */
function standing(status) {
  if (status.exhausted) return { key: "spent", text: "Spent", className: "over" };
  const limit = limitOf(status.budget);
  if (status.forecast !== null && limit !== null && status.forecast > limit) {
    return { key: "pace", text: "On pace to pass", className: "pace" };
  }
  if (status.spent === null) return { key: "unknown", text: "Unknown", className: null };
  return { key: "within", text: "Within", className: null };
}

/** The budgets in their current period, spent ones first as the API orders them. */
export function budgetTable(statuses, params) {
  if (!statuses.length) {
    return h("p", { class: "note" }, "No budget covers these invocations. `claude-api budgets set` sets one.");
  }
  return h(
    "div",
    { class: "table-wrap" },
    h("table", { class: "budgets", id: "table-budgets" },
      h("caption", { class: "sr-only" }, "Budgets in their current period"),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Budget"),
        h("th", { scope: "col" }, "Standing"),
        h("th", { scope: "col", class: "num" }, "Spent"),
        h("th", { scope: "col", class: "num" }, "Limit"),
        h("th", { scope: "col", class: "num" }, "Remaining"),
        h("th", { scope: "col", class: "num" }, "Forecast"),
        h("th", { scope: "col" }, "Action"),
        h("th", { scope: "col", class: "hide-narrow" }, "Period ends"))),
      h("tbody", {}, statuses.map((status) => {
        const { budget } = status;
        const stand = standing(status);
        const unpriced = budget.unit === "USD" && status.unpricedInvocations
          ? h("span", { class: "mark", title: "left out of the spend: they report no cost" }, ` + ${f.count(status.unpricedInvocations)} unpriced`)
          : null;
        return h("tr", { class: stand.className, "data-budget": budget.id, "data-standing": stand.key, title: status.message },
          h("td", { class: "name" }, scopeLink(budget, budget.label, params)),
          h("td", { "data-key": "standing" }, h("span", { class: `standing ${stand.className || ""}` }, stand.text)),
          h("td", { class: "num", "data-key": "spent", "data-value": status.spent ?? "" }, amount(budget.unit, status.spent), unpriced),
          h("td", { class: "num", "data-key": "limit", "data-value": limitOf(budget) ?? "" }, amount(budget.unit, limitOf(budget))),
          h("td", { class: "num", "data-key": "remaining", "data-value": status.remaining ?? "" }, amount(budget.unit, status.remaining)),
          h("td", { class: "num", "data-key": "forecast", "data-value": status.forecast ?? "" }, amount(budget.unit, status.forecast)),
          h("td", { "data-key": "action" }, budget.action.toLowerCase()),
          h("td", { class: "hide-narrow", title: budget.tz }, f.dateTime(status.endAt)));
      }))),
  );
}

const MEASURES = {
  FAILURE_RATE: { label: "failure rate", format: f.percent },
  COST: { label: "cost", format: f.usd },
  P95_DURATION: { label: "p95 duration", format: f.seconds },
};

/** A window in seconds as people say it: "15 min", "1 h", "7 days". */
function window(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} ${seconds === 86400 ? "day" : "days"}`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** The rules firing now, each with its measure at the last evaluation against its threshold. */
export function alertTable(rules, params) {
  if (!rules.length) return h("p", { class: "note", id: "no-alerts" }, "No open alerts.");
  return h(
    "div",
    { class: "table-wrap" },
    h("table", { class: "alerts", id: "table-alerts" },
      h("caption", { class: "sr-only" }, "Alert rules firing now"),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Alert"),
        h("th", { scope: "col", class: "num" }, "Now"),
        h("th", { scope: "col", class: "num hide-narrow" }, "Threshold"),
        h("th", { scope: "col", class: "hide-narrow" }, "Window"),
        h("th", { scope: "col" }, "Firing since"))),
      h("tbody", {}, rules.map((rule) => {
        const measure = MEASURES[rule.metric] || { label: rule.metric.toLowerCase(), format: f.count };
        return h("tr", { class: "over", "data-rule": rule.id },
          h("td", { class: "name" }, h("span", { class: "standing over" }, "Firing"), " ", scopeLink(rule, rule.label, params)),
          h("td", { class: "num", "data-key": "value", "data-value": rule.value ?? "" }, measure.format(rule.value)),
          h("td", { class: "num hide-narrow", "data-key": "threshold", "data-value": rule.threshold }, measure.format(rule.threshold)),
          h("td", { class: "hide-narrow", title: measure.label }, `last ${window(rule.windowSeconds)}`),
          h("td", {}, f.dateTime(rule.changedAt)));
      }))),
  );
}
