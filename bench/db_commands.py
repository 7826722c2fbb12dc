"""Database round trips of GridLink's services, per action, from their own command monitoring.

GridLink's services run with GRIDLINK_DB_COMMAND_STATS (services/db_stats.py): each counts
the commands its pymongo client sends, by collection, command and the routing key of the
message it was handling (``call.StartTransaction``, ``transaction.started``...), and times
them. The benchmark scrapes every service's ``/metrics`` before and after a window
(:func:`scrape`, :func:`delta`) and divides by the messages answered per action
(:func:`per_action`): the messages the services *handled* in the window
(``gridlink_service_calls_total``), not those the simulator saw answered, so a backlog
(work of messages answered after the window) does not skew the ratio. Work done for an event
(``transaction.started``) or outside any message (``other``: health pings, timers) is
reported per handled charger message of the whole mix. A bulk write or shared read carrying
several messages' operations counts once, under the message whose task sent it (the first
of the batch), so per action the figures are approximate; the totals are exact.
"""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Counts = dict[tuple[str, str, str, str], float]  # (component, collection, command, work)
Seconds = dict[tuple[str, str, str], float]  # (component, collection, command) -> seconds
Handled = dict[str, float]  # action -> charger messages handled by the services
Scrape = tuple[Counts, Seconds, Handled]


def scrape(urls: dict[str, str]) -> Scrape:
    """The command counters and duration sums, and the messages handled per action, of
    every service (``urls``: component -> its /metrics URL); a service that does not answer
    counts nothing."""
    counts: Counts = {}
    seconds: Seconds = {}
    handled: Handled = {}
    for url in urls.values():
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            continue
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if sample.name == "gridlink_service_db_commands_total":
                    key = (labels["component"], labels["collection"], labels["command"],
                           labels["work"])
                    counts[key] = counts.get(key, 0.0) + sample.value
                elif sample.name == "gridlink_service_db_command_seconds_sum":
                    skey = (labels["component"], labels["collection"], labels["command"])
                    seconds[skey] = seconds.get(skey, 0.0) + sample.value
                elif sample.name == "gridlink_service_calls_total":
                    action = labels["action"]
                    handled[action] = handled.get(action, 0.0) + sample.value
    return counts, seconds, handled


def delta(before: Scrape, after: Scrape) -> dict[str, Any]:
    """What a window added: ``{"counts", "seconds", "handled"}`` (only non-zero entries)."""
    parts = {}
    for name, old, new in zip(("counts", "seconds", "handled"), before, after, strict=True):
        added = {k: v - old.get(k, 0.0) for k, v in new.items()}  # type: ignore[attr-defined]
        parts[name] = {k: v for k, v in added.items() if v}
    return parts


def _handled(window: dict[str, Any], stats: dict[str, Any]) -> tuple[dict[str, float], float]:
    """Messages per action and in all: handled by the services, else answered."""
    handled: dict[str, float] = stats.get("handled") or {
        a: float(r["answered"]) for a, r in window["actions"].items()}
    return handled, max(sum(handled.values()), 1.0)


def per_action(window: dict[str, Any], stats: dict[str, Any]) -> list[list[object]]:
    """Rows ``[work, handled, round trips per message, commands by collection]``: a charger
    action's commands per handled message of that action; an event's or other work's per
    handled message of the mix."""
    handled, answered_total = _handled(window, stats)
    by_work: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (_, collection, command, work), count in stats["counts"].items():
        by_work[work][f"{collection}.{command}"] += count
    rows: list[list[object]] = []
    for work in sorted(by_work):
        action = work.removeprefix("call.") if work.startswith("call.") else None
        answered = handled.get(action, 0.0) if action else answered_total
        total = sum(by_work[work].values())
        detail = ", ".join(f"{name} {count / max(answered, 1):.2f}"
                           for name, count in sorted(by_work[work].items(),
                                                     key=lambda item: -item[1]))
        label = action or f"{work} (per msg of the mix)"
        rows.append([label, int(answered), total / max(answered, 1), detail])
    return rows


def totals(window: dict[str, Any], stats: dict[str, Any]) -> dict[str, float]:
    """Round trips and client-side database milliseconds per handled message."""
    answered = _handled(window, stats)[1]
    return {"round_trips_per_msg": sum(stats["counts"].values()) / answered,
            "db_ms_per_msg": 1000 * sum(stats["seconds"].values()) / answered}


def slowest(window: dict[str, Any], stats: dict[str, Any], top: int = 12
            ) -> list[list[object]]:
    """Rows ``[component, collection, command, count, ms total, ms per handled msg]``, the
    query shapes that took the most database time first."""
    answered = _handled(window, stats)[1]
    counts: dict[tuple[str, str, str], float] = defaultdict(float)
    for (component, collection, command, _), count in stats["counts"].items():
        counts[(component, collection, command)] += count
    ranked = sorted(stats["seconds"].items(), key=lambda item: -item[1])[:top]
    return [[*key, counts.get(key, 0.0), 1000 * value, 1000 * value / max(answered, 1)]
            for key, value in ranked]
