// One station: state, connectors, the operator's commands, its transactions, activity,
// command history and configuration snapshot.
import {get} from "../api.js";
import {describe, note, outcomeKind, send} from "../commands.js";
import {badge, h, labelled, show, table, value, when} from "../dom.js";
import {connection} from "./stations.js";

/** What TriggerMessage may ask for (OCPP 1.6 MessageTrigger). */
const TRIGGERS = ["BootNotification", "DiagnosticsStatusNotification",
  "FirmwareStatusNotification", "Heartbeat", "MeterValues", "StatusNotification"];

let fieldIds = 0;

/** A labelled input: [label element, input element]. */
function field(text, attributes) {
  const id = `field-${++fieldIds}`;
  const input = h(attributes.tag || "input", {id, ...attributes, tag: undefined});
  return [labelled(text, input), input];
}

/** A small form that runs `action` on submit, its button disabled meanwhile. */
function actionForm(title, fields, buttons) {
  const form = h("form", {className: "inline", "aria-label": title},
    fields.map(([label]) => label), buttons);
  form.addEventListener("submit", (event) => event.preventDefault());
  return form;
}

function button(text, run, className) {
  const node = h("button", {type: "button", className, text});
  node.addEventListener("click", async () => {
    node.disabled = true;
    try {
      await run();
    } finally {
      node.disabled = false;
    }
  });
  return node;
}

