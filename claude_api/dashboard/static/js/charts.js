// Charts drawn with uPlot (vendored, loaded as the global `uPlot`), each followed by its numbers
// as a table, for screen readers and for anyone who wants the exact values; trend lines in SVG.
import { h } from "./dom.js";
import { UNKNOWN, bucketStart } from "./format.js";

const PALETTE = ["--c0", "--c1", "--c2", "--c3", "--c4", "--c5", "--c6"];
const HEIGHT = 240;
let plots = [];

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** The colour of the i-th series (Okabe-Ito), and of "other". */
export function colour(index) {
  return css(PALETTE[index % PALETTE.length]);
}

export function otherColour() {
  return css("--other");
}

/** Destroy the charts of the page being replaced. */
export function clearCharts() {
  for (const plot of plots) plot.destroy();
  plots = [];
}

const resizer = new ResizeObserver(() => {
  for (const plot of plots) {
    const width = plot.root.parentElement ? plot.root.parentElement.clientWidth : 0;
    if (width && Math.abs(width - plot.width) > 1) plot.setSize({ width, height: HEIGHT });
  }
});
resizer.observe(document.documentElement);

function axes(format) {
  const stroke = css("--muted");
  const grid = { stroke: css("--grid"), width: 1 };
  return [
    { stroke, grid, ticks: grid },
    { stroke, grid, ticks: grid, size: 64, values: (u, ticks) => ticks.map((t) => format(t)) },
  ];
}

function seconds(iso) {
  return Date.parse(iso) / 1000;
}

/**
 * Bars per bucket, stacked in the order of `series` (the first at the bottom), with a table of
 * the numbers below. `starts` are the buckets' (a history's `series.startAt`); each series has
 * `label`, `values` (one per bucket, null for unknown) and `colour`.
 */
export function stackedBars({ title, starts, series, format, id, axis = format, period = "DAY" }) {
  const chart = h("div", { class: "chart", role: "img", "aria-label": `${title}: chart; the same numbers are in the table below` });
  const table = dataTable(title, starts, series, format, period);
  const wrapper = h("figure", { class: "plot", id, "data-chart": id }, chart, table);
  const x = starts.map(seconds);
  const stacks = [];
  let running = x.map(() => 0);
  for (const one of series) {
    running = running.map((sum, i) => sum + (one.values[i] ?? 0));
    stacks.push(running);
  }
  // Drawn from the top of the stack down: each bar covers the lower part of the one before.
  const order = series.map((_, i) => i).reverse();
  const width = starts.length > 1 ? x[1] - x[0] : 86400;
  const options = {
    width: 600,
    height: HEIGHT,
    scales: {
      x: { time: true, range: (u, min, max) => [min - width * 0.6, max + width * 0.6] },
      y: { range: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] },
    },
    axes: axes(axis),
    legend: { live: true },
    cursor: { points: { show: false } },
    series: [
      { label: "From", value: (u, v) => (v === null ? UNKNOWN : bucketStart(new Date(v * 1000), period)) },
      ...order.map((i) => ({
        label: series[i].label,
        fill: series[i].colour,
        stroke: series[i].colour,
        width: 0,
        points: { show: false },
        paths: window.uPlot.paths.bars({ size: [0.8, 48] }),
        value: (u, v, s, index) => (index === null ? UNKNOWN : format(series[i].values[index])),
      })),
    ],
  };
  const data = [x, ...order.map((i) => stacks[i])];
  requestAnimationFrame(() => draw(options, data, chart));
  return wrapper;
}

/** One line per series over the buckets (null leaves a gap), with its table. */
export function lines({ title, starts, series, format, id, max = null, axis = format, period = "DAY" }) {
  const chart = h("div", { class: "chart", role: "img", "aria-label": `${title}: chart; the same numbers are in the table below` });
  const table = dataTable(title, starts, series, format, period);
  const wrapper = h("figure", { class: "plot", id, "data-chart": id }, chart, table);
  const options = {
    width: 600,
    height: HEIGHT,
    scales: { x: { time: true }, y: { range: (u, min, top) => [0, max ?? (top > 0 ? top * 1.08 : 1)] } },
    axes: axes(axis),
    series: [
      { label: "From", value: (u, v) => (v === null ? UNKNOWN : bucketStart(new Date(v * 1000), period)) },
      ...series.map((one) => ({
        label: one.label,
        stroke: one.colour,
        width: 2,
        spanGaps: false,
        value: (u, v) => format(v),
      })),
    ],
  };
  const data = [starts.map(seconds), ...series.map((one) => one.values)];
  requestAnimationFrame(() => draw(options, data, chart));
  return wrapper;
}

