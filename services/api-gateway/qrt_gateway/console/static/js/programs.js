// Programs: the catalog, a program's metadata, and a form made from its parameters that
// submits a job.

import { ApiError, api } from "./api.js";
import { facts, h, show } from "./dom.js";

const DEFAULT_INSTANCE = "ibm-q/open/main";

export async function programList(view) {
  const { programs } = await api("/programs");
  show(view, h("h1", {}, "Programs"),
    h("table", { id: "programs" },
      h("thead", {}, h("tr", {}, ["Program", "Kind", "Description", "Version", "Max time", "Owner", "Parameters"].map((t) => h("th", {}, t)))),
      h("tbody", {}, programs.map((p) => h("tr", { dataset: { program: p.id } },
        h("td", {}, h("a", { href: `#/programs/${encodeURIComponent(p.id)}` }, p.name)),
        h("td", {}, p.kind),
        h("td", {}, p.description),
        h("td", {}, p.version),
        h("td", { class: "num" }, `${p.maxExecutionTime} s`),
        h("td", {}, p.bundled ? "bundled" : `${p.owner}${p.isPublic ? " (public)" : ""}`),
        h("td", {}, (p.parameters || []).map((q) => q.name).join(", ") || "—"))))));
}

/** The input for one parameter of the program's metadata, by its declared type. */
function control(param) {
  const type = String(param.type || "").toLowerCase();
  const name = `param:${param.name}`;
  if (["int", "integer"].includes(type)) return h("input", { type: "number", step: "1", name, required: param.required });
  if (["float", "number", "double"].includes(type)) return h("input", { type: "number", step: "any", name, required: param.required });
  if (["bool", "boolean"].includes(type)) return h("input", { type: "checkbox", name });
  if (["str", "string", ""].includes(type)) return h("input", { type: "text", name, required: param.required });
  return h("textarea", { name, required: param.required, placeholder: "JSON" });
}

function readParams(form, parameters, planqk) {
  const params = {};
  // defineProperty: a parameter may be named "__proto__", which plain assignment would drop.
  const put = (into, name, value) => Object.defineProperty(into, name, { value, enumerable: true, writable: true, configurable: true });
  // A PlanQK program names its parameters by the object that holds them: data.n_qubits.
  const set = (name, value) => {
    const dot = name.indexOf(".");
    const part = dot > 0 ? name.slice(0, dot) : "";
    if (!planqk || !["data", "params"].includes(part)) return put(params, name, value);
    if (!Object.hasOwn(params, part)) put(params, part, {});
    put(params[part], name.slice(dot + 1), value);
  };
  for (const param of parameters) {
    const el = form.elements.namedItem(`param:${param.name}`);
    if (!el) continue;
    if (el.type === "checkbox") {
      set(param.name, el.checked);
      continue;
    }
    const raw = el.value.trim();
    if (raw === "") continue;
    if (el.type === "number") set(param.name, Number(raw));
    else if (el.tagName === "TEXTAREA") {
      try {
        set(param.name, JSON.parse(raw));
      } catch {
        throw new ApiError(400, `${param.name}: not valid JSON`, param.name);
      }
    } else set(param.name, raw);
  }
  return params;
}

export async function programPage(view, programId) {
  let program;
  try {
    program = await api(`/programs/${encodeURIComponent(programId)}`);
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 404) {
      show(view, h("h1", {}, "Program not found"), h("p", {}, h("a", { href: "#/programs" }, "All programs")));
      return;
    }
    throw failure;
  }
  const [{ backends }, recent] = await Promise.all([api("/backends"), api("/jobs", { query: { limit: 1 } })]);
  // The instance of the person's latest job is the likeliest one they may submit to.
  const latest = recent.jobs[0];
  const instance = latest ? `${latest.hub}/${latest.group}/${latest.project}` : DEFAULT_INSTANCE;
  const parameters = program.parameters || [];
  const declared = parameters.length > 0;
  const error = h("p", { class: "error", id: "submit-error", role: "alert" });
  const fields = parameters.map((param) => h("label", {},
    `${param.name}${param.required ? " *" : ""} (${param.type || "any"})`, control(param),
    param.description ? h("span", { class: "help" }, param.description) : null));
  const free = declared ? null : h("label", {}, "Parameters (JSON object)", h("textarea", { name: "params-json", placeholder: "{}" }));
  const form = h("form", { class: "params card", id: "submit-job" },
    ...fields, free,
    h("label", {}, "Backend", h("select", { name: "backend" }, backends.map((b) => h("option", { value: b.name }, b.name)))),
    h("label", {}, "Instance", h("input", { name: "instance", value: instance, required: true, pattern: "[^\\/]+\\/[^\\/]+\\/[^\\/]+" })),
    h("label", {}, "Tags (comma-separated)", h("input", { name: "tags" })),
    h("button", { type: "submit", class: "primary" }, "Run"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const [hub, group, project] = String(data.get("instance")).split("/");
    const tags = String(data.get("tags") || "").split(",").map((t) => t.trim()).filter(Boolean);
    try {
      let params;
      if (declared) params = readParams(form, parameters, program.kind !== "qiskit-runtime");
      else {
        const raw = String(data.get("params-json") || "").trim();
        try {
          params = raw ? JSON.parse(raw) : {};
        } catch {
          throw new ApiError(400, "parameters: not valid JSON", "params");
        }
      }
      const created = await api("/jobs", { method: "POST", body: {
        programId: program.id, backend: data.get("backend"), hub, group, project, params, tags } });
      location.hash = `#/jobs/${encodeURIComponent(created.id)}`;
    } catch (failure) {
      show(error, failure.field ? `${failure.field}: ${failure.message}` : failure.message);
    }
  });
  const list = (items) => (items && items.length
    ? h("table", {}, h("tbody", {}, items.map((i) => h("tr", {}, h("td", {}, h("code", {}, i.name)), h("td", {}, i.type || ""), h("td", {}, i.description || "")))))
    : h("p", { class: "muted" }, "—"));
  show(view, h("h1", {}, program.name),
    h("div", { class: "grid" },
      h("div", { class: "card" }, facts([
        ["Id", h("code", {}, program.id)],
        ["Description", program.description || "—"],
        ["Kind", program.kind],
        ["Version", program.version],
        ["Max execution time", `${program.maxExecutionTime} s`],
        ["Owner", program.bundled ? "bundled" : program.owner || "—"],
        ["Public", program.isPublic ? "yes" : "no"],
        ["Backend requirements", program.backendRequirements ? JSON.stringify(program.backendRequirements) : "—"],
        ["Digest", program.digest || "—"],
      ]),
      h("h2", {}, "Parameters"), list(parameters),
      h("h2", {}, "Interim results"), list(program.interimResults),
      h("h2", {}, "Returns"), list(program.returnValues)),
      h("div", {}, h("h2", {}, "Run it"), form)));
}
