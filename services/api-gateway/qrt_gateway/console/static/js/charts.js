// Charts drawn as plain SVG: a histogram of counts, line plots, a heat map and a coupling graph.

import { s } from "./dom.js";

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function fmt(value) {
  if (value === null || value === undefined) return "—";
  if (Math.abs(value) >= 1000 || Number.isInteger(value)) return String(Math.round(value * 1000) / 1000);
  return String(parseFloat(Number(value).toPrecision(4)));
}

/** Counts ({bitstring: n}) as bars, outcomes in order; at most `limit` most frequent ones. */
export function histogram(counts, { limit = 64, title = "" } = {}) {
  let entries = Object.entries(counts);
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  if (entries.length > limit) entries = entries.sort((a, b) => b[1] - a[1]).slice(0, limit);
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const left = 50, bottom = 70, top = 20, barWidth = Math.max(14, Math.min(60, 600 / entries.length));
  const width = left + entries.length * barWidth + 20, height = 300;
  const max = niceMax(Math.max(1, ...entries.map(([, n]) => n)));
  const y = (n) => top + (height - top - bottom) * (1 - n / max);
  const chart = s("svg", { class: "chart histogram", viewBox: `0 0 ${width} ${height}`, width, height,
    role: "img", "aria-label": title || "Counts histogram" });
  for (let i = 0; i <= 4; i++) {
    const value = (max * i) / 4;
    chart.append(s("line", { class: "grid", x1: left, x2: width - 10, y1: y(value), y2: y(value) }),
      s("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" }, fmt(value)));
  }
  entries.forEach(([outcome, n], i) => {
    const x = left + i * barWidth + 2;
    const bar = s("rect", { class: "bar", x, y: y(n), width: barWidth - 4, height: y(0) - y(n),
      "data-outcome": outcome, "data-count": n });
    bar.append(s("title", {}, `${outcome}: ${n} (${((100 * n) / (total || 1)).toFixed(1)} %)`));
    chart.append(bar, s("text", { x: x + (barWidth - 4) / 2, y: y(0) + 10,
      transform: `rotate(60 ${x + (barWidth - 4) / 2} ${y(0) + 10})` }, outcome));
  });
  chart.append(s("line", { class: "axis", x1: left, x2: width - 10, y1: y(0), y2: y(0) }));
  return chart;
}

/** Line plot of `series`: [{label, points: [[x, y], ...]}]; `xTime`: x values are epoch ms. */
export function linePlot(series, { xTime = false, title = "", yLabel = "", yRange = null } = {}) {
  const width = 640, height = 260, left = 60, right = 50, top = 20, bottom = 40;
  const points = series.flatMap((one) => one.points.filter(([, v]) => v !== null && v !== undefined));
  const chart = s("svg", { class: "chart plot", viewBox: `0 0 ${width} ${height}`, width, height,
    role: "img", "aria-label": title || "plot" });
  if (!points.length) {
    chart.append(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "no data yet"));
    return chart;
  }
  let [xMin, xMax] = [Math.min(...points.map((p) => p[0])), Math.max(...points.map((p) => p[0]))];
  let [yMin, yMax] = [Math.min(...points.map((p) => p[1])), Math.max(...points.map((p) => p[1]))];
  if (yRange) [yMin, yMax] = [Math.min(yMin, yRange[0]), Math.max(yMax, yRange[1])];
  if (xMin === xMax) { xMin -= 1; xMax += 1; }
  if (yMin === yMax) { const pad = Math.abs(yMin) * 0.1 || 1; yMin -= pad; yMax += pad; }
  const x = (v) => left + ((width - left - right) * (v - xMin)) / (xMax - xMin);
  const y = (v) => top + ((height - top - bottom) * (yMax - v)) / (yMax - yMin);
  for (let i = 0; i <= 4; i++) {
    const value = yMin + ((yMax - yMin) * i) / 4;
    chart.append(s("line", { class: "grid", x1: left, x2: width - right, y1: y(value), y2: y(value) }),
      s("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" }, fmt(value)));
  }
  for (const at of [xMin, (xMin + xMax) / 2, xMax]) {
    const label = xTime ? new Date(at).toLocaleTimeString() : fmt(at);
    chart.append(s("text", { x: x(at), y: height - bottom + 16, "text-anchor": "middle" }, label));
  }
  chart.append(s("line", { class: "axis", x1: left, x2: width - right, y1: height - bottom, y2: height - bottom }));
  if (yLabel) chart.append(s("text", { x: 12, y: top + 4 }, yLabel));
  series.forEach((one, index) => {
    let path = "";
    let pen = "M";
    for (const [px, py] of one.points) {
      if (py === null || py === undefined) { pen = "M"; continue; }
      path += `${pen}${x(px).toFixed(1)},${y(py).toFixed(1)} `;
      pen = "L";
    }
    chart.append(s("path", { class: `series${index % 3}`, d: path.trim() }));
    if (one.points.length <= 60) {
      for (const [px, py] of one.points) {
        if (py === null || py === undefined) continue;
        const dot = s("circle", { class: "dot", cx: x(px), cy: y(py), r: 3 });
        dot.append(s("title", {}, `${one.label} ${xTime ? new Date(px).toLocaleTimeString() : fmt(px)}: ${fmt(py)}`));
        chart.append(dot);
      }
    }
  });
  series.forEach((one, index) => {
    chart.append(s("text", { x: left + 10 + index * 160, y: height - 6, class: `legend key${index % 3}` }, `— ${one.label}`));
  });
  return chart;
}

