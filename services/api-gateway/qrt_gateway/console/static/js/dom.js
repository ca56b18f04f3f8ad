// Building the page without markup: every piece of text goes in as a text node, so nothing
// a user wrote (program names, logs, results) is ever parsed as HTML.

const SVG = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("a", {href: "#/jobs"}, "Jobs"). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element, the same way. */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG, tag), attrs, children);
}

/** Replace what `el` holds with `children`. */
export function show(el, ...children) {
  el.replaceChildren();
  return fill(el, {}, children);
}

/** A time the API gave (ISO 8601) in the reader's local time, or "—". */
export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return isNaN(date) ? String(iso) : date.toLocaleString();
}

/** Seconds between two ISO times, as "1.2 s". */
export function took(start, end) {
  if (!start || !end) return "";
  const seconds = (new Date(end) - new Date(start)) / 1000;
  return isNaN(seconds) ? "" : `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
}

export function statusBadge(status) {
  return h("span", { class: `status ${status}`, "data-status": status }, status);
}

/** A <dl> of label/value pairs. */
export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}
