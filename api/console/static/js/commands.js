// Sending a command to a charger and showing how it ended.
import {ApiError, get, request, url} from "./api.js";
import {h} from "./dom.js";

/** Command statuses after which nothing more happens (docs/commands.md "The result"). */
export const FINAL = new Set(["accepted", "rejected", "callerror", "timeout", "offline",
  "expired", "invalid"]);
const WAIT_S = 10; // ?wait= on the POST; after that, poll the command resource
const POLL_MS = 1000;
const POLL_LIMIT = 90;

/** How a command's status reads: [kind for colouring, words]. */
export function outcomeKind(status) {
  if (status === "accepted") return "ok";
  if (FINAL.has(status)) return "bad";
  return "warn";
}

function clip(text, most = 160) {
  return text.length > most ? `${text.slice(0, most - 1)}…` : text;
}

/** What the charger (or GridLink) said, in one line. */
export function describe(command) {
  const parts = [command.status];
  const response = command.response;
  if (response && typeof response === "object") {
    if (response.status !== undefined) parts.push(`charger answered ${response.status}`);
    else if (Array.isArray(response.configurationKey)) {
      parts.push(`${response.configurationKey.length} configuration keys`);
    } else if (Object.keys(response).length) parts.push(clip(JSON.stringify(response)));
  }
  const error = [command.errorCode, command.errorDescription].filter(Boolean).join(": ");
  if (error) parts.push(error);
  return parts.join(" — ");
}

/** A line on `outcomes` for something not sent (the form lacks a value). */
export function note(outcomes, text) {
  outcomes.prepend(h("li", {className: "bad", text}));
}

/**
 * POST the command, wait for its end (polling /commands/{id} after a 202), and report each
 * step on `outcomes` (a <ul>): the newest line first. Resolves to the final command or null.
 */
export async function send(outcomes, station, action, payload, label = action) {
  const line = h("li", {className: "warn"}, `${label} on ${station}: sending…`);
  outcomes.prepend(line);
  const report = (kind, text) => {
    line.className = kind;
    line.textContent = `${label} on ${station}: ${text}`;
  };
  try {
    const target = url(`/stations/${encodeURIComponent(station)}/commands/${action}`,
      {wait: WAIT_S});
    let command = (await request("POST", target, {body: payload})).data;
    for (let polls = 0; !FINAL.has(command.status) && polls < POLL_LIMIT; polls += 1) {
      report("warn", `${command.status}…`);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      command = await get(`/commands/${encodeURIComponent(command.id)}`);
    }
    report(outcomeKind(command.status), describe(command));
    return command;
  } catch (error) {
    report("bad", error instanceof ApiError ? `refused (${error.status}) ${error.message}`
      : String(error));
    return null;
  }
}
