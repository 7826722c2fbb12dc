"""What chargers report that cannot be right is answered normally, kept as sent, and
flagged (transactions/checks.py): never a negative energy, never a non-finite number, never
a meter value attached to another station's transaction."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from prometheus_client import REGISTRY

from tests.transactions.conftest import NOW, Transactions


def flagged(reason: str) -> float:
    return REGISTRY.get_sample_value("gridlink_transactions_flagged_total",
                                     {"reason": reason}) or 0.0


def meter_values(transaction_id: int | None, *samples: dict[str, Any],
                 at: str = "2026-06-01T11:10:00.000Z") -> dict[str, Any]:
    payload: dict[str, Any] = {"connectorId": 1, "meterValue": [
        {"timestamp": at, "sampledValue": list(samples)}]}
    if transaction_id is not None:
        payload["transactionId"] = transaction_id
    return payload


async def samples(tx: Transactions, **query: Any) -> list[dict[str, Any]]:
    return await tx.db["meter_values"].find(query, sort=[("value", 1)]).to_list()


async def test_a_stop_below_the_start_keeps_both_and_counts_no_energy(tx: Transactions
                                                                     ) -> None:
    await tx.tag("TAG")
    before = flagged("meter_stop_below_start")
    started = await tx.start(meter=5000)
    stop = await tx.call("StopTransaction", {
        "transactionId": started["transactionId"], "meterStop": 4000,
        "timestamp": "2026-06-01T11:30:00Z", "idTag": "TAG"})
    assert stop.reply is not None and stop.reply.payload == {"idTagInfo": {"status":
                                                                           "Accepted"}}
    stored = await tx.transaction(started["transactionId"])
    assert (stored["meter_start"], stored["stop"]["meter_stop"]) == (5000, 4000)
    assert stored["energy_wh"] is None and stored["flags"] == ["meter_stop_below_start"]
    [event] = stop.events
    assert event.body["energy_wh"] is None
    assert flagged("meter_stop_below_start") == before + 1
    await tx.stop(started["transactionId"], 4000)  # redelivered: counted once
    assert flagged("meter_stop_below_start") == before + 1


async def test_negative_readings_and_far_future_times_are_accepted_and_flagged(
        tx: Transactions) -> None:
    await tx.tag("TAG")
    future = "2026-06-03T12:00:00.000Z"  # two days after it was received
    started = await tx.start(meter=-20, at=future)
    assert started["idTagInfo"] == {"status": "Accepted"}
    assert (await tx.transaction(started["transactionId"]))["flags"] == [
        "negative_meter_start", "start_in_future"]
    await tx.stop(started["transactionId"], -5, at="2026-06-01T13:00:00Z")
    stored = await tx.transaction(started["transactionId"])
    assert stored["energy_wh"] == 15  # -20 to -5: not negative, so counted
    assert stored["flags"] == ["negative_meter_start", "start_in_future",
                               "negative_meter_stop", "stop_before_start"]
    almost = (NOW + timedelta(hours=23)).isoformat()
    fine = await tx.start(connector=2, at=almost, station="CP-2")
    assert (await tx.transaction(fine["transactionId"]))["flags"] == []


async def test_values_that_are_no_finite_number_keep_their_text_and_no_number(
        tx: Transactions) -> None:
    before = flagged("not_finite")
    payload = meter_values(None, *({"value": raw, "measurand": "Voltage", "unit": "V"}
                                   for raw in ("NaN", "1e999", "inf", "-Infinity")),
                           {"value": "abc", "measurand": "Voltage"},
                           {"value": "1_000", "measurand": "Voltage"},
                           {"value": "230.5", "measurand": "Voltage"},
                           {"value": "<signed/>", "format": "SignedData"})
    assert await tx.answer("MeterValues", payload) == {}
    stored = {s["value"]: s for s in await samples(tx)}
    for raw in ("NaN", "1e999", "inf", "-Infinity"):
        assert "value_num" not in stored[raw] and stored[raw]["flags"] == ["not_finite"]
    assert stored["abc"]["flags"] == stored["1_000"]["flags"] == ["not_a_number"]
    assert stored["230.5"]["value_num"] == 230.5 and "flags" not in stored["230.5"]
    assert "flags" not in stored["<signed/>"] and "value_num" not in stored["<signed/>"]
    assert all(math.isfinite(s["value_num"]) for s in stored.values() if "value_num" in s)
    assert flagged("not_finite") == before + 4


async def test_negative_and_future_samples_are_flagged(tx: Transactions) -> None:
    payload = meter_values(None, {"value": "-12"}, {"value": "-3", "measurand": "Temperature",
                                                    "unit": "Celsius"})
    await tx.answer("MeterValues", payload)
    await tx.answer("MeterValues", meter_values(None, {"value": "7"},
                                                at="2027-01-01T00:00:00Z"))
    stored = {s["value"]: s.get("flags") for s in await samples(tx)}
    assert stored == {"-12": ["negative_value"], "-3": None, "7": ["timestamp_in_future"]}


async def test_meter_values_naming_another_stations_transaction_stay_with_the_sender(
        tx: Transactions) -> None:
    await tx.tag("TAG")
    theirs = (await tx.start(station="CP-OTHER"))["transactionId"]
    assert await tx.answer("MeterValues", meter_values(theirs, {"value": "1200"}),
                           station="CP-1") == {}
    assert await tx.answer("MeterValues", meter_values(424242, {"value": "1300"}),
                           station="CP-1") == {}
    assert await tx.db["meter_values"].count_documents({"transaction_id": theirs}) == 0
    stored = await samples(tx)
    assert [(s["station"], s["transaction_id"], s["claimed_transaction_id"], s["flags"])
            for s in stored] == [
        ("CP-1", None, theirs, ["other_station_transaction"]),
        ("CP-1", None, 424242, ["unknown_transaction"])]
    # The owner's own values are attached as always.
    await tx.answer("MeterValues", meter_values(theirs, {"value": "1250"}), station="CP-OTHER")
    [own] = await samples(tx, transaction_id=theirs)
    assert own["station"] == "CP-OTHER" and "flags" not in own


async def test_stop_data_of_another_stations_transaction_is_not_attached_to_it(
        tx: Transactions) -> None:
    await tx.tag("TAG")
    theirs = (await tx.start(station="CP-OTHER"))["transactionId"]
    answer = await tx.answer("StopTransaction", {
        "transactionId": theirs, "meterStop": 9000, "timestamp": "2026-06-01T11:30:00Z",
        "transactionData": [{"timestamp": "2026-06-01T11:30:00Z",
                             "sampledValue": [{"value": "9000"}]}]}, station="CP-1")
    assert answer == {}
    assert (await tx.transaction(theirs))["active"]  # not stopped by a stranger
    [sample] = await samples(tx)
    assert (sample["transaction_id"], sample["claimed_transaction_id"], sample["flags"]) == (
        None, theirs, ["other_station_transaction"])


async def test_a_signed_sample_beside_the_raw_one_is_kept_and_resends_are_not(
        tx: Transactions) -> None:
    reading = {"measurand": "Energy.Active.Import.Register", "context": "Sample.Periodic"}
    payload = meter_values(None, {"value": "1200", **reading, "unit": "Wh"},
                           {"value": "1200", "format": "SignedData", **reading},
                           {"value": "1200", "unit": "kWh", **reading})
    await tx.answer("MeterValues", payload)
    await tx.answer("MeterValues", payload)
    # The same reading with the 1.6 defaults left out is the same sample.
    await tx.answer("MeterValues", meter_values(None, {"value": "1200"}))
    stored = await samples(tx, station="CP-1")
    assert sorted((s["value"], s.get("format", "-"), s.get("unit", "-")) for s in stored) == [
        ("1200", "-", "Wh"), ("1200", "-", "kWh"), ("1200", "SignedData", "-")]
