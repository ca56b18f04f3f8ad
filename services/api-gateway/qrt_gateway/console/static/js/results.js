// A program's output as a person wants to see it: counts as a histogram, expectation values
// as a plot, anything else as formatted JSON.

import { h } from "./dom.js";
import { histogram, linePlot } from "./charts.js";

const OUTCOME = /^(0x[0-9a-fA-F]+|[01]+( [01]+)*)$/;
const EXPECTATIONS = /^(evs|expectation_values|expectation_value|values|energies|energy)$/i;

/** Text the API gave (JSON text, maybe JSON text inside a JSON string) as a value. */
export function decode(text) {
  let value = text;
  for (let i = 0; i < 2 && typeof value === "string"; i++) {
    try {
      value = JSON.parse(value);
    } catch {
      break;
    }
  }
  return value;
}

function isCounts(value) {
  if (!value || typeof value !== "object" || Array.isArray(value)) return false;
  const entries = Object.entries(value);
  return entries.length > 0 && entries.every(([k, v]) => OUTCOME.test(k) && Number.isInteger(v) && v >= 0);
}

function isNumbers(value) {
  return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "number");
}

// How deep the charts look for counts; a result nested deeper is shown as JSON only (a
// program may publish a string such as "[[[[...]]]]" a hundred thousand levels deep).
const MAX_DEPTH = 32;

/** Every counts dict in `value` (depth first, at most `limit`), with where it was found. */
export function findCounts(value, path = "result", found = [], limit = 8, depth = 0) {
  if (found.length >= limit || depth > MAX_DEPTH || value === null || typeof value !== "object") return found;
  if (isCounts(value)) {
    found.push({ path, counts: value });
    return found;
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [`${path}[${i}]`, v]) : Object.entries(value).map(([k, v]) => [`${path}.${k}`, v]);
  for (const [where, child] of entries.slice(0, 200)) findCounts(child, where, found, limit, depth + 1);
  return found;
}

/** Expectation values: a list of numbers, or one under a key such as `evs`. */
export function findExpectations(value, path = "result", found = [], depth = 0) {
  if (depth > 4 || value === null || typeof value !== "object") return found;
  if (isNumbers(value) && depth === 0) {
    found.push({ path, values: value });
    return found;
  }
  if (Array.isArray(value)) {
    value.slice(0, 50).forEach((v, i) => findExpectations(v, `${path}[${i}]`, found, depth + 1));
    return found;
  }
  for (const [key, child] of Object.entries(value)) {
    if (EXPECTATIONS.test(key) && (isNumbers(child) || typeof child === "number")) {
      found.push({ path: `${path}.${key}`, values: isNumbers(child) ? child : [child] });
    } else {
      findExpectations(child, `${path}.${key}`, found, depth + 1);
    }
  }
  return found;
}

/** The rendering of one result value: charts for what is recognised, and the JSON itself. */
export function renderValue(value, { label = "result" } = {}) {
  const parts = [];
  for (const { path, counts } of findCounts(value, label)) {
    const shots = Object.values(counts).reduce((a, b) => a + b, 0);
    parts.push(h("figure", { class: "counts" }, histogram(counts, { title: path }),
      h("figcaption", { class: "muted" }, `${path}: ${Object.keys(counts).length} outcomes, ${shots} shots`)));
  }
  for (const { path, values } of findExpectations(value, label)) {
    const points = values.map((v, i) => [i, v]);
    parts.push(h("figure", { class: "expectations" }, linePlot([{ label: path, points }], { title: path }),
      h("figcaption", { class: "muted" }, `${path}: ${values.length} values`)));
  }
  parts.push(h("pre", { class: "json" }, formatted(value)));
  return h("div", { class: "rendered" }, parts);
}

/** `value` as indented JSON; a value too deeply nested for that, as compact JSON text. */
function formatted(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return flat(value);
  }
}

/** `value` as compact JSON text, however deeply nested. */
export function jsonText(value) {
  try {
    return JSON.stringify(value);
  } catch {
    return flat(value);
  }
}

/** Compact JSON without recursion (JSON.stringify overflows the stack on deep nesting). */
function flat(value) {
  const out = [];
  const stack = [value];
  while (stack.length) {
    const item = stack.pop();
    if (item instanceof Closer) out.push(item.text);
    else if (Array.isArray(item)) {
      out.push("[");
      stack.push(new Closer("]"));
      for (let i = item.length - 1; i >= 0; i--) stack.push(item[i], ...(i > 0 ? [new Closer(",")] : []));
    } else if (item !== null && typeof item === "object") {
      const entries = Object.entries(item);
      out.push("{");
      stack.push(new Closer("}"));
      for (let i = entries.length - 1; i >= 0; i--) {
        stack.push(entries[i][1], new Closer(`${JSON.stringify(entries[i][0])}:`), ...(i > 0 ? [new Closer(",")] : []));
      }
    } else out.push(JSON.stringify(item) ?? "null");
  }
  return out.join("");
}

class Closer {
  constructor(text) {
    this.text = text;
  }
}