/** A colour from red (0) through yellow to green (1). */
export function scale(fraction) {
  const f = Math.max(0, Math.min(1, fraction));
  const hue = Math.round(120 * f);
  return `hsl(${hue}, 65%, 48%)`;
}

/** A heat map: `rows` (labels), `columns` [{label, values: [...one per row], better: "high"|"low"}];
 * each column is coloured on its own range. */
export function heatmap(rows, columns) {
  const cell = 74, left = 50, top = 40;
  const width = left + columns.length * cell + 10, height = top + rows.length * 28 + 10;
  const chart = s("svg", { class: "chart heatmap", viewBox: `0 0 ${width} ${height}`, width, height,
    role: "img", "aria-label": "Calibration heat map" });
  columns.forEach((column, c) => {
    const numbers = column.values.filter((v) => v !== null && v !== undefined);
    const lo = Math.min(...numbers), hi = Math.max(...numbers);
    chart.append(s("text", { x: left + c * cell + cell / 2, y: top - 10, "text-anchor": "middle" }, column.label));
    column.values.forEach((value, r) => {
      let fraction = 0.5;
      if (value !== null && value !== undefined && hi > lo) fraction = (value - lo) / (hi - lo);
      if (column.better === "low") fraction = 1 - fraction;
      const rect = s("rect", { x: left + c * cell + 1, y: top + r * 28 + 1, width: cell - 2, height: 26,
        fill: value === null || value === undefined ? "#dee2e6" : scale(fraction) });
      rect.append(s("title", {}, `${rows[r]} ${column.label}: ${fmt(value)}`));
      chart.append(rect, s("text", { x: left + c * cell + cell / 2, y: top + r * 28 + 18, "text-anchor": "middle" }, fmt(value)));
    });
  });
  rows.forEach((label, r) => chart.append(s("text", { x: left - 8, y: top + r * 28 + 18, "text-anchor": "end" }, label)));
  return chart;
}

/** The coupling map: qubits on a circle (a qubit coupled to all others in the middle),
 * coloured by `quality` (0..1 or null), edges labelled with `edgeLabel(a, b)`. */
export function topology(nqubits, edges, quality, edgeLabel) {
  const width = 360, height = 300, cx = width / 2, cy = height / 2, radius = 110;
  const degree = new Array(nqubits).fill(0);
  for (const [a, b] of edges) { degree[a]++; degree[b]++; }
  const hub = nqubits > 2 ? degree.findIndex((d) => d === nqubits - 1) : -1;
  const ring = [...Array(nqubits).keys()].filter((q) => q !== hub);
  const position = {};
  ring.forEach((q, i) => {
    const angle = (2 * Math.PI * i) / ring.length - Math.PI / 2;
    position[q] = [cx + radius * Math.cos(angle), cy + radius * Math.sin(angle)];
  });
  if (hub >= 0) position[hub] = [cx, cy];
  const chart = s("svg", { class: "chart topology", viewBox: `0 0 ${width} ${height}`, width, height,
    role: "img", "aria-label": "Coupling map" });
  for (const [a, b] of edges) {
    if (!position[a] || !position[b]) continue;
    const [x1, y1] = position[a], [x2, y2] = position[b];
    const line = s("line", { class: "edge", x1, y1, x2, y2, "data-edge": `${a}-${b}` });
    const label = edgeLabel ? edgeLabel(a, b) : "";
    if (label) line.append(s("title", {}, `q${a}–q${b}: ${label}`));
    chart.append(line);
    if (label) chart.append(s("text", { x: (x1 + x2) / 2 + 4, y: (y1 + y2) / 2 - 4 }, label));
  }
  for (let q = 0; q < nqubits; q++) {
    const [x, y] = position[q];
    const value = quality ? quality[q] : null;
    const node = s("circle", { class: "node", cx: x, cy: y, r: 18, "data-qubit": q,
      fill: value === null || value === undefined ? "#868e96" : scale(value) });
    node.append(s("title", {}, `q${q}`));
    chart.append(node, s("text", { class: "node-label", x, y: y + 4, "text-anchor": "middle" }, `q${q}`));
  }
  return chart;
}
