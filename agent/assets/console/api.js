// The console's API (docs/console.md): JSON over fetch with the session cookie, the CSRF token on
// every state-changing call, and one error type carrying the server's stable code.

let csrf = null;

export function setCsrf(token) {
  csrf = token;
}

// An answer with an error body ({"error": {"code", "message", ...}}), or status 0 when the request did
// not reach the box. `problems`: every problem a refused change named (422 invalid_config).
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const error = (body && body.error) || {};
    super(error.message || (status === 0 ? "network" : `HTTP ${status}`));
    this.status = status;
    this.code = error.code || (status === 0 ? "network" : `http_${status}`);
    this.retryAfter = retryAfter;
    const problems = error.problems ?? (error.details && error.details.problems) ?? (body && body.problems) ?? error.details;
    this.problems = Array.isArray(problems) ? problems.map(String) : [];
    this.body = body;
  }
}

// Called when a request finds the session ended (401): the app shows the sign-in again; or signed in
// with a one-time password (403 password_change_required): the app asks for the user's own.
let onSignedOut = () => {};
let onMustChange = () => {};
export function whenSignedOut(callback) {
  onSignedOut = callback;
}
export function whenPasswordMustChange(callback) {
  onMustChange = callback;
}

export async function call(method, path, body, { raw = false } = {}) {
  const headers = {};
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["content-type"] = "application/json";
    payload = JSON.stringify(body);
  }
  if (method !== "GET" && csrf) headers["x-csrf-token"] = csrf;
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, cache: "no-store", credentials: "same-origin" });
  } catch (e) {
    throw new ApiError(0, null);
  }
  if (raw && response.ok) return response;
  let answer = null;
  if (response.status !== 204) {
    try {
      answer = await response.json();
    } catch {
      // a proxy's HTML page, an empty answer: the status says enough
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, answer, Number(response.headers.get("retry-after")) || null);
    if (response.status === 401 && !path.endsWith("/login")) onSignedOut(error);
    if (error.code === "password_change_required") onMustChange(error);
    throw error;
  }
  return answer;
}

const enc = encodeURIComponent;

export const me = () => call("GET", "/console/api/me");
export const login = (name, password) => call("POST", "/console/api/login", { name, password });
export const logout = () => call("POST", "/console/api/logout");
export const changePassword = (current, next) => call("POST", "/console/api/password", { current, new: next });
export const audit = (limit = 200) => call("GET", `/console/api/audit?limit=${limit}`);

export const cameras = () => call("GET", "/console/api/cameras");
export const frameUrl = (id, stamp) => `/console/api/cameras/${enc(id)}/frame.jpg?t=${stamp}`;
export const saveCamera = (id, change) => call("PUT", `/console/api/cameras/${enc(id)}`, change);
export const takeReference = (id, kind, uniformOk) =>
  call("POST", `/console/api/cameras/${enc(id)}/reference`, { kind, uniform_ok: uniformOk });

export function events(filters) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(filters)) if (value !== "" && value !== null && value !== undefined) query.set(name, value);
  return call("GET", `/console/api/events?${query}`);
}
export const STREAM = "/console/api/events/stream";
export const evidence = (id) => call("GET", `/console/api/events/${enc(id)}`);
export const fileUrl = (id, name) => `/console/api/events/${enc(id)}/files/${enc(name)}`;
export const hold = (id, on, reason) => call("POST", `/console/api/events/${enc(id)}/hold`, { on, reason });

export const people = () => call("GET", "/console/api/people");
export const enrol = (id, form) => call("POST", `/console/api/people/${enc(id)}/enrol`, form);
export const removePerson = (id) => call("DELETE", `/console/api/people/${enc(id)}`);
