// An agent's or a skill's page: its figures against the previous period, its history (runs by
// status, cost, success rate), duration percentiles and distribution, the models it ran on, its
// top errors and the recent tasks that used it.
import { ApiError, graphql } from "../api.js";
import { colour, histogram, lines, stackedBars } from "../charts.js";
import { figure, h, link, section } from "../dom.js";
import * as f from "../format.js";
import { USAGE } from "../queries.js";
import { filterOf, href } from "../state.js";
import { cost, errorTable, modelTable, taskTable, tokenDetail } from "./common.js";
import { guardrails } from "./guardrails.js";

export async function render({ where, params, range }) {
  const { kind, name } = where;
  const noun = kind === "AGENT" ? "agent" : "skill";
  const filter = filterOf(params, range.since, range.until);
  const previous = filterOf(params, range.previousSince, range.previousUntil);
  const covering = guardrails(params, kind, name);
  let data;
  let guarding;
  try {
    [data, guarding] = await Promise.all([
      graphql(USAGE, { kind, name, isAgent: kind === "AGENT", filter, previous, period: range.bucket }),
      covering.ask(),
    ]);
  } catch (error) {
    if (error instanceof ApiError && error.code === "NOT_FOUND") {
      return {
        title: name,
        content: [h("h1", {}, name), h("p", { class: "banner", role: "alert" }, `No ${noun} named “${name}” has been recorded.`)],
      };
    }
    throw error;
  }
  const stats = data.agent || data.skill;
  const before = data.previousAgent || data.previousSkill;
  const series = data.history.series;
  const period = range.bucket;
  return {
    title: name,
    tick: covering.tick,
    content: [
      h("h1", {}, h("span", { class: "kind" }, noun), name, " ", h("span", { class: "sub" }, range.label)),
      figures(stats, before),
      ...covering.sections(guarding),
      h("div", { class: "grid2" },
        section("Runs over time", stackedBars({
          title: "Runs per bucket by status",
          starts: series.startAt,
          series: [
            { label: "Completed", values: series.completed, colour: colour(2) },
            { label: "Failed", values: series.failed, colour: colour(5) },
            { label: "Running", values: series.running, colour: colour(4) },
          ],
          format: f.count,
          id: "chart-runs",
          period,
        })),
        section("Cost over time", stackedBars({
          title: "Cost per bucket",
          starts: series.startAt,
          series: [{ label: "Cost", values: series.totalCostUsd, colour: colour(0) }],
          format: f.usd,
          axis: f.usdAxis,
          id: "chart-cost",
          period,
        }))),
      section("Success rate over time", lines({
        title: "Success rate per bucket",
        starts: series.startAt,
        series: [{ label: "Success rate", values: series.successRate, colour: colour(1) }],
        format: f.percent,
        max: 1,
        id: "chart-success",
        period,
      })),
      h("div", { class: "grid2" },
        section("Durations", durations(stats, data.durationHistogram)),
        section("Duration distribution", distribution(name, data.durationHistogram))),
      h("div", { class: "grid2" },
        section("Models", modelTable(data.models.models, `Models ${name} ran on`)),
        section("Top errors", errorTable(stats.topErrors, params, `Top errors of ${name}`))),
      section(
        "Recent tasks",
        taskTable(data.tasks.items, params, `Recent tasks that used ${name}`),
        h("p", {}, link(href("/tasks", params, { kind: noun, name }), `Every task that used ${name} →`)),
      ),
    ],
  };
}

function figures(stats, before) {
  const vs = (text) => (text ? `${text} vs previous` : before.invocations ? "change unknown" : "no earlier data");
  return h(
    "dl",
    { class: "figures" },
    figure({ metric: "invocations", label: "Runs", value: f.count(stats.invocations), exact: stats.invocations, change: vs(f.change(stats.invocations, before.invocations)), detail: stats.running ? `${f.count(stats.running)} running` : null }),
    figure({ metric: "success-rate", label: "Success rate", value: f.percent(stats.successRate), exact: stats.successRate, change: vs(f.pointChange(stats.successRate, before.successRate)), detail: `${f.count(stats.completed)} completed · ${f.count(stats.failed)} failed` }),
    figure({ metric: "cost", label: "Cost", value: f.usd(stats.totalCostUsd), exact: stats.totalCostUsd, change: vs(f.change(stats.totalCostUsd, before.totalCostUsd)), detail: stats.unpricedInvocations ? `${f.count(stats.unpricedInvocations)} unpriced (not in the sum)` : null }),
    figure({ metric: "avg-cost", label: "Average cost", value: f.usd(stats.avgCostUsd), exact: stats.avgCostUsd, detail: "of the runs that report one" }),
    figure({ metric: "per-success", label: "Cost per success", value: f.usd(f.perSuccess(stats.totalCostUsd, stats.completed)), exact: f.perSuccess(stats.totalCostUsd, stats.completed), detail: "all runs' cost / completed runs" }),
    figure({ metric: "p95", label: "p95 duration", value: f.seconds(stats.p95DurationSeconds), exact: stats.p95DurationSeconds, change: vs(f.change(stats.p95DurationSeconds, before.p95DurationSeconds)) }),
    figure({ metric: "tokens", label: "Tokens", value: f.shortCount(stats.totalTokens), exact: stats.totalTokens, title: f.count(stats.totalTokens), change: vs(f.change(stats.totalTokens, before.totalTokens)), detail: tokenDetail(stats) }),
  );
}

function distribution(name, found) {
  if (!found.buckets.length) return h("p", { class: "note" }, "No finished run with a duration in this period.");
  const labels = found.buckets.map((b) => f.durationRange(b.minSeconds, b.maxSeconds));
  return h("div", {},
    histogram({
      title: `Finished runs of ${name} per duration`,
      labels,
      counts: found.buckets.map((b) => b.count),
      edges: found.buckets.map((b) => [b.minSeconds, b.maxSeconds]),
      format: f.count,
      id: "chart-durations",
      colour: colour(0),
      what: "Runs",
    }),
    found.exact
      ? null
      : h("p", { class: "note" }, "From the rollups' duration sketches: a run within 1% of a bin's edge may be counted in the bin beside it."));
}

function durations(stats, found) {
  const row = (label, value, key) => h("tr", { "data-key": key }, h("th", { scope: "row" }, label), h("td", { class: "num", "data-value": value ?? "" }, f.seconds(value)));
  return h(
    "div",
    {},
    h("table", { class: "durations" },
      h("caption", { class: "sr-only" }, "Duration percentiles of finished runs"),
      h("tbody", {},
        row("Median (p50)", stats.p50DurationSeconds, "p50"),
        row("p95", stats.p95DurationSeconds, "p95"),
        row("p99", stats.p99DurationSeconds, "p99"),
        row("Average", stats.avgDurationSeconds, "avg"))),
    h("p", { class: "note" }, `${f.count(found.measured)} finished runs with a duration; first seen ${f.dateTime(stats.firstSeenAt)}, last ${f.dateTime(stats.lastSeenAt)}.`),
  );
}
