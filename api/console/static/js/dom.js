// Building DOM nodes. Every value goes in as a Text node or a property, never as markup, so
// text from chargers (station ids, id tags, configuration values) can only ever be text.

/**
 * h("a", {href: "#/x", className: "id"}, "text", otherNode) -> HTMLAnchorElement.
 * Attributes: className, text (textContent), on<Event> (listeners), hidden/disabled/value/
 * checked/selected (properties), anything else through setAttribute.
 */
export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = String(value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2).toLowerCase(), value);
    else if (["hidden", "disabled", "value", "checked", "selected", "required"].includes(name)) {
      node[name] = value;
    } else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace what `node` shows, only when the data behind it changed (keeps focus, selection
 * and the element a click is aimed at stable while polling). */
export function show(node, data, build) {
  const key = JSON.stringify(data);
  if (node.dataset.shown === key) return;
  node.dataset.shown = key;
  node.replaceChildren(...[build(data)].flat().filter(Boolean));
}

/** A table: columns [{title, cell(row) -> Node|string}], or `empty` text when no rows. */
export function table(columns, rows, empty) {
  if (!rows.length) return h("p", {className: "muted", text: empty});
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {scope: "col", text: c.title})))),
    h("tbody", {}, rows.map((row) => h("tr", {},
      columns.map((c) => h("td", {className: c.className}, c.cell(row)))))));
}

/** An ISO time as the operator's local time (the ISO text as its tooltip); "—" for none. */
export function when(iso) {
  if (!iso) return h("span", {className: "muted", text: "—"});
  const date = new Date(iso);
  const text = Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
  return h("time", {datetime: String(iso), title: String(iso), text});
}

/** A value that may be missing. */
export function value(v) {
  return v === null || v === undefined || v === "" ? h("span", {className: "muted", text: "—"})
    : String(v);
}

/** A coloured badge: kind "ok", "bad" or "warn". */
export function badge(text, kind) {
  return h("span", {className: `badge ${kind}`, text});
}

/** The link to a station's page. */
export function stationLink(id) {
  return h("a", {href: `#/stations/${encodeURIComponent(id)}`, text: id});
}

/** A control with its label (a <label for> beside it, so the label's text is only its own). */
export function labelled(text, control) {
  return h("span", {className: "field"}, h("label", {for: control.id, text}), control);
}
