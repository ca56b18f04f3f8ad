// The console's router: the URL fragment picks a view (#/jobs, #/jobs/<id>, #/programs,
// #/programs/<id>, #/backends, #/backends/<name>, #/login); a view returns a function that
// stops what it started (polls, websockets) when the person goes elsewhere.

import { ApiError, apiKey, signOut } from "./api.js";
import { h, show } from "./dom.js";
import { jobList, jobPage } from "./jobs.js";
import { programList, programPage } from "./programs.js";
import { backendList, backendPage } from "./backends.js";
import { loginPage } from "./login.js";

const view = document.getElementById("view");
const KEYS_ON = document.querySelector('meta[name="qrt-auth"]')?.content === "on";
const notice = document.getElementById("notice");
let stop = () => {};

export function say(message) {
  if (!message) {
    notice.hidden = true;
    notice.replaceChildren();
    return;
  }
  notice.hidden = false;
  show(notice, message);
}

function route() {
  const [path, queryText] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(queryText || "");
  return { parts, query };
}

function whoAmI() {
  const who = document.getElementById("who");
  const key = apiKey();
  if (!key) {
    show(who);
    return;
  }
  const id = key.split("_")[1] || "key";
  show(who, `key ${id}`, h("button", { type: "button", id: "sign-out", onclick: () => {
    signOut();
    location.hash = "#/login";
  } }, "Sign out"));
}

async function render() {
  stop();
  stop = () => {};
  say("");
  const { parts, query } = route();
  const section = parts[0] || "jobs";
  if (KEYS_ON && !apiKey() && section !== "login") {
    location.replace(`#/login?${new URLSearchParams({ next: location.hash || "#/jobs" })}`);
    return;
  }
  for (const link of document.querySelectorAll("header nav a[data-section]")) {
    link.classList.toggle("current", link.dataset.section === section);
  }
  whoAmI();
  show(view, h("p", { class: "muted" }, "Loading…"));
  const views = {
    jobs: () => (parts[1] ? jobPage(view, parts[1]) : jobList(view, query)),
    programs: () => (parts[1] ? programPage(view, parts[1]) : programList(view)),
    backends: () => (parts[1] ? backendPage(view, parts[1]) : backendList(view)),
    login: () => loginPage(view, query),
  };
  const make = views[section];
  if (!make) {
    show(view, h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/jobs" }, "Jobs")));
    return;
  }
  try {
    stop = (await make()) || (() => {});
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return; // the login page takes over
    show(view, h("h1", {}, "Something went wrong"), h("p", { class: "error" }, String(error.message || error)));
  }
}

window.addEventListener("qrt:unauthenticated", () => {
  if (route().parts[0] === "login") return;
  const next = location.hash || "#/jobs";
  location.hash = `#/login?${new URLSearchParams({ next })}`;
});
window.addEventListener("hashchange", render);
if (!location.hash) history.replaceState(null, "", "#/jobs");
render();
