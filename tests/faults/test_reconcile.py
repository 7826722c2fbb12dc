"""The reconciliation finds what it is for: an answered start that is not stored (lost), a
start stored twice and a transaction no charger started (duplicated), a sample stored twice,
a message never answered. Over the in-memory store; the fault runs use the real one."""

from __future__ import annotations

from datetime import UTC, datetime

from services.memory import memory_store
from simulator.ledger import Ledger
from tests.faults.reconcile import reconcile

T0 = "2026-12-01T10:00:00.000Z"
T1 = "2026-12-01T10:05:00.000Z"


def _start(ledger: Ledger, station: str, meter: int, at: str, tx: int | None) -> None:
    entry = ledger.sent(station, "StartTransaction", {
        "connectorId": 1, "idTag": "T", "meterStart": meter, "timestamp": at})
    if tx is not None:
        ledger.answered(entry, {"transactionId": tx, "idTagInfo": {"status": "Accepted"}})


def _doc(tx: int, station: str, meter: int, at: str) -> dict[str, object]:
    return {"_id": tx, "station": station, "connector": 1, "meter_start": meter,
            "start_time": datetime.fromisoformat(at.replace("Z", "+00:00")).replace(
                tzinfo=None), "stop": None}


async def test_a_clean_run_is_clean_and_each_fault_is_counted() -> None:
    db = memory_store().db
    ledger = Ledger()
    _start(ledger, "A", 0, T0, 1)  # stored: fine
    _start(ledger, "A", 100, T1, 2)  # answered, never stored: lost
    _start(ledger, "B", 0, T0, None)  # never answered
    await db.transactions.insert_many([
        _doc(1, "A", 0, T0),
        _doc(3, "A", 0, T0),  # the same start stored a second time
        _doc(4, "B", 7, T1),  # no charger sent this start
    ])
    sample = ledger.sent("A", "MeterValues", {"connectorId": 1, "transactionId": 1,
                                              "meterValue": [{"timestamp": T1, "sampledValue": [
                                                  {"value": "250"}]}]})
    ledger.answered(sample, {})
    stored = {"station": "A", "connector": 1, "transaction_id": 1, "value": "250",
              "timestamp": datetime(2026, 12, 1, 10, 5, tzinfo=UTC).replace(tzinfo=None)}
    await db.meter_values.insert_many([dict(stored), dict(stored)])

    result = await reconcile(ledger, db, ["A", "B"])

    assert (result.transactions, result.lost, result.duplicated, result.unanswered) == (
        2, 1, 3, 1), result.problems
    assert not result.clean

    await db.transactions.delete_many({"_id": {"$in": [3, 4]}})
    await db.transactions.insert_one(_doc(2, "A", 100, T1))
    await db.meter_values.delete_many({})
    await db.meter_values.insert_one(dict(stored))
    ledger.answered(next(ledger.of("StartTransaction", answered=False)), {"transactionId": 5})
    await db.transactions.insert_one(_doc(5, "B", 0, T0))
    assert (await reconcile(ledger, db, ["A", "B"])).clean
