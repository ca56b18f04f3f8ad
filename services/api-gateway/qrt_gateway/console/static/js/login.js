// Sign in with an API key (when the gateway runs with keys on): the key is checked with a
// request of the API, then kept for this tab only (sessionStorage).

import { ApiError, api, signIn, takeRefusal } from "./api.js";
import { h, show } from "./dom.js";

export async function loginPage(view, query) {
  const next = query.get("next") || "#/jobs";
  const why = takeRefusal();
  const input = h("input", { type: "password", id: "api-key", name: "key", autocomplete: "off",
    placeholder: "qrt_…", required: true });
  const error = h("p", { class: "error", id: "login-error", role: "alert" }, why || "");
  const form = h("form", { class: "card login", id: "login" },
    h("label", { for: "api-key" }, "API key"), input,
    h("p", { class: "muted" }, "The key stays in this browser tab only and goes with every request to the API."),
    h("button", { type: "submit", class: "primary" }, "Sign in"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    try {
      await api("/jobs", { query: { limit: 1 }, key });
    } catch (failure) {
      show(error, failure instanceof ApiError && failure.status === 401 ? `Not accepted: ${failure.message}` : String(failure.message));
      return;
    }
    signIn(key);
    location.hash = next.startsWith("#/") && !next.startsWith("#/login") ? next : "#/jobs";
  });
  show(view, h("h1", {}, "Sign in"), form);
  input.focus();
}
