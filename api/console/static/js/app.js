// The console's shell: login and logout, hash routing, polling the shown page.
import {ApiError, apiKey, forgetKey, get, keepKey, UNAUTHORIZED} from "./api.js";
import {h, labelled} from "./dom.js";
import {commandsView} from "./views/commands.js";
import {stationView} from "./views/station.js";
import {stationsView} from "./views/stations.js";
import {transactionsView} from "./views/transactions.js";

const POLL_MS = 3000;
const view = document.getElementById("view");
const nav = document.getElementById("nav");
const banner = document.getElementById("error");
const updated = document.getElementById("updated");
let current = null; // {refresh, timer, busy}
let wanted = "#/stations"; // where to go once logged in (the page asked for, if any)

/** A message for the whole page (an API error while polling); null hides it. */
function alertText(text) {
  banner.hidden = !text;
  banner.textContent = text || "";
}

function stop() {
  if (current) clearInterval(current.timer);
  current = null;
  updated.textContent = "";
}

/** Forget the key and show the login form, with `message` (an error unless `calm`). */
function logout(message, calm = false) {
  forgetKey();
  stop();
  nav.hidden = true;
  alertText(null);
  if (location.hash && location.hash !== "#/login") wanted = location.hash;
  if (location.hash !== "#/login") history.replaceState(null, "", "#/login");
  renderLogin(message, calm);
}

function renderLogin(message, calm) {
  const key = h("input", {id: "api-key", name: "api-key", type: "password", required: true,
    autocomplete: "off", spellcheck: "false"});
  const error = h("p", {className: "error", role: "alert", hidden: !message || calm,
    text: message});
  const notice = h("p", {className: "muted", role: "status", hidden: !message || !calm,
    text: message});
  const submit = h("button", {type: "submit", text: "Log in"});
  const form = h("form", {className: "panel login", "aria-labelledby": "login-title"},
    h("h1", {id: "login-title", text: "Log in"}),
    h("p", {className: "muted",
      text: "Paste an API key (gridlink api-keys add). It stays in this tab only."}),
    labelled("API key", key),
    h("p", {}, submit), error, notice);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    notice.hidden = true;
    const candidate = key.value.trim();
    keepKey(candidate);
    try {
      await get("/stations", {limit: 1}, {quiet: true});
      key.value = "";
      if (location.hash === wanted) route();
      else location.hash = wanted; // hashchange routes
    } catch (failure) {
      forgetKey();
      error.textContent = failure instanceof ApiError
        ? `Login failed (${failure.status}): ${failure.message}` : String(failure);
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  view.replaceChildren(form);
  key.focus();
}

/** A path segment of the hash, percent-decoded (as typed, when it is not valid). */
function decoded(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

const ROUTES = [
  [/^#\/stations\/(.+)$/, (m, reload) => stationView(decoded(m[1]), reload)],
  [/^#\/stations$/, (m, reload) => stationsView(reload)],
  [/^#\/transactions$/, (m, reload) => transactionsView(reload)],
  [/^#\/commands$/, (m, reload) => commandsView(reload)],
];

/** Failures while showing a page show in the banner (a 401 has logged out already). */
function failed(error) {
  if (error instanceof ApiError && error.status === 401) return;
  alertText(error instanceof ApiError ? `API error (${error.status}): ${error.message}`
    : String(error));
}

async function refresh() {
  const page = current;
  if (!page || page.busy) return;
  page.busy = true;
  try {
    await page.refresh();
    if (page === current) {
      alertText(null);
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    }
  } catch (error) {
    if (page === current) failed(error);
  } finally {
    page.busy = false;
  }
}

function route() {
  stop();
  if (!apiKey()) {
    logout(null);
    return;
  }
  nav.hidden = false;
  const hash = location.hash.split("?")[0];
  for (const link of nav.querySelectorAll("a")) {
    const here = hash.startsWith(link.getAttribute("href"));
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  let made = null;
  for (const [pattern, make] of ROUTES) {
    const match = pattern.exec(location.hash);
    if (match) {
      made = make(match, refresh);
      break;
    }
  }
  if (!made) {
    location.hash = "#/stations"; // #/login once logged in, or a page that does not exist
    return;
  }
  view.replaceChildren(made.node);
  current = {refresh: made.refresh, busy: false, timer: setInterval(refresh, POLL_MS)};
  refresh();
}

document.getElementById("logout").addEventListener("click", () => logout("Logged out.", true));
window.addEventListener(UNAUTHORIZED, (event) => {
  if (apiKey()) logout(`Your API key was refused: ${event.detail}`);
});
window.addEventListener("hashchange", route);
route();
