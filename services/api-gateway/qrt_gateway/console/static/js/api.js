// The API as the console uses it: the key the person signed in with (kept for the tab in
// sessionStorage) goes as a bearer token on every request and, as a websocket subprotocol
// (browsers cannot set headers on websockets), on every stream.

const KEY = "qrt.apiKey";

export class ApiError extends Error {
  constructor(status, detail, field) {
    super(detail);
    this.status = status;
    this.field = field;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function signIn(key) {
  sessionStorage.setItem(KEY, key);
}

let refusal = "";

/** Why the API last refused the key the person signed in with ("" if it did not); read once.
 * The login page shows it: kept here, not in the URL, so that a link cannot put words there. */
export function takeRefusal() {
  const why = refusal;
  refusal = "";
  return why;
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

function headers(extra) {
  const all = { Accept: "application/json", ...extra };
  const key = apiKey();
  if (key) all.Authorization = `Bearer ${key}`;
  return all;
}

/** Call the API; resolves to the parsed JSON body (null for 204), rejects with ApiError. */
export async function api(path, { method = "GET", body, query, key } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value === undefined || value === null || value === "") continue;
      for (const one of Array.isArray(value) ? value : [value]) params.append(name, one);
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const extra = body === undefined ? {} : { "Content-Type": "application/json" };
  const sent = headers(extra);
  if (key !== undefined) sent.Authorization = `Bearer ${key}`;
  const response = await fetch(url, {
    method,
    headers: sent,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  if (!response.ok) {
    const detail = (parsed && parsed.detail) || `${response.status} ${response.statusText}`;
    const error = new ApiError(response.status, detail, parsed && parsed.field);
    if (response.status === 401) {
      if (key === undefined && apiKey()) refusal = detail;
      window.dispatchEvent(new CustomEvent("qrt:unauthenticated", { detail }));
    }
    throw error;
  }
  return parsed;
}

function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Open a job stream (`/stream/jobs/...`): `onText` gets each text frame; `onEnd` the close
 * event. Returns the WebSocket (close it to stop). */
export function stream(path, onText, onEnd) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const key = apiKey();
  const protocols = key ? ["qrt", `qrt.bearer.${base64url(key)}`] : ["qrt"];
  const socket = new WebSocket(`${scheme}//${location.host}${path}`, protocols);
  socket.addEventListener("message", (event) => onText(String(event.data)));
  socket.addEventListener("close", (event) => onEnd && onEnd(event));
  return socket;
}
