// Transactions: live (active) ones by default, or completed ones; stop an active one.
import {get, nextCursor} from "../api.js";
import {send} from "../commands.js";
import {h, labelled, show, stationLink, table, value, when} from "../dom.js";

const PAGE = 50;

export function transactionsView(reload) {
  const cursors = [null];
  let following = null;
  const choice = h("select", {id: "transactions-filter", name: "active"},
    h("option", {value: "true", text: "Live (active)"}),
    h("option", {value: "false", text: "Completed"}),
    h("option", {value: "", text: "All"}));
  const [stationInput] = [h("input", {id: "transactions-station", type: "text",
    name: "station", autocomplete: "off"})];
  const list = h("div", {"aria-live": "polite"});
  const outcomes = h("ul", {className: "outcomes", role: "status", "aria-live": "polite",
    "aria-label": "Command outcomes"});
  const next = h("button", {type: "button", className: "secondary", text: "Next page",
    hidden: true});
  const restart = () => {
    cursors.splice(1);
    reload();
  };
  choice.addEventListener("change", restart);
  stationInput.addEventListener("change", restart);
  next.addEventListener("click", () => {
    if (following) cursors.push(following);
    reload();
  });
  const node = h("section", {className: "panel"}, h("h1", {text: "Transactions"}),
    h("div", {className: "filters"},
      labelled("Show", choice),
      labelled("Station", stationInput)),
    outcomes, list, h("p", {className: "pager"}, next));

  async function refresh() {
    const page = await get("/transactions", {active: choice.value,
      station: stationInput.value.trim(), limit: PAGE, cursor: cursors.at(-1)});
    following = nextCursor(page.next);
    next.hidden = !following;
    show(list, page.items, (rows) => table([
      {title: "Transaction", cell: (t) => String(t.id)},
      {title: "Station", className: "id", cell: (t) => stationLink(t.station)},
      {title: "Connector", cell: (t) => value(t.connectorId)},
      {title: "Id tag", className: "id", cell: (t) => value(t.idTag)},
      {title: "Started", cell: (t) => when(t.startedAt)},
      {title: "Meter start (Wh)", cell: (t) => value(t.meterStart)},
      {title: "Stopped", cell: (t) => when(t.stoppedAt)},
      {title: "Meter stop (Wh)", cell: (t) => value(t.meterStop)},
      {title: "Energy (Wh)", cell: (t) => value(t.energyWh)},
      {title: "", cell: (t) => (t.stoppedAt ? "" : stopButton(t))},
    ], rows, choice.value === "true" ? "No transaction in progress." : "No transactions."));
  }

  function stopButton(transaction) {
    const node = h("button", {type: "button", text: `Remote stop ${transaction.id}`});
    node.addEventListener("click", async () => {
      node.disabled = true;
      await send(outcomes, transaction.station, "RemoteStopTransaction",
        {transactionId: transaction.id}, `Remote stop ${transaction.id}`);
      node.disabled = false;
      reload();
    });
    return node;
  }
  return {node, refresh};
}