export function stationView(id, reload) {
  const outcomes = h("ul", {className: "outcomes", role: "status", "aria-live": "polite",
    "aria-label": "Command outcomes"});
  const run = async (action, payload, label) => {
    await send(outcomes, id, action, payload, label);
    reload();
  };

  const [connectorLabel, connectorInput] = field("Connector", {type: "number", min: 0,
    value: "1", className: "narrow", name: "unlock-connector"});
  // No maxlength: the API checks the 1.6 rules and says which one a value breaks.
  const [tagLabel, tagInput] = field("Id tag", {type: "text", name: "id-tag",
    autocomplete: "off"});
  const [startConnectorLabel, startConnectorInput] = field("Connector", {type: "number",
    min: 1, value: "1", className: "narrow", name: "start-connector"});
  const [triggerLabel, triggerSelect] = field("Message", {tag: "select", name: "trigger"});
  triggerSelect.append(...TRIGGERS.map((name) => h("option", {value: name, text: name})));
  const [triggerConnectorLabel, triggerConnectorInput] = field("Connector (optional)", {
    type: "number", min: 0, className: "narrow", name: "trigger-connector"});
  const integer = (input) => Number.parseInt(input.value, 10);
  /** Run `action` with `payload()`, unless a field it needs is empty (then say which). */
  const checked = (label, needs, action, payload) => () => {
    const missing = needs.find(([input]) => input.value.trim() === "");
    if (missing) {
      note(outcomes, `${label} on ${id}: enter ${missing[1]} first`);
      return Promise.resolve();
    }
    return run(action, payload(), label);
  };

  const summary = h("div", {});
  const connectors = h("div", {});
  const active = h("div", {});
  const activity = h("div", {});
  const history = h("div", {});
  const configuration = h("div", {});

  const node = h("div", {},
    h("p", {}, h("a", {href: "#/stations", text: "← All stations"})),
    h("h1", {}, "Station ", h("span", {className: "station-id", text: id})),
    summary,
    h("div", {className: "grid"},
      h("section", {className: "panel", "aria-labelledby": "connectors-title"},
        h("h2", {id: "connectors-title", text: "Connectors"}), connectors),
      h("section", {className: "panel", "aria-labelledby": "actions-title"},
        h("h2", {id: "actions-title", text: "Commands"}),
        actionForm("Reset", [], [
          button("Soft reset", () => run("Reset", {type: "Soft"}, "Soft reset")),
          " ",
          button("Hard reset", () => run("Reset", {type: "Hard"}, "Hard reset"), "secondary"),
        ]),
        actionForm("Unlock connector", [[connectorLabel]], [
          button("Unlock connector", checked("Unlock connector",
            [[connectorInput, "a connector"]], "UnlockConnector",
            () => ({connectorId: integer(connectorInput)})))]),
        actionForm("Remote start", [[tagLabel], [startConnectorLabel]], [
          button("Remote start", checked("Remote start",
            [[tagInput, "an id tag"], [startConnectorInput, "a connector"]],
            "RemoteStartTransaction",
            () => ({idTag: tagInput.value.trim(), connectorId: integer(startConnectorInput)})))]),
        actionForm("Trigger message", [[triggerLabel], [triggerConnectorLabel]], [
          button("Trigger message", () => {
            const payload = {requestedMessage: triggerSelect.value};
            if (triggerConnectorInput.value !== "") {
              payload.connectorId = integer(triggerConnectorInput);
            }
            return run("TriggerMessage", payload, `Trigger ${triggerSelect.value}`);
          })]),
        h("h2", {text: "Outcomes"}), outcomes)),
    h("section", {className: "panel", "aria-labelledby": "active-title"},
      h("h2", {id: "active-title", text: "Active transactions"}), active),
    h("div", {className: "grid"},
      h("section", {className: "panel", "aria-labelledby": "activity-title"},
        h("h2", {id: "activity-title", text: "Recent activity"}), activity),
      h("section", {className: "panel", "aria-labelledby": "history-title"},
        h("h2", {id: "history-title", text: "Command history"}), history)),
    h("section", {className: "panel", "aria-labelledby": "configuration-title"},
      h("h2", {id: "configuration-title", text: "Configuration"}),
      actionForm("Get configuration", [], [button("Get configuration",
        () => run("GetConfiguration", {}, "Get configuration"), "secondary")]),
      configuration));

  /** Each part of the page from its own request: one that fails leaves the others shown
   * (its error goes to the page's banner). */
  async function refresh() {
    const path = `/stations/${encodeURIComponent(id)}`;
    const results = await Promise.allSettled([
      get(path).then(showStation),
      get("/transactions", {station: id, active: "true", limit: 20}).then(showActive),
      get(`${path}/activity`, {limit: 20}).then(showActivity),
      get("/commands", {station: id, limit: 20}).then(showHistory),
    ]);
    const failure = results.find((r) => r.status === "rejected");
    if (failure) throw failure.reason;
  }

  function showStation(station) {
    show(summary, station, (s) => h("p", {className: "summary"}, connection(s),
      " Registration ", h("strong", {}, value(s.registration)),
      " · Security profile ", h("strong", {}, value(s.securityProfile)),
      " · Last seen ", when(s.lastSeen)));
    show(connectors, station.connectors || [], (rows) => table([
      {title: "Connector", cell: (c) => String(c.connectorId)},
      {title: "Status", cell: (c) => value(c.status)},
      {title: "Error", cell: (c) => value(c.errorCode)},
      {title: "Since", cell: (c) => when(c.timestamp)},
    ], rows, "No status reported yet."));
    const config = station.configuration;
    show(configuration, config ?? null, (c) => c && Object.keys(c).length
      ? table([
        {title: "Key", cell: ([key]) => key},
        {title: "Value", className: "id", cell: ([, v]) => value(
          typeof v === "object" && v !== null ? JSON.stringify(v) : v)},
      ], Object.entries(c), "")
      : h("p", {className: "muted",
        text: "No configuration snapshot yet: Get configuration asks the charger for one."}));
  }

  function showActive(transactions) {
    show(active, transactions.items, (rows) => table([
      {title: "Transaction", cell: (t) => String(t.id)},
      {title: "Connector", cell: (t) => value(t.connectorId)},
      {title: "Id tag", cell: (t) => value(t.idTag)},
      {title: "Started", cell: (t) => when(t.startedAt)},
      {title: "Meter start (Wh)", cell: (t) => value(t.meterStart)},
      {title: "", cell: (t) => button(`Remote stop ${t.id}`, () => run(
        "RemoteStopTransaction", {transactionId: t.id}, `Remote stop ${t.id}`))},
    ], rows, "No transaction in progress."));
  }

  function showActivity(recent) {
    show(activity, recent.items, (rows) => table([
      {title: "When", cell: (a) => when(a.at)},
      {title: "What", cell: (a) => value(a.kind)},
      {title: "", cell: (a) => value(a.summary)},
    ], rows, "Nothing recorded yet."));
  }

  function showHistory(commands) {
    show(history, commands.items, (rows) => table([
      {title: "Created", cell: (c) => when(c.createdAt)},
      {title: "Action", cell: (c) => value(c.action)},
      {title: "Outcome", cell: (c) => h("span", {}, badge(c.status, outcomeKind(c.status)),
        " ", describe(c).split(" — ").slice(1).join(" — "))},
    ], rows, "No commands sent yet."));
  }
  return {node, refresh};
}
