// Stations: live connection state, registration, last seen, connector statuses.
import {get, nextCursor} from "../api.js";
import {badge, h, labelled, show, stationLink, table, value, when} from "../dom.js";

const PAGE = 50;

/** "connected" / "offline" as a badge. */
export function connection(station) {
  return station.connected ? badge("connected", "ok") : badge("offline", "bad");
}

/** "1: Available, 2: Charging" with each status as its own element. */
export function connectorSummary(connectors) {
  if (!connectors || !connectors.length) return value(null);
  return h("span", {}, connectors.map((c, index) => h("span", {className: "connector"},
    index ? ", " : "", `${c.connectorId}: ${c.status ?? "?"}`,
    c.errorCode && c.errorCode !== "NoError" ? ` (${c.errorCode})` : "")));
}

export function stationsView(reload) {
  const cursors = [null]; // the cursor of each page shown so far; the last is this one
  const list = h("div", {"aria-live": "polite"});
  const previous = h("button", {type: "button", className: "secondary", text: "Previous page",
    hidden: true});
  const next = h("button", {type: "button", className: "secondary", text: "Next page",
    hidden: true});
  const wantedId = h("input", {id: "open-station", type: "text", name: "station",
    autocomplete: "off"});
  const open = h("form", {className: "filters", "aria-label": "Open a station"},
    labelled("Station id", wantedId), h("button", {type: "submit", text: "Open"}));
  open.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = wantedId.value.trim();
    if (id) location.hash = `#/stations/${encodeURIComponent(id)}`;
  });
  const node = h("section", {className: "panel"}, h("h1", {text: "Stations"}), open, list,
    h("p", {className: "pager"}, previous, " ", next));
  let following = null;

  async function refresh() {
    const page = await get("/stations", {limit: PAGE, cursor: cursors.at(-1)});
    following = nextCursor(page.next);
    next.hidden = !following;
    previous.hidden = cursors.length < 2;
    show(list, page.items, (items) => table([
      {title: "Station", className: "id", cell: (s) => stationLink(s.id)},
      {title: "Connection", cell: connection},
      {title: "Registration", cell: (s) => value(s.registration)},
      {title: "Security profile", cell: (s) => value(s.securityProfile)},
      {title: "Last seen", cell: (s) => when(s.lastSeen)},
      {title: "Connectors", cell: (s) => connectorSummary(s.connectors)},
    ], items, "No stations registered yet (gridlink stations add)."));
  }
  next.addEventListener("click", () => {
    if (following) cursors.push(following);
    reload();
  });
  previous.addEventListener("click", () => {
    if (cursors.length > 1) cursors.pop();
    reload();
  });
  return {node, refresh};
}
