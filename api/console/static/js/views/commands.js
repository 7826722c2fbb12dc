// Command history: every command's lifecycle, filtered by station and status.
import {get, nextCursor} from "../api.js";
import {describe, outcomeKind} from "../commands.js";
import {badge, h, labelled, show, stationLink, table, value, when} from "../dom.js";

const PAGE = 50;
const STATUSES = ["", "queued", "sent", "accepted", "rejected", "callerror", "timeout",
  "offline", "expired"];

export function commandsView(reload) {
  const cursors = [null];
  let following = null;
  const status = h("select", {id: "commands-status", name: "status"},
    STATUSES.map((s) => h("option", {value: s, text: s || "Any"})));
  const station = h("input", {id: "commands-station", type: "text", name: "station",
    autocomplete: "off"});
  const list = h("div", {"aria-live": "polite"});
  const next = h("button", {type: "button", className: "secondary", text: "Next page",
    hidden: true});
  const restart = () => {
    cursors.splice(1);
    reload();
  };
  status.addEventListener("change", restart);
  station.addEventListener("change", restart);
  next.addEventListener("click", () => {
    if (following) cursors.push(following);
    reload();
  });
  const node = h("section", {className: "panel"}, h("h1", {text: "Command history"}),
    h("div", {className: "filters"},
      labelled("Station", station),
      labelled("Status", status)),
    list, h("p", {className: "pager"}, next));

  async function refresh() {
    const page = await get("/commands", {station: station.value.trim(), status: status.value,
      limit: PAGE, cursor: cursors.at(-1)});
    following = nextCursor(page.next);
    next.hidden = !following;
    show(list, page.items, (rows) => table([
      {title: "Created", cell: (c) => when(c.createdAt)},
      {title: "Station", className: "id", cell: (c) => stationLink(c.station)},
      {title: "Action", cell: (c) => value(c.action)},
      {title: "Payload", className: "id", cell: (c) => h("code", {
        text: JSON.stringify(c.payload ?? {})})},
      {title: "Status", cell: (c) => badge(c.status, outcomeKind(c.status))},
      {title: "Outcome", className: "id", cell: (c) => describe(c).split(" — ").slice(1)
        .join(" — ")},
    ], rows, "No commands."));
  }
  return {node, refresh};
}
