// Jobs: the list with its filters and live statuses, and a job's page with its timeline, live
// log, interim results as they come, its result, and cancel and delete.

import { ApiError, api, stream } from "./api.js";
import { facts, h, show, statusBadge, took, when } from "./dom.js";
import { decode, jsonText, renderValue } from "./results.js";

const STATUSES = ["Queued", "Running", "Completed", "Failed", "Cancelled", "Cancelled - Ran too long"];
const FINAL = new Set(STATUSES.slice(2));
const PAGE = 50;
const SHOWN_INTERIMS = 100;
// Colour and cursor codes a program writes for a terminal, shown as "[31m" garbage otherwise
// (the API's log keeps them).
const TERMINAL_CODES = /\x1b\[[0-9;?]*[ -\/]*[@-~]/g;
const POLL_MS = 2000;

function localInput(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (isNaN(date)) return "";
  return new Date(date - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function options(values, chosen, any) {
  return [h("option", { value: "" }, any), ...values.map((v) => h("option", { value: v, selected: v === chosen }, v))];
}

/** The API query of the list's filters (kept in the URL so a reload keeps them). */
function apiQuery(query) {
  const out = { limit: PAGE, offset: query.get("offset") || 0 };
  for (const name of ["status", "program", "backend", "tags"]) out[name] = query.get(name) || undefined;
  const instance = (query.get("instance") || "").split("/");
  if (instance.length === 3 && instance.every(Boolean)) [out.hub, out.group, out.project] = instance;
  for (const name of ["created_after", "created_before"]) {
    const value = query.get(name);
    if (value) out[name] = new Date(value).toISOString();
  }
  return out;
}

export async function jobList(view, query) {
  const [programs, backends] = await Promise.all([
    api("/programs").catch(() => ({ programs: [] })),
    api("/backends").catch(() => ({ backends: [] })),
  ]);
  const field = (label, control) => h("label", {}, label, control);
  const form = h("form", { class: "filters", id: "job-filters" },
    field("Status", h("select", { name: "status" }, options(STATUSES, query.get("status"), "any"))),
    field("Program", h("select", { name: "program" }, options(programs.programs.map((p) => p.id), query.get("program"), "any"))),
    field("Backend", h("select", { name: "backend" }, options(backends.backends.map((b) => b.name), query.get("backend"), "any"))),
    field("Instance", h("input", { name: "instance", placeholder: "hub/group/project", value: query.get("instance") || "" })),
    field("Tags", h("input", { name: "tags", placeholder: "a,b", value: query.get("tags") || "" })),
    field("Created after", h("input", { type: "datetime-local", name: "created_after", value: localInput(query.get("created_after")) })),
    field("Created before", h("input", { type: "datetime-local", name: "created_before", value: localInput(query.get("created_before")) })),
    h("button", { type: "submit", class: "primary" }, "Filter"),
    h("a", { href: "#/jobs" }, "clear"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (!value) continue;
      chosen.set(name, name.startsWith("created_") ? new Date(value).toISOString() : value);
    }
    location.hash = `#/jobs?${chosen}`;
  });
  const summary = h("p", { class: "muted", id: "job-count" });
  const body = h("tbody");
  const pager = h("div", { class: "actions" });
  const error = h("p", { class: "error", role: "alert" });
  show(view, h("h1", {}, "Jobs"), form, summary, error,
    h("table", { id: "jobs" }, h("thead", {}, h("tr", {}, ["Job", "Program", "Status", "Backend", "Instance", "Tags", "Created", "Took"].map((t) => h("th", {}, t)))), body),
    pager);
  const offset = Number(query.get("offset") || 0);

  let shown = null;
  async function refresh() {
    let page;
    try {
      page = await api("/jobs", { query: apiQuery(query) });
    } catch (failure) {
      show(error, failure.message);
      return;
    }
    show(error);
    // Redrawn only when something changed: a redraw every 2 s would undo the person's
    // selection (say, of a job id to copy).
    const seen = JSON.stringify(page);
    if (seen === shown) return;
    shown = seen;
    show(summary, `${page.count} job${page.count === 1 ? "" : "s"}`);
    show(body, page.jobs.map((job) => h("tr", { dataset: { job: job.id } },
      h("td", {}, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, job.id.slice(0, 8))),
      h("td", {}, job.program.id),
      h("td", {}, statusBadge(job.status)),
      h("td", {}, job.backend),
      h("td", {}, `${job.hub}/${job.group}/${job.project}`),
      h("td", {}, job.tags.join(", ")),
      h("td", {}, when(job.created)),
      h("td", { class: "num" }, took(job.started, job.ended)))));
    const move = (to) => {
      const next = new URLSearchParams(query);
      next.set("offset", String(Math.max(0, to)));
      return `#/jobs?${next}`;
    };
    show(pager,
      offset > 0 ? h("a", { href: move(offset - PAGE) }, "← newer") : null,
      offset + PAGE < page.count ? h("a", { href: move(offset + PAGE) }, "older →") : null);
  }
  await refresh();
  const timer = setInterval(refresh, POLL_MS);
  return () => clearInterval(timer);
}

function timeline(job, seen) {
  const items = [["Created", job.created]];
  if (job.started) items.push([job.attempt > 1 ? `Started (attempt ${job.attempt})` : "Started", job.started]);
  if (seen.has("Queued") && job.attempt > 1) items.push(["Queued again", seen.get("Queued")]);
  if (job.ended) items.push([`${job.status}${job.reason ? `: ${job.reason}` : ""}`, job.ended]);
  else items.push([`${job.status} now`, null]);
  return h("ol", { class: "timeline", id: "timeline" },
    items.map(([what, at]) => h("li", {}, h("strong", {}, what), " ", h("span", { class: "muted" }, at ? when(at) : ""))));
}

export async function jobPage(view, jobId) {
  const path = `/jobs/${encodeURIComponent(jobId)}`;
  let job;
  try {
    job = await api(path);
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 404) {
      show(view, h("h1", {}, "Job not found"), h("p", {}, h("a", { href: "#/jobs" }, "All jobs")));
      return () => {};
    }
    throw failure;
  }
  const sockets = [];
  let timer = null;
  let stopped = false;
  const seen = new Map();
  const header = h("div", { id: "job-header" });
  const info = h("div", { class: "card" });
  const message = h("p", { class: "error", id: "job-error", role: "alert" });
  const log = h("pre", { class: "log", id: "log" });
  const interims = h("div", { id: "interims", dataset: { stream: "open" } }, h("p", { class: "muted" }, "None yet."));
  const result = h("div", { id: "result" }, h("p", { class: "muted" }, "No result yet."));
  const cancel = h("button", { type: "button", id: "cancel", class: "danger" }, "Cancel");
  const remove = h("button", { type: "button", id: "delete", class: "danger" }, "Delete");
  let armed = false;
  let finalValue = null;
  let resultsClosed = false;
  const frames = [];

  function draw() {
    show(header, h("h1", {}, "Job ", h("code", {}, job.id), " ", statusBadge(job.status)));
    show(info, h("div", { class: "grid" },
      facts([
        ["Program", h("a", { href: `#/programs/${encodeURIComponent(job.program.id)}` }, job.program.id)],
        ["Backend", h("a", { href: `#/backends/${encodeURIComponent(job.backend)}` }, job.backend)],
        ["Instance", `${job.hub}/${job.group}/${job.project}`],
        ["Tags", job.tags.join(", ") || "—"],
        ["Session", job.sessionId || "—"],
        ["Priority", String(job.priority)],
        ["Max execution time", `${job.maxExecutionTime} s`],
        ["Run time", took(job.started, job.ended) || "—"],
        ["Parameters", h("code", {}, job.params.join(" ") || "—")],
      ]),
      h("div", {}, h("h2", {}, "Timeline"), timeline(job, seen))),
      h("div", { class: "actions" }, cancel, remove));
    cancel.disabled = FINAL.has(job.status);
    remove.disabled = !FINAL.has(job.status);
  }

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      await api(`${path}/cancel`, { method: "POST" });
      show(message, "Cancel requested.");
      await poll();
    } catch (failure) {
      show(message, `Not cancelled: ${failure.message}`);
      cancel.disabled = FINAL.has(job.status);
    }
  });
  remove.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      remove.textContent = "Delete for good?";
      return;
    }
    try {
      await api(path, { method: "DELETE" });
      location.hash = "#/jobs";
    } catch (failure) {
      show(message, `Not deleted: ${failure.message}`);
    }
  });

  async function showResult() {
    if (job.status !== "Completed") {
      show(result, h("p", { class: "muted" }, FINAL.has(job.status) ? `No result: the job ended ${job.status}.` : "No result yet."));
      return;
    }
    let text;
    try {
      text = await api(`${path}/results`);
    } catch (failure) {
      show(result, h("p", { class: "error" }, failure.message));
      return;
    }
    if (text === null) {
      show(result, h("p", { class: "muted" }, "The job ended without a final result."));
      return;
    }
    finalValue = jsonText(decode(text));
    show(result, renderValue(decode(text)));
    dropFinal();
  }

  // The results stream ends with the final result, which the Result section shows already.
  function dropFinal() {
    const cards = interims.querySelectorAll(".interim");
    const last = cards[cards.length - 1];
    if (finalValue === null || !last || !resultsClosed || pending.length) return;
    if (Number(last.dataset.index) !== frames.length) return;
    if (jsonText(decode(frames[frames.length - 1])) !== finalValue) return;
    last.remove();
    if (!interims.querySelector(".interim")) interims.append(h("p", { class: "muted" }, "None."));
  }

  async function poll() {
    try {
      const current = await api(path);
      if (current.status !== job.status) seen.set(current.status, new Date().toISOString());
      const ended = !FINAL.has(job.status) && FINAL.has(current.status);
      job = current;
      draw();
      if (ended) await showResult();
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 404) {
        show(message, "This job was deleted.");
        clearInterval(timer);
      }
      return;
    }
    if (FINAL.has(job.status)) clearInterval(timer);
  }

  draw();
  show(view, header, message, info,
    h("div", { class: "grid" },
      h("section", {}, h("h2", {}, "Log"), log),
      h("section", {}, h("h2", {}, "Interim results"), interims)),
    h("section", {}, h("h2", {}, "Result"), result));

  // The live log: what was written so far, then each piece as it comes.
  const logSocket = stream(`/stream/jobs/${encodeURIComponent(job.id)}/logs`, (text) => {
    log.append(document.createTextNode(text.replace(TERMINAL_CODES, "")));
    log.scrollTop = log.scrollHeight;
  }, (event) => {
    if (!stopped && event.code !== 1000) log.append(document.createTextNode(`\n[log stream closed: ${event.code} ${event.reason}]\n`));
  });
  sockets.push(logSocket);

  // Interim results (and, last, the final result) as the program publishes them. Frames are
  // drawn once per animation frame, and only the latest SHOWN_INTERIMS stay on the page: a job
  // may publish a hundred thousand of them, which would freeze the page as cards.
  const hiddenNote = h("p", { class: "muted", id: "interims-hidden", hidden: true });
  let hidden = 0;
  let pending = [];
  function hide(count) {
    hidden += count;
    hiddenNote.hidden = false;
    show(hiddenNote, `${hidden} earlier interim result${hidden === 1 ? "" : "s"} not shown: this page keeps the latest ${SHOWN_INTERIMS}.`);
  }
  function drawFrames() {
    const batch = pending;
    pending = [];
    batch.forEach(({ text, index }, at) => {
      const value = decode(text);
      if (value && typeof value === "object" && value.__qrt__) {
        const { attempt, reason } = value.__qrt__;
        interims.append(h("p", { class: "muted" }, `Attempt ${attempt} starts${reason ? ` (${reason})` : ""}.`));
        return;
      }
      if (at < batch.length - SHOWN_INTERIMS) {
        hide(1);
        return;
      }
      interims.append(h("div", { class: "interim card", dataset: { index } },
        // A frame carries no time: this is when the page got it (a replay comes after the end).
        h("div", { class: "muted" }, `#${index}, received ${new Date().toLocaleTimeString()}`), renderValue(value, { label: "interim" })));
    });
    const cards = interims.getElementsByClassName("interim");
    const extra = cards.length - SHOWN_INTERIMS;
    for (let i = 0; i < extra; i++) cards[0].remove();
    if (extra > 0) hide(extra);
    if (resultsClosed) dropFinal();
  }
  const resultsSocket = stream(`/stream/jobs/${encodeURIComponent(job.id)}`, (text) => {
    if (frames.length === 0) interims.replaceChildren(hiddenNote);
    frames.push(text);
    if (pending.length === 0) requestAnimationFrame(drawFrames);
    pending.push({ text, index: frames.length });
  }, () => {
    if (pending.length) drawFrames();
    resultsClosed = true;
    interims.dataset.stream = "ended";
    dropFinal();
    poll();
  });
  sockets.push(resultsSocket);

  await showResult();
  if (!FINAL.has(job.status)) timer = setInterval(poll, POLL_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
    for (const socket of sockets) socket.close();
  };
}
