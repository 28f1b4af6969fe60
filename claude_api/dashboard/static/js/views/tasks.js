// Tasks of the period, most recent first, 50 a page: narrowed to those that used an agent or a
// skill, or those with an invocation of a status; a task id opens its page.
import { graphql } from "../api.js";
import { h, link } from "../dom.js";
import { TASKS } from "../queries.js";
import { filterOf, href, taskPath } from "../state.js";
import { taskTable } from "./common.js";

const KINDS = { agent: "AGENT", skill: "SKILL" };
const STATUSES = { completed: "COMPLETED", failed: "FAILED", running: "RUNNING" };

export async function render({ params, range }) {
  const name = params.get("name") || null;
  const kind = KINDS[params.get("kind")] || null;
  const status = STATUSES[params.get("status")] || null;
  const after = params.get("after") || null;
  const filter = filterOf(params, range.since, range.until, status ? { status } : {});
  const data = await graphql(TASKS, { kind, name: name, filter, after });
  const page = data.tasks;
  const narrowed = [name ? `using ${name}` : null, status ? `with ${params.get("status")} invocations` : null]
    .filter(Boolean).join(", ");
  return {
    title: "Tasks",
    content: [
      h("h1", {}, "Tasks ", h("span", { class: "sub" }, `${range.label}${narrowed ? `, ${narrowed}` : ""}`)),
      searchBar(params, data.names),
      taskTable(page.items, params, "Tasks, most recent first"),
      h("nav", { class: "pager", "aria-label": "Pages of tasks" },
        after ? link(href("/tasks", params, pageParams(params, null)), "← First page") : null,
        page.hasNext ? link(href("/tasks", params, pageParams(params, page.nextCursor)), "Next page →") : null),
    ],
  };
}

function pageParams(params, after) {
  return { kind: params.get("kind"), name: params.get("name"), status: params.get("status"), after };
}

function searchBar(params, names) {
  const choose = (id, label, options, value) =>
    h("label", {}, label, h("select", { id, name: id },
      options.map(([v, text]) => h("option", { value: v, selected: v === (value || "") }, text))));
  const form = h(
    "form",
    {
      class: "searchbar",
      role: "search",
      "aria-label": "Find tasks",
      onsubmit: (event) => {
        event.preventDefault();
        const id = form.querySelector("#task-id").value.trim();
        const target = id
          ? href(taskPath(id), params)
          : href("/tasks", params, {
              name: form.querySelector("#task-name").value.trim(),
              kind: form.querySelector("#task-kind").value,
              status: form.querySelector("#task-status").value,
              after: null,
            });
        window.dispatchEvent(new CustomEvent("dashboard:navigate", { detail: target }));
      },
    },
    h("label", {}, "Agent or skill",
      h("input", { id: "task-name", type: "search", list: "task-names", value: params.get("name") || "", autocomplete: "off", spellcheck: "false" })),
    h("datalist", { id: "task-names" }, names.map((n) => h("option", { value: n }))),
    choose("task-kind", "Kind", [["", "either"], ["agent", "agent"], ["skill", "skill"]], params.get("kind")),
    choose("task-status", "With an invocation", [["", "of any status"], ["completed", "completed"], ["failed", "failed"], ["running", "running"]], params.get("status")),
    h("label", {}, "Or open task id", h("input", { id: "task-id", type: "search", autocomplete: "off", spellcheck: "false" })),
    h("button", { type: "submit" }, "Search"),
  );
  return form;
}
