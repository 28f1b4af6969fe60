// The dashboard's shell: draws the page the URL names, keeps the header's period and project in
// the URL, asks for a read key when the server wants one, and redraws the page when the data
// version says the data changed (a poll answered 304 while nothing did).
import { ApiError, dataVersion, forgetKey, keyRequired, storeKey, storedKey } from "./api.js";
import { clearCharts } from "./charts.js";
import { banner, h } from "./dom.js";
import { isoDay, range, route } from "./state.js";
import * as overview from "./views/overview.js";
import * as task from "./views/task.js";
import * as tasks from "./views/tasks.js";
import * as usage from "./views/usage.js";

const POLL_MS = 3000;
const TICK_MS = 30000; // a page's own refresh of what changes with the clock (budgets, alerts)
const views = { overview, usage, tasks, task };
const main = document.getElementById("main");
const form = document.getElementById("filters");
const live = document.getElementById("live");
const keyButton = document.getElementById("key-button");
let version = null; // the data version read before the page's queries, as an ETag
let generation = 0; // renders started; only the latest may draw
let failures = 0;
let tick = null; // the page's own refresh, if it has one
let ticked = 0; // when it last ran (or the page was drawn)

async function render({ refresh = false } = {}) {
  const mine = ++generation;
  tick = null;
  const params = new URLSearchParams(location.search);
  const where = route(location);
  const period = range(params);
  syncControls(params, where, period);
  const view = views[where.page];
  try {
    if (!view) throw new ApiError(`There is no page at ${location.pathname}.`);
    const seen = (await dataVersion(null)).etag; // first: a write after it shows at the next poll
    const page = await view.render({ where, params, range: period });
    if (mine !== generation) return;
    version = seen;
    tick = page.tick || null;
    ticked = performance.now();
    show(page, refresh);
    if (period.problem) main.prepend(banner(period.problem));
    if (refresh) live.textContent = `Live · updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof ApiError && error.status === 401) {
      forgetKey();
      if (await askKey("That key was refused: it is invalid or revoked.")) return render();
      return show({ title: "API key needed", content: [keyNeeded()] });
    }
    show({ title: "Problem", content: [banner(messageOf(error)), error.code === "FORBIDDEN" ? keyNeeded() : null] });
  }
}

function messageOf(error) {
  if (error instanceof ApiError) return error.message;
  return `The page could not be drawn: ${error.message}`;
}

function show({ title, content }, refresh = false) {
  const open = refresh ? [...main.querySelectorAll("details[open]")].map((d) => d.closest("[id]")?.id) : [];
  clearCharts();
  main.replaceChildren(...content.filter(Boolean));
  for (const id of open) if (id) document.getElementById(id)?.querySelector("details")?.setAttribute("open", "");
  document.title = `${title} · claude-api analytics`;
}

function keyNeeded() {
  return h("p", {}, h("button", { type: "button", onclick: async () => (await askKey()) && render() }, "Enter a read key"));
}

function syncControls(params, where, period) {
  form.period.value = period.period;
  document.getElementById("custom-range").hidden = period.period !== "custom";
  form.from.value = isoDay(period.since);
  const last = new Date(period.until);
  last.setDate(last.getDate() - 1);
  form.to.value = isoDay(last);
  form.project.value = params.get("project") || "";
  for (const a of document.querySelectorAll("nav a[data-page]")) {
    const current = a.dataset.page === where.page || (a.dataset.page === "tasks" && where.page === "task");
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  keyButton.hidden = !storedKey();
}

function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  window.scrollTo(0, 0);
  render().then(() => main.focus({ preventScroll: true }));
}

document.addEventListener("click", (event) => {
  const a = event.target.closest("a[data-nav]");
  if (!a || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(a.href);
  if (url.origin !== location.origin) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener("popstate", () => render());
// A page's own form (the task search) goes where it says through here, like a link.
window.addEventListener("dashboard:navigate", (event) => navigate(event.detail));

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const params = new URLSearchParams(location.search);
  for (const name of ["period", "from", "to", "project", "after"]) params.delete(name);
  const period = form.period.value;
  params.set("period", period);
  if (period === "custom") {
    params.set("from", form.from.value);
    params.set("to", form.to.value);
  }
  const project = form.project.value.trim();
  if (project) params.set("project", project);
  navigate(`${location.pathname}?${params}`);
});

form.period.addEventListener("change", () => {
  const custom = form.period.value === "custom";
  document.getElementById("custom-range").hidden = !custom;
  if (custom) form.from.focus();
  else form.requestSubmit();
});

keyButton.addEventListener("click", async () => {
  forgetKey();
  keyButton.hidden = true;
  if (await askKey()) render();
  else show({ title: "API key needed", content: [keyNeeded()] });
});

/** Ask for a read key in a modal dialog; whether one was given. */
function askKey(problem = null) {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  const note = document.getElementById("key-problem");
  note.hidden = !problem;
  note.textContent = problem || "";
  input.value = "";
  return new Promise((resolve) => {
    const keyForm = document.getElementById("key-form");
    const submitted = (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      storeKey(key);
      dialog.close();
    };
    keyForm.addEventListener("submit", submitted);
    dialog.addEventListener(
      "close",
      () => {
        keyForm.removeEventListener("submit", submitted);
        keyButton.hidden = !storedKey();
        resolve(Boolean(storedKey()));
      },
      { once: true },
    );
    dialog.showModal();
    input.focus();
  });
}

let polling = null; // the next poll's timer
let asking = false; // a poll under way

async function poll() {
  if (asking) return;
  clearTimeout(polling);
  asking = true;
  let wait = POLL_MS;
  try {
    if (!document.hidden && version !== null) {
      const now = await dataVersion(version);
      failures = 0;
      if (now.changed) {
        const started = performance.now();
        await render({ refresh: true });
        // While data keeps changing, a page slow to compute is redrawn less often.
        wait = Math.max(POLL_MS, 3 * (performance.now() - started));
      } else if (tick && performance.now() - ticked >= TICK_MS) {
        ticked = performance.now();
        await tick();
      }
    }
  } catch (error) {
    failures += 1; // the server restarting, say: try again later, less often
    wait = Math.min(60000, POLL_MS * 2 ** failures);
    if (error instanceof ApiError && error.status === 401) await render(); // asks for a key
  } finally {
    asking = false;
    polling = setTimeout(poll, wait);
  }
}

// Back to a hidden tab: look at once rather than at the next tick.
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) poll();
});

async function start() {
  if ((await keyRequired()) && !storedKey() && !(await askKey())) {
    show({ title: "API key needed", content: [keyNeeded()] });
  } else {
    await render();
  }
  live.textContent = "Live";
  polling = setTimeout(poll, POLL_MS);
}

start();
