// Backends: each one's state and queue; a device's coupling map, per-qubit calibration as a
// table and a heat map, and its recent history.

import { api } from "./api.js";
import { facts, h, show, when } from "./dom.js";
import { heatmap, linePlot, topology } from "./charts.js";

const POLL_MS = 5000;

function online(detail) {
  return h("span", { class: `status ${detail.online ? "online" : "offline"}` }, detail.online ? "online" : "offline");
}

export async function backendList(view) {
  const body = h("tbody");
  show(view, h("h1", {}, "Backends"),
    h("table", { id: "backends" }, h("thead", {}, h("tr", {}, ["Backend", "Kind", "State", "Qubits", "Queued", "Running"].map((t) => h("th", {}, t)))), body));
  async function refresh() {
    const { backends } = await api("/backends");
    const details = await Promise.all(backends.map((b) => api(`/backends/${encodeURIComponent(b.name)}`).catch(() => null)));
    show(body, details.filter(Boolean).map((d) => h("tr", { dataset: { backend: d.name } },
      h("td", {}, h("a", { href: `#/backends/${encodeURIComponent(d.name)}` }, d.name)),
      h("td", {}, d.simulator ? "simulator" : "device"),
      h("td", {}, online(d)),
      h("td", { class: "num" }, d.nqubits ?? "—"),
      h("td", { class: "num" }, d.queue.queued),
      h("td", { class: "num" }, d.queue.running))));
  }
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), POLL_MS);
  return () => clearInterval(timer);
}

function fixed(value, digits) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

export async function backendPage(view, name) {
  const path = `/backends/${encodeURIComponent(name)}`;
  const queueHistory = [];

  function draw(d) {
    queueHistory.push([Date.now(), d.queue.queued, d.queue.running]);
    if (queueHistory.length > 720) queueHistory.shift();
    const parts = [h("h1", {}, d.name, " ", online(d)),
      h("div", { class: "card" }, facts([
        ["Kind", d.simulator ? "simulator" : "device"],
        ["Queue", `${d.queue.queued} queued, ${d.queue.running} running`],
        ["Last report", d.simulator ? "—" : when(d.lastSeen)],
        ["Qubits", d.nqubits ?? "—"],
        ["Gates", d.gates ? d.gates.join(" ") : "—"],
        ["Calibrated", d.calibration ? when(d.calibration.calibratedAt) : "—"],
      ]))];
    // A device's queue over the last hour comes with its history; a simulator's is the one
    // seen while this page is open.
    const history = d.history || [];
    const at = (sample) => new Date(sample.at).getTime();
    const queueSeen = d.simulator
      ? queueHistory
      : history.map((x) => [at(x), x.queued, x.running]);
    const queuePlot = linePlot([
      { label: "queued", points: queueSeen.map(([t, q]) => [t, q]) },
      { label: "running", points: queueSeen.map(([t, , r]) => [t, r]) },
    ], { xTime: true, title: "Queue", yRange: [0, 1] });
    if (d.calibration && d.nqubits) {
      const qubits = d.calibration.qubits;
      const pairs = new Map(d.calibration.pairs.map((p) => [`${p.qubits[0]}-${p.qubits[1]}`, p.fidelity]));
      const fidelity = (a, b) => pairs.get(`${a}-${b}`) ?? pairs.get(`${b}-${a}`);
      const readout = qubits.map((q) => q.readoutFidelity);
      const numbers = readout.filter((v) => v !== null);
      const lo = Math.min(...numbers), hi = Math.max(...numbers);
      const quality = readout.map((v) => (v === null ? null : hi > lo ? (v - lo) / (hi - lo) : 1));
      parts.push(h("div", { class: "grid" },
        h("section", { class: "card" }, h("h2", {}, "Coupling map"),
          topology(d.nqubits, d.topology, quality, (a, b) => {
            const f = fidelity(a, b);
            return f === undefined ? "" : f.toFixed(3);
          }),
          h("p", { class: "legend" }, "Qubits coloured by readout fidelity (green: best of this device); edges labelled with their two-qubit gate fidelity.")),
        h("section", { class: "card" }, h("h2", {}, "Calibration heat map"),
          heatmap(qubits.map((q) => `q${q.qubit}`), [
            { label: "T1 µs", values: qubits.map((q) => q.t1Us), better: "high" },
            { label: "T2 µs", values: qubits.map((q) => q.t2Us), better: "high" },
            { label: "readout", values: readout, better: "high" },
            { label: "1q gate", values: qubits.map((q) => q.singleQubitGateFidelity), better: "high" },
          ]))));
      parts.push(h("section", { class: "card" }, h("h2", {}, "Calibration per qubit"),
        h("table", { id: "calibration" },
          h("thead", {}, h("tr", {}, ["Qubit", "T1 (µs)", "T2 (µs)", "Readout fidelity", "1-qubit gate fidelity", "2-qubit gate fidelities"].map((t) => h("th", {}, t)))),
          h("tbody", {}, qubits.map((q) => h("tr", { dataset: { qubit: q.qubit } },
            h("td", {}, `q${q.qubit}`),
            h("td", { class: "num" }, fixed(q.t1Us, 2)),
            h("td", { class: "num" }, fixed(q.t2Us, 2)),
            h("td", { class: "num" }, fixed(q.readoutFidelity, 4)),
            h("td", { class: "num" }, fixed(q.singleQubitGateFidelity, 5)),
            h("td", {}, d.calibration.pairs.filter((p) => p.qubits.includes(q.qubit))
              .map((p) => `q${p.qubits[0]}–q${p.qubits[1]}: ${p.fidelity.toFixed(4)}`).join(", ") || "—")))))));
    }
    parts.push(h("div", { class: "grid" },
      d.simulator ? null : h("section", { class: "card" }, h("h2", {}, "Last hour"),
        linePlot([
          { label: "mean T1 µs", points: history.map((x) => [at(x), x.meanT1Us]) },
          { label: "mean T2 µs", points: history.map((x) => [at(x), x.meanT2Us]) },
        ], { xTime: true, title: "Mean T1 and T2" }),
        linePlot([{ label: "answering (1) or not (0)", points: history.map((x) => [at(x), x.reachable ? 1 : 0]) }],
          { xTime: true, title: "Reachable", yRange: [0, 1] })),
      h("section", { class: "card" }, h("h2", {}, d.simulator ? "Queue while this page is open" : "Queue, last hour"), queuePlot)));
    show(view, ...parts);
  }

  draw(await api(path));
  const timer = setInterval(() => api(path).then(draw).catch(() => {}), POLL_MS);
  return () => clearInterval(timer);
}
