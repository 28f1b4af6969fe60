// Building DOM without HTML strings: every name from the data is text, never markup.

/** An element: `h("a", {href: "/"}, "text", child)`; null children are skipped. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A link that the app follows without reloading the page. */
export function link(href, ...children) {
  return h("a", { href, "data-nav": true }, ...children);
}

export function section(title, ...children) {
  return h("section", {}, h("h2", {}, title), ...children);
}

/** A figure of a headline: label, value (its exact number in data-value), change and detail. */
export function figure({ metric, label, value, exact, change, detail, title }) {
  return h(
    "div",
    { class: "figure", "data-metric": metric },
    h("dt", {}, label),
    h(
      "dd",
      {},
      h("span", { class: "value", "data-value": exact ?? "", title }, value),
      change ? h("span", { class: "change" }, change) : null,
      detail ? h("span", { class: "detail" }, detail) : null,
    ),
  );
}

export function banner(message) {
  return h("p", { class: "banner", role: "alert" }, message);
}
