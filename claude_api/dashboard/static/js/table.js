// A table sortable by any column with a keyboard or a pointer; unknown values sort last.
import { h } from "./dom.js";

/**
 * `columns`: {key, label, value(row) for sorting, cell(row) for display, numeric}.
 * `state`: {sort, descending, all} kept by the caller across refreshes; `limit` rows are shown
 * until "show all" is pressed. `onChange()` is called after the state changed.
 */
export function sortableTable({ columns, rows, state, limit = Infinity, caption, onChange, id }) {
  const column = columns.find((c) => c.key === state.sort) || columns[0];
  const sorted = [...rows].sort((a, b) => compare(column.value(a), column.value(b), state.descending));
  const shown = state.all ? sorted : sorted.slice(0, limit);
  const head = columns.map((c) => {
    const sortable = Boolean(c.value);
    const sort = c.key === column.key ? (state.descending ? "descending" : "ascending") : "none";
    const label = sortable
      ? h("button", {
          type: "button",
          onclick: () => {
            state.descending = c.key === column.key ? !state.descending : c.numeric !== false;
            state.sort = c.key;
            onChange();
          },
        }, c.label)
      : c.label;
    return h("th", { scope: "col", class: c.numeric ? "num" : null, "aria-sort": sortable ? sort : null, "data-key": c.key }, label);
  });
  const body = shown.map((row) =>
    h("tr", { "data-name": row.name, "data-kind": row.kind }, columns.map((c) => h("td", { class: c.className || (c.numeric ? "num" : null), "data-key": c.key }, c.cell(row)))),
  );
  const table = h("table", { id }, h("caption", { class: "sr-only" }, caption), h("thead", {}, h("tr", {}, head)), h("tbody", {}, body));
  const more =
    rows.length > limit
      ? h("button", {
          type: "button",
          class: "more",
          "aria-expanded": String(Boolean(state.all)),
          onclick: () => {
            state.all = !state.all;
            onChange();
          },
        }, state.all ? `Show the first ${limit}` : `Show all ${rows.length}`)
      : null;
  return { element: h("div", { class: "table-wrap" }, table, more), shown };
}

function compare(a, b, descending) {
  const aKnown = a !== null && a !== undefined;
  const bKnown = b !== null && b !== undefined;
  if (!aKnown || !bKnown) return aKnown === bKnown ? 0 : aKnown ? -1 : 1;
  const order = typeof a === "string" ? a.localeCompare(b) : a - b;
  return descending ? -order : order;
}
