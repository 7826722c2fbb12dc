// The API client: same origin, the operator's key as a bearer token, problem+json errors.

const STORAGE_KEY = "gridlink.console.apiKey";
// Beside the console's own path (…/console/ → …/api/v1), so a proxy's path prefix is kept.
const BASE = new URL("../api/v1", document.baseURI).pathname;

/** The key the operator logged in with (this tab only: sessionStorage, never the URL). */
export function apiKey() {
  return sessionStorage.getItem(STORAGE_KEY);
}

export function keepKey(key) {
  sessionStorage.setItem(STORAGE_KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** An API answer that is not a success: its status and the problem's title and detail. */
export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

/** `path` under /api/v1 with `params` (skipping empty ones) as its query. */
export function url(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") query.set(name, String(v));
  }
  const text = query.toString();
  return `${BASE}${path}${text ? `?${text}` : ""}`;
}

/** Announced when the API refuses the key (401): the console logs out. */
export const UNAUTHORIZED = "gridlink:unauthorized";

/** One request; {status, data} on success, ApiError otherwise. A 401 is also announced as
 * UNAUTHORIZED on window, unless `quiet` (the login form reports its own). */
export async function request(method, target, {body, key = apiKey(), quiet = false} = {}) {
  const headers = {Accept: "application/json, application/problem+json"};
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = {method, headers, cache: "no-store", credentials: "omit", redirect: "error"};
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(target, init);
  } catch (error) {
    throw new ApiError(0, "The API did not answer", String(error.message || error));
  }
  const type = response.headers.get("Content-Type") || "";
  let data = null;
  if (type.includes("json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const title = (data && data.title) || `HTTP ${response.status} ${response.statusText}`;
    const error = new ApiError(response.status, String(title),
      data && data.detail ? String(data.detail) : "");
    if (response.status === 401 && !quiet) {
      window.dispatchEvent(new CustomEvent(UNAUTHORIZED, {detail: error.message}));
    }
    throw error;
  }
  return {status: response.status, data};
}

/** GET a resource under /api/v1: its body. */
export const get = (path, params, options) =>
  request("GET", url(path, params), options).then((r) => r.data);

/** The cursor of a list's `next` link (absolute or relative), or null. */
export function nextCursor(next) {
  if (!next) return null;
  return new URL(next, location.origin).searchParams.get("cursor");
}
