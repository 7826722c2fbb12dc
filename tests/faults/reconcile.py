"""The fleet's ledger (:mod:`simulator.ledger`) against what GridLink stored in MongoDB.

What the chargers were answered is what GridLink promised to keep. For the stations of one
run, :func:`reconcile` checks that

- every StartTransaction the fleet got a transactionId for is stored once, under that id,
  as the start the charger sent (station, connector, meterStart, timestamp);
- every answered StopTransaction is stored on its transaction (its meterStop), and none
  went to ``orphan_stops`` although its transaction is known;
- every sampled value of an answered MeterValues is stored once;
- no stored transaction is one no charger started, and no two share a charger, connector
  and start;

and counts what it finds: ``lost`` (answered, not stored), ``duplicated`` (stored twice, or
stored without a start), ``unanswered`` (never answered: still queued when the run ended, or
discarded by the charger after its last attempt). Each finding is also described in
``problems`` so a failing run says which message it was.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from simulator.ledger import Ledger


@dataclass
class Reconciliation:
    """What one run's ledger and database say together."""

    transactions: int = 0  # answered StartTransactions
    messages: int = 0  # transaction messages the fleet sent (each once, however often resent)
    resends: int = 0
    lost: int = 0
    duplicated: int = 0
    unanswered: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.lost == self.duplicated == self.unanswered == 0

    def lose(self, what: str) -> None:
        self.lost += 1
        self.problems.append(f"lost: {what}")

    def duplicate(self, what: str) -> None:
        self.duplicated += 1
        self.problems.append(f"duplicated: {what}")


def _ms(timestamp: str | datetime) -> str:
    """A timestamp to the millisecond, as text (MongoDB keeps milliseconds)."""
    if isinstance(timestamp, str):
        timestamp = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return timestamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{timestamp.microsecond // 1000:03d}"


async def reconcile(ledger: Ledger, db: AsyncDatabase[dict[str, Any]],
                    stations: list[str]) -> Reconciliation:
    """Compare ``ledger`` with the database for ``stations`` (the run's, and only theirs)."""
    counts = ledger.counts()
    result = Reconciliation(messages=counts["messages"], resends=counts["resends"])
    scope = {"station": {"$in": stations}}
    stored = {doc["_id"]: doc async for doc in db.transactions.find(scope)}
    samples = [doc async for doc in db.meter_values.find(scope)]
    orphans = [doc async for doc in db.orphan_stops.find(scope)]

    sent_starts: set[tuple[str, int, str, int]] = set()
    for entry in ledger.of("StartTransaction"):
        p = entry.payload
        sent_starts.add((entry.station, p["connectorId"], _ms(p["timestamp"]), p["meterStart"]))
        if not entry.answered:
            continue
        assert entry.result is not None
        result.transactions += 1
        tx = entry.result["transactionId"]
        doc = stored.get(tx)
        what = f"StartTransaction {entry.station}/{p['connectorId']} -> {tx}"
        if doc is None:
            result.lose(what)
        elif (doc["station"], doc["connector"], doc["meter_start"]) != (
                entry.station, p["connectorId"], p["meterStart"]) \
                or _ms(doc["start_time"]) != _ms(p["timestamp"]):
            result.lose(f"{what}: stored as another start {doc}")

    starts = Counter((d["station"], d["connector"], _ms(d["start_time"]), d["meter_start"])
                     for d in stored.values())
    for key, n in starts.items():
        if key not in sent_starts:
            result.duplicate(f"transaction no charger started: {key}")
        elif n > 1:
            for _ in range(n - 1):
                result.duplicate(f"one start stored {n} times: {key}")

    orphaned = Counter((o.get("station"), o.get("transaction_id")) for o in orphans)
    for entry in ledger.of("StopTransaction", answered=True):
        tx, meter_stop = entry.payload["transactionId"], entry.payload["meterStop"]
        if tx not in stored:  # a stop of a start never answered (-1) is kept as an orphan
            continue
        stop = stored[tx].get("stop")
        if stop is None or stop.get("meter_stop") != meter_stop:
            result.lose(f"StopTransaction of {tx} ({meter_stop}): stored {stop}")
        if orphaned[(entry.station, tx)]:
            result.duplicate(f"StopTransaction of {tx} also stored as an orphan")

    stored_samples = Counter((s["station"], s["connector"], _ms(s["timestamp"]), s["value"])
                             for s in samples)
    for entry in ledger.of("MeterValues", answered=True):
        p = entry.payload
        for meter_value in p["meterValue"]:
            for sampled in meter_value["sampledValue"]:
                key = (entry.station, p["connectorId"], _ms(meter_value["timestamp"]),
                       sampled["value"])
                n = stored_samples[key]
                if n == 0:
                    result.lose(f"MeterValues sample {key}")
                elif n > 1:
                    result.duplicate(f"MeterValues sample {key} stored {n} times")

    for entry in ledger.unanswered():
        result.unanswered += 1
        state = "discarded after its attempts" if entry.gave_up else "still queued"
        result.problems.append(f"unanswered ({state}, {entry.errors}): {entry.station} "
                               f"{entry.action} {entry.payload}")
    return result