function draw(options, data, chart) {
  if (!chart.isConnected) return; // the page moved on before the frame
  options.width = chart.clientWidth || options.width;
  plots.push(new window.uPlot(options, data, chart));
}

/**
 * A histogram: one bar per bin (`labels`, `counts`), in order, with its table. The bins are
 * the API's (`edges`: each bin's [low, high), in its table's rows as data-min and data-max);
 * the x axis names every bin that has room for its label.
 */
export function histogram({ title, labels, counts, edges = [], format, id, colour, what = "Count" }) {
  const chart = h("div", { class: "chart", role: "img", "aria-label": `${title}: chart; the same numbers are in the table below` });
  const table = h(
    "details",
    { class: "data" },
    h("summary", {}, "Numbers"),
    h("div", { class: "table-wrap" },
      h("table", {},
        h("caption", { class: "sr-only" }, title),
        h("thead", {}, h("tr", {}, h("th", {}, "Bin"), h("th", { class: "num" }, what))),
        h("tbody", {}, labels.map((label, i) =>
          h("tr", { "data-bin": label, "data-min": edges[i]?.[0] ?? "", "data-max": edges[i]?.[1] ?? "" },
            h("td", {}, label),
            h("td", { class: "num", "data-value": counts[i] }, format(counts[i]))))))),
  );
  const wrapper = h("figure", { class: "plot", id, "data-chart": id }, chart, table);
  const x = labels.map((_, i) => i);
  const stroke = css("--muted");
  const grid = { stroke: css("--grid"), width: 1 };
  const options = {
    width: 600,
    height: HEIGHT,
    scales: {
      x: { time: false, range: () => [-0.6, Math.max(0, labels.length - 1) + 0.6] },
      y: { range: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] },
    },
    axes: [
      {
        stroke,
        grid: { show: false },
        ticks: grid,
        // Every bin's label while they fit, else every second, third... one.
        splits: (u) => {
          const room = Math.max(1, Math.floor(u.bbox.width / devicePixelRatio / 84));
          const step = Math.ceil(labels.length / room);
          return x.filter((i) => i % step === 0);
        },
        values: (u, ticks) => ticks.map((t) => labels[t] ?? ""),
      },
      { stroke, grid, ticks: grid, size: 64, values: (u, ticks) => ticks.map((t) => format(t)) },
    ],
    legend: { show: false },
    cursor: { points: { show: false } },
    series: [
      {},
      {
        label: what,
        fill: colour,
        stroke: colour,
        width: 0,
        points: { show: false },
        paths: window.uPlot.paths.bars({ size: [0.85, 80] }),
      },
    ],
  };
  requestAnimationFrame(() => draw(options, [x, counts], chart));
  return wrapper;
}

function dataTable(title, starts, series, format, period) {
  return h(
    "details",
    { class: "data" },
    h("summary", {}, "Numbers"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        {},
        h("caption", { class: "sr-only" }, title),
        h("thead", {}, h("tr", {}, h("th", {}, "From"), series.map((one) => h("th", { class: "num" }, one.label)))),
        h(
          "tbody",
          {},
          starts.map((start, i) =>
            h(
              "tr",
              { "data-start": start },
              h("td", {}, bucketStart(start, period)),
              series.map((one) => h("td", { class: "num", "data-value": one.values[i] ?? "" }, format(one.values[i]))),
            ),
          ),
        ),
      ),
    ),
  );
}

/** A small trend line of `values` (null breaks it); its label reads the values out. */
export function sparkline(values, label) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 100 24");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.dataset.values = values.map((v) => (v === null || v === undefined ? "" : v)).join(",");
  const known = values.filter((v) => v !== null && v !== undefined);
  const top = Math.max(1e-12, ...known);
  const step = values.length > 1 ? 100 / (values.length - 1) : 0;
  let points = [];
  const flush = () => {
    if (points.length === 1) points.push(`${Number(points[0].split(",")[0]) + 1},${points[0].split(",")[1]}`);
    if (points.length) {
      const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      line.setAttribute("points", points.join(" "));
      line.setAttribute("vector-effect", "non-scaling-stroke");
      svg.append(line);
    }
    points = [];
  };
  values.forEach((value, i) => {
    if (value === null || value === undefined) flush();
    else points.push(`${(i * step).toFixed(2)},${(22 - (value / top) * 20).toFixed(2)}`);
  });
  flush();
  return svg;
}
