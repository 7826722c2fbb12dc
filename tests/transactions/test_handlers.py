"""The transactions handlers over the in-memory store: every write idempotent, every answer
what the charger may rely on, the events they emit; a forged call changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services import id_tags
from services.envelope import CallReply, ChargerCall
from services.memory import MemoryBus
from services.router import Dispatched
from services.runtime import ServiceRuntime
from tests.helpers import memory_runtime
from transactions.repository import CONNECTOR_STATUS, METER_VALUES, ORPHAN_STOPS, STATUS_EVENTS
from transactions.service import SPEC

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
START = {"connectorId": 1, "idTag": "TAG", "meterStart": 1000,
         "timestamp": "2026-06-01T11:00:00.000Z"}


async def runtime_with_tag(status: str = "Accepted") -> ServiceRuntime:
    runtime = memory_runtime(SPEC, transaction_id_block=10)
    runtime.service = SPEC.build(runtime)
    await runtime.store.ensure_indexes(runtime.service.indexes)  # as run_service does
    await id_tags.upsert_tag(runtime.store.db, "TAG", status=status, expiry=None, parent=None)
    return runtime


async def dispatch(runtime: ServiceRuntime, action: str, payload: dict[str, Any],
                   station: str = "CP-1", unique_id: str = "u") -> Dispatched:
    assert runtime.service is not None
    return await runtime.service.router.dispatch(ChargerCall(
        station=station, session="s", unique_id=unique_id, action=action, payload=payload,
        received_at=NOW))


async def test_a_start_retransmitted_gets_the_same_transaction_id() -> None:
    runtime = await runtime_with_tag()
    first = await dispatch(runtime, "StartTransaction", START)
    again = await dispatch(runtime, "StartTransaction", START, unique_id="u2")
    assert first.reply is not None and again.reply is not None
    assert first.reply.payload == again.reply.payload
    assert first.reply.payload["idTagInfo"] == {"status": "Accepted"}
    assert await runtime.store.db["transactions"].count_documents({}) == 1
    [event] = first.events
    assert event.routing_key == "transaction.started"
    assert event.body["transaction_id"] == first.reply.payload["transactionId"]
    assert [e.routing_key for e in again.events] == ["transaction.started"]  # at least once


async def test_a_second_accepted_start_of_the_tag_elsewhere_is_concurrent() -> None:
    runtime = await runtime_with_tag()
    await dispatch(runtime, "StartTransaction", START)
    other = await dispatch(runtime, "StartTransaction", {**START, "connectorId": 2})
    assert other.reply is not None
    assert other.reply.payload["idTagInfo"]["status"] == "ConcurrentTx"


async def test_stop_counts_energy_once_and_an_unknown_stop_is_kept() -> None:
    runtime = await runtime_with_tag()
    started = await dispatch(runtime, "StartTransaction", START)
    assert started.reply is not None
    transaction_id = started.reply.payload["transactionId"]
    stop = {"transactionId": transaction_id, "meterStop": 1750, "idTag": "TAG",
            "timestamp": "2026-06-01T11:30:00.000Z", "reason": "Local"}
    first = await dispatch(runtime, "StopTransaction", stop)
    again = await dispatch(runtime, "StopTransaction", {**stop, "meterStop": 9999})
    assert first.reply is not None
    assert first.reply.payload == {"idTagInfo": {"status": "Accepted"}}
    assert again.reply is not None and again.reply.payload == first.reply.payload
    stored = await runtime.store.db["transactions"].find_one({"_id": transaction_id})
    assert stored["energy_wh"] == 750 and not stored["active"]
    assert [e.routing_key for e in first.events] == ["transaction.stopped"]
    orphan = await dispatch(runtime, "StopTransaction", {**stop, "transactionId": -1})
    assert orphan.reply is not None and orphan.reply.payload == {
        "idTagInfo": {"status": "Accepted"}}
    assert await runtime.store.db[ORPHAN_STOPS].count_documents({}) == 1
    assert orphan.events == ()


async def test_meter_values_are_stored_once_per_sample() -> None:
    runtime = await runtime_with_tag()
    payload = {"connectorId": 1, "transactionId": 7, "meterValue": [
        {"timestamp": "2026-06-01T11:10:00.000Z", "sampledValue": [
            {"value": "1200", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": "16.5", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
            {"value": "<signed/>", "format": "SignedData", "measurand": "Power.Active.Import"}]}]}
    assert (await dispatch(runtime, "MeterValues", payload)).reply is not None
    await dispatch(runtime, "MeterValues", payload, unique_id="again")
    samples = await runtime.store.db[METER_VALUES].find({}).to_list()
    assert len(samples) == 3
    numbers = sorted(s.get("value_num") for s in samples if "value_num" in s)
    assert numbers == [16.5, 1200.0]  # the signed one is kept as text


async def test_an_older_status_never_overwrites_a_newer_one() -> None:
    runtime = await runtime_with_tag()
    newer = {"connectorId": 1, "errorCode": "NoError", "status": "Charging",
             "timestamp": "2026-06-01T11:05:00.000Z"}
    older = {**newer, "status": "Preparing", "timestamp": "2026-06-01T11:00:00.000Z"}
    first = await dispatch(runtime, "StatusNotification", newer)
    await dispatch(runtime, "StatusNotification", older, unique_id="late")
    latest = await runtime.store.db[CONNECTOR_STATUS].find_one({"_id": "CP-1/1"})
    assert latest["status"] == "Charging"
    assert await runtime.store.db[STATUS_EVENTS].count_documents({}) == 2  # history keeps both
    assert [(e.routing_key, e.body["status"]) for e in first.events] == [
        ("station.status", "Charging")]


async def test_a_blocked_tag_still_gets_its_transaction_id() -> None:
    runtime = await runtime_with_tag("Blocked")
    started = await dispatch(runtime, "StartTransaction", START)
    assert started.reply is not None
    assert started.reply.payload["idTagInfo"] == {"status": "Blocked"}
    assert isinstance(started.reply.payload["transactionId"], int)


async def test_a_forged_stop_from_the_broker_is_answered_and_changes_nothing() -> None:
    """A StopTransaction published on the broker by someone other than a gateway, with a
    MongoDB operator for a transaction id, gets a CALLERROR and no handler sees it."""
    runtime = memory_runtime(SPEC, transaction_id_block=10)
    consumers = await runtime.start()
    bus = runtime.bus
    assert isinstance(bus, MemoryBus)
    await id_tags.upsert_tag(runtime.store.db, "TAG", status="Accepted", expiry=None,
                             parent=None)
    ids = []
    for connector in (1, 2):
        started = await dispatch(runtime, "StartTransaction", {**START, "connectorId": connector})
        assert started.reply is not None
        ids.append(started.reply.payload["transactionId"])
    gateway = await bus.declare_private_queue("gateway")
    bus.bind(gateway, runtime.topology.stations, "CP-1")
    before = await everything(runtime)
    published = len(bus.published)

    forged = ChargerCall(station="CP-1", session="s", unique_id="forged",
                         action="StopTransaction", received_at=NOW, payload={
                             "transactionId": {"$in": ids}, "meterStop": 0,
                             "timestamp": "2026-06-01T11:30:00.000Z"})
    await bus.publish(runtime.topology.calls, "call.StopTransaction", forged.to_bytes())
    await bus.settled()

    [reply] = [CallReply.model_validate_json(m.body) for m in bus.waiting("gateway")]
    assert (reply.unique_id, reply.error_code) == ("forged", "TypeConstraintViolation")
    assert await everything(runtime) == before
    assert [m.routing_key for m in bus.published[published:]] == [
        "call.StopTransaction", "CP-1"]  # the call and its CALLERROR: no event
    assert bus.dead_letters == []
    runtime.stopping.set()
    await runtime.stop(consumers)
    await runtime.close()


async def everything(runtime: ServiceRuntime) -> dict[str, list[dict[str, Any]]]:
    db = runtime.store.db
    return {name: await db[name].find({}, sort=[("_id", 1)]).to_list()
            for name in sorted(await db.list_collection_names())}


async def test_events_of_one_fact_keep_their_id_and_meter_values_announce_the_reading(
        ) -> None:
    runtime = await runtime_with_tag()
    first = await dispatch(runtime, "StartTransaction", START)
    again = await dispatch(runtime, "StartTransaction", START, unique_id="resent")
    assert first.events[0].body["event_id"] == again.events[0].body["event_id"]
    assert first.reply is not None
    transaction_id = first.reply.payload["transactionId"]
    reading = {"connectorId": 1, "transactionId": transaction_id, "meterValue": [
        {"timestamp": "2026-06-01T11:05:00.000Z", "sampledValue": [{"value": "1100"}]},
        {"timestamp": "2026-06-01T11:10:00.000Z", "sampledValue": [
            {"value": "1200"}, {"value": "7.2", "measurand": "Power.Active.Import",
                                "unit": "kW"}]}]}
    updated = await dispatch(runtime, "MeterValues", reading)
    resent = await dispatch(runtime, "MeterValues", reading, unique_id="resent")
    [event] = updated.events
    assert event.routing_key == "transaction.updated"
    assert event.body["transaction_id"] == transaction_id
    assert event.body["values"] == [
        {"measurand": "Energy.Active.Import.Register", "value": "1200"},
        {"measurand": "Power.Active.Import", "value": "7.2", "unit": "kW"}]
    assert resent.events[0].body["event_id"] == event.body["event_id"]
    later = await dispatch(runtime, "MeterValues", {**reading, "meterValue": [
        {"timestamp": "2026-06-01T11:15:00.000Z", "sampledValue": [{"value": "1300"}]}]})
    assert later.events[0].body["event_id"] != event.body["event_id"]
    # not the station's transaction (or none): nothing is announced
    other = await dispatch(runtime, "MeterValues", reading, station="CP-2")
    assert other.events == ()
    none = await dispatch(runtime, "MeterValues", {**reading, "transactionId": None})
    assert none.events == ()
