// Building the page's elements from data without HTML strings: every text goes in through
// textContent, so nothing a camera name, a roster or a manifest holds can become markup.

export const $ = (id) => document.getElementById(id);

const SVG = "http://www.w3.org/2000/svg";

// el("button", {class: "x", type: "button", onclick: fn, dataset: {id: 1}}, "text", child, ...)
export function el(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  apply(element, attrs);
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }
  return element;
}

export function svg(tag, attrs = {}) {
  const element = document.createElementNS(SVG, tag);
  apply(element, attrs);
  return element;
}

function apply(element, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "text") element.textContent = value;
    else if (name in element && !(element instanceof SVGElement) && name !== "list") element[name] = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
}

export function clear(element) {
  while (element.firstChild) element.removeChild(element.firstChild);
  return element;
}

export function replace(element, ...children) {
  clear(element);
  for (const child of children.flat()) if (child) element.appendChild(child);
  return element;
}

// A table: headers (already translated) and rows of cells (strings or elements).
export function table(headers, rows, className = "grid-table") {
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: className },
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.map((cells) => (cells instanceof HTMLElement ? cells : el("tr", {}, cells.map((c) => el("td", {}, c)))))),
    ),
  );
}
