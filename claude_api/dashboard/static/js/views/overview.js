// The overview: headline figures against the previous period, open alerts and budgets, cost and
// invocations over time stacked by the top agents, leaderboards of agents and skills, the most
// frequent errors.
import { graphql } from "../api.js";
import { colour, otherColour, sparkline, stackedBars } from "../charts.js";
import { figure, h, section } from "../dom.js";
import * as f from "../format.js";
import { OVERVIEW } from "../queries.js";
import { filterOf } from "../state.js";
import { sortableTable } from "../table.js";
import { cost, errorTable, histories, nameLink, tokenDetail } from "./common.js";
import { guardrails } from "./guardrails.js";

const SHOWN = 10; // leaderboard rows before "show all"
const boards = {
  AGENT: { sort: "invocations", descending: true, all: false },
  SKILL: { sort: "invocations", descending: true, all: false },
};

export async function render({ params, range }) {
  const filter = filterOf(params, range.since, range.until);
  const previous = filterOf(params, range.previousSince, range.previousUntil);
  const period = range.bucket;
  const covering = guardrails(params);
  const [data, guarding] = await Promise.all([graphql(OVERVIEW, { filter, previous, period }), covering.ask()]);
  const trends = new Map();
  const top = data.topAgents.map((entry) => ["AGENT", entry.name]);
  const agentBoard = leaderboard("AGENT", data.agents, params, filter, period, trends);
  const skillBoard = leaderboard("SKILL", data.skills, params, filter, period, trends);
  await histories([...top, ...agentBoard.wanted(), ...skillBoard.wanted()], filter, period, trends);
  agentBoard.draw();
  skillBoard.draw();
  const { current } = data;
  const total = data.total.series;
  const empty = current.invocations === 0;
  return {
    title: "Overview",
    tick: covering.tick,
    content: [
      h("h1", {}, "Overview ", h("span", { class: "sub" }, range.label)),
      empty
        ? h("p", { class: "note" }, "No invocations in this period. Record some with `claude-api import`, `claude-api hook install` or `claude-api demo`, or pick a longer period.")
        : null,
      headline(current, data.previous),
      ...covering.sections(guarding),
      h("div", { class: "grid2" },
        section("Cost over time", overTime("cost", "Cost", total, top, trends, "totalCostUsd", f.usd, f.usdAxis, period)),
        section("Invocations over time", overTime("invocations", "Invocations", total, top, trends, "invocations", f.count, f.count, period))),
      section("Agents", agentBoard.container, listNote(data.agents)),
      section("Skills", skillBoard.container, listNote(data.skills)),
      section("Most frequent errors", errorTable(current.topErrors, params, "Most frequent errors")),
    ],
  };
}

function headline(current, previous) {
  // "unknown" when a figure of either period is, "no earlier data" when nothing ran before.
  const versus = (text) => (text ? `${text} vs previous` : previous.invocations ? "change unknown" : "no earlier data");
  const unpriced = current.unpricedInvocations;
  return h(
    "dl",
    { class: "figures" },
    figure({ metric: "invocations", label: "Invocations", value: f.count(current.invocations), exact: current.invocations, change: versus(f.change(current.invocations, previous.invocations)), detail: current.running ? `${f.count(current.running)} running` : null }),
    figure({ metric: "success-rate", label: "Success rate", value: f.percent(current.successRate), exact: current.successRate, change: versus(f.pointChange(current.successRate, previous.successRate)), detail: `${f.count(current.completed)} completed · ${f.count(current.failed)} failed` }),
    figure({ metric: "cost", label: "Cost", value: f.usd(current.totalCostUsd), exact: current.totalCostUsd, change: versus(f.change(current.totalCostUsd, previous.totalCostUsd)), detail: unpriced ? `${f.count(unpriced)} invocations unpriced (not in the sum)` : null }),
    figure({ metric: "p95", label: "p95 duration", value: f.seconds(current.p95DurationSeconds), exact: current.p95DurationSeconds, change: versus(f.change(current.p95DurationSeconds, previous.p95DurationSeconds)) }),
    figure({ metric: "tokens", label: "Tokens", value: f.shortCount(current.totalTokens), exact: current.totalTokens, title: f.count(current.totalTokens), change: versus(f.change(current.totalTokens, previous.totalTokens)), detail: tokenDetail(current) }),
  );
}

/**
 * A measure over time, stacked by the top agents; "other" is what the API's total counts beyond
 * them (other agents, and skills), so the stack's height is the API's total of each bucket.
 */
function overTime(id, label, total, top, trends, field, format, axis, period) {
  const series = top.map(([kind, name], i) => ({
    label: name,
    colour: colour(i),
    values: trends.get(`${kind}:${name}`)[field],
  }));
  const other = total[field].map((value, i) => {
    if (value === null || value === undefined) return null;
    const rest = value - series.reduce((sum, one) => sum + (one.values[i] ?? 0), 0);
    return Math.abs(rest) < 1e-9 ? 0 : rest; // float sums of the same costs in another order
  });
  series.push({ label: top.length ? "Other agents and skills" : "All", colour: otherColour(), values: other });
  return stackedBars({ title: `${label} per ${period.toLowerCase()}`, starts: total.startAt, series, format, axis, id: `chart-${id}`, period });
}

function listNote(page) {
  return page.hasNext ? h("p", { class: "note" }, "Showing the first 1,000 by name.") : null;
}

function leaderboard(kind, page, params, filter, period, trends) {
  const state = boards[kind];
  const rows = page.items;
  const container = h("div", { id: `board-${kind.toLowerCase()}` });
  const what = kind === "AGENT" ? "agents" : "skills";
  const columns = [
    { key: "name", label: "Name", value: (r) => r.name, cell: (r) => nameLink(kind, r.name, params), numeric: false, className: "name" },
    { key: "invocations", label: "Runs", value: (r) => r.invocations, cell: (r) => f.count(r.invocations), numeric: true },
    { key: "successRate", label: "Success", value: (r) => r.successRate, cell: (r) => f.percent(r.successRate), numeric: true },
    { key: "totalCostUsd", label: "Cost", value: (r) => r.totalCostUsd, cell: (r) => cost(r.totalCostUsd, r.unpricedInvocations), numeric: true },
    {
      key: "perSuccess",
      label: "Cost / success",
      value: (r) => f.perSuccess(r.totalCostUsd, r.completed),
      cell: (r) => cost(f.perSuccess(r.totalCostUsd, r.completed), r.unpricedInvocations),
      numeric: true,
    },
    { key: "p95", label: "p95", value: (r) => r.p95DurationSeconds, cell: (r) => f.seconds(r.p95DurationSeconds), numeric: true },
    {
      key: "totalTokens",
      label: "Tokens",
      value: (r) => r.totalTokens,
      cell: (r) => h("span", { title: `${f.count(r.totalTokens)} (${tokenDetail(r)})` }, f.shortCount(r.totalTokens)),
      numeric: true,
      className: "num hide-narrow",
    },
    {
      key: "trend",
      label: "Runs over time",
      cell: (r) => {
        const values = trends.get(`${kind}:${r.name}`)?.invocations || [];
        return sparkline(values, `Runs of ${r.name} per ${period.toLowerCase()}: ${values.join(", ")}`);
      },
    },
  ];
  const table = (onChange) =>
    sortableTable({ columns, rows, state, limit: SHOWN, caption: `${what} of the period`, onChange, id: `table-${what}` });
  const draw = () => {
    if (!rows.length) {
      container.replaceChildren(h("p", { class: "note" }, `No ${what} in this period.`));
      return;
    }
    container.replaceChildren(table(redraw).element);
  };
  const redraw = async () => {
    const shown = table(() => {}).shown;
    await histories(shown.map((r) => [kind, r.name]), filter, period, trends);
    draw();
    container.querySelector(`th[data-key="${state.sort}"] button`)?.focus();
  };
  const wanted = () => table(() => {}).shown.map((r) => [kind, r.name]);
  return { container, draw, wanted };
}
