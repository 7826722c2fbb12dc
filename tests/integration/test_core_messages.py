"""Every charger-initiated Core message, end to end: charger -> gateway -> RabbitMQ ->
service -> MongoDB -> back, against real processes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.ocpp16 import iso, parse_time, utcnow
from tests.charger import Charger, now
from tests.helpers import add_station, new_id
from tests.processes import Stack

pytestmark = pytest.mark.integration


async def test_boot_heartbeat_and_registry(stack: Stack) -> None:
    station = new_id()
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        boot = await charger.result("BootNotification", {
            "chargePointVendor": "Acme", "chargePointModel": "Fast-50",
            "chargePointSerialNumber": "SN-1", "firmwareVersion": "1.2.3"})
        assert boot["status"] == "Accepted"
        assert boot["interval"] == 300
        parse_time(boot["currentTime"])
        beat = await charger.result("Heartbeat", {})
        assert abs(parse_time(beat["currentTime"]) - utcnow()) < timedelta(seconds=30)
    doc = await stack.db().stations.find_one({"_id": station})
    assert doc["boot"]["charge_point_vendor"] == "Acme"
    assert doc["boot"]["firmware_version"] == "1.2.3"
    assert doc["last_boot"] is not None


async def test_boot_answers_registration_status(stack: Stack) -> None:
    pending, rejected = new_id(), new_id()
    await add_station(stack, pending, registration="Pending")
    await add_station(stack, rejected, registration="Rejected")
    async with Charger.connect(stack.gateway_url, pending) as charger:
        assert (await charger.boot())["status"] == "Pending"
        # A pending station may not send other requests (only triggered ones).
        frame = await charger.call("Authorize", {"idTag": "X"})
        assert frame[0] == 4 and frame[2] == "SecurityError"
    async with Charger.connect(stack.gateway_url, rejected) as charger:
        assert (await charger.boot())["status"] == "Rejected"
        frame = await charger.call("StatusNotification", {
            "connectorId": 0, "errorCode": "NoError", "status": "Available"})
        assert frame[0] == 4 and frame[2] == "SecurityError"


async def test_heartbeat_records_last_seen(stack: Stack) -> None:
    station = new_id()
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        before = (await stack.db().stations.find_one({"_id": station}))["last_seen"]
        await charger.result("Heartbeat", {})
    from tests.processes import wait_for

    async def seen_later() -> bool:
        doc = await stack.db().stations.find_one({"_id": station})
        return doc["last_seen"] > before

    await wait_for(seen_later, what="last_seen updated by the edge heartbeat")


async def test_authorize_statuses(stack: Stack) -> None:
    station = new_id()
    await add_station(stack, station)
    suffix = uuid.uuid4().hex[:6]
    good, blocked, old, child = (f"G{suffix}", f"B{suffix}", f"E{suffix}", f"C{suffix}")
    future = iso(utcnow() + timedelta(days=30))
    past = iso(utcnow() - timedelta(days=1))
    for args in ([good, "--expiry", future], [blocked, "--status", "Blocked"],
                 [old, "--expiry", past], [child, "--parent", good]):
        code, _, err = await stack.cli("tags", "add", *args)
        assert code == 0, err
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        info = (await charger.result("Authorize", {"idTag": good}))["idTagInfo"]
        assert info["status"] == "Accepted"
        assert parse_time(info["expiryDate"]) == parse_time(future)
        assert (await charger.result("Authorize", {"idTag": blocked}))["idTagInfo"] == {
            "status": "Blocked"}
        assert (await charger.result("Authorize", {"idTag": old}))["idTagInfo"]["status"] == \
            "Expired"
        assert (await charger.result("Authorize", {"idTag": "NOPE" + suffix}))["idTagInfo"] == {
            "status": "Invalid"}
        info = (await charger.result("Authorize", {"idTag": child}))["idTagInfo"]
        assert info == {"status": "Accepted", "parentIdTag": good}


async def test_charging_session_with_meter_values_and_status(stack: Stack) -> None:
    station = new_id()
    tag = f"T{uuid.uuid4().hex[:8]}"
    await add_station(stack, station)
    await stack.cli("tags", "add", tag)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await charger.result("StatusNotification", {
            "connectorId": 1, "errorCode": "NoError", "status": "Preparing",
            "timestamp": "2026-11-23T10:00:00Z"})
        start = await charger.result("StartTransaction", {
            "connectorId": 1, "idTag": tag, "meterStart": 1000,
            "timestamp": "2026-11-23T10:00:05Z"})
        assert start["idTagInfo"]["status"] == "Accepted"
        tx = start["transactionId"]
        assert isinstance(tx, int)
        samples = {"connectorId": 1, "transactionId": tx, "meterValue": [{
            "timestamp": "2026-11-23T10:15:00Z",
            "sampledValue": [
                {"value": "5000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "16.0", "measurand": "Current.Import", "phase": "L1", "unit": "A"}]}]}
        assert await charger.result("MeterValues", samples) == {}
        # The same MeterValues again (retransmission): stored once.
        assert await charger.result("MeterValues", samples) == {}
        # A late, out-of-order value is accepted.
        late = {"connectorId": 1, "transactionId": tx, "meterValue": [{
            "timestamp": "2026-11-23T10:05:00Z", "sampledValue": [{"value": "2000"}]}]}
        assert await charger.result("MeterValues", late) == {}
        stop = await charger.result("StopTransaction", {
            "transactionId": tx, "meterStop": 12500, "timestamp": "2026-11-23T11:00:00Z",
            "idTag": tag, "reason": "EVDisconnected",
            "transactionData": [{"timestamp": "2026-11-23T11:00:00Z",
                                 "sampledValue": [{"value": "12500", "context":
                                                   "Transaction.End"}]}]})
        assert stop["idTagInfo"]["status"] == "Accepted"
    db = stack.db()
    doc = await db.transactions.find_one({"_id": tx})
    assert doc["station"] == station and doc["connector"] == 1
    assert doc["energy_wh"] == 11500
    assert doc["stop"]["reason"] == "EVDisconnected"
    assert doc["active"] is False
    assert await db.meter_values.count_documents({"transaction_id": tx}) == 4
    status = await db.connector_status.find_one({"_id": f"{station}/1"})
    assert status["status"] == "Preparing"
    code, out, _ = await stack.cli("transactions", "list", "--station", station, "--json")
    assert code == 0
    import json

    rows = json.loads(out)
    assert rows == [{
        "transactionId": tx, "chargePointId": station, "connectorId": 1, "idTag": tag,
        "status": "Accepted", "state": "stopped", "meterStart": 1000, "meterStop": 12500,
        "energyWh": 11500, "startTime": "2026-11-23T10:00:05.000Z",
        "stopTime": "2026-11-23T11:00:00.000Z", "stopReason": "EVDisconnected",
        "supersededBy": None, "flags": []}]


async def test_retransmitted_start_and_stop_are_idempotent(stack: Stack) -> None:
    station = new_id()
    tag = f"T{uuid.uuid4().hex[:8]}"
    await add_station(stack, station)
    await stack.cli("tags", "add", tag)
    start = {"connectorId": 2, "idTag": tag, "meterStart": 10, "timestamp": now()}
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        first = await charger.result("StartTransaction", start, unique_id="start-1")
        again = await charger.result("StartTransaction", start, unique_id="start-2")
        assert again == first
        tx = first["transactionId"]
        stop = {"transactionId": tx, "meterStop": 510, "timestamp": now(), "reason": "Local"}
        await charger.result("StopTransaction", stop)
        later = {**stop, "meterStop": 9999, "timestamp": iso(utcnow() + timedelta(minutes=5))}
        await charger.result("StopTransaction", later)
    db = stack.db()
    assert await db.transactions.count_documents({"station": station}) == 1
    doc = await db.transactions.find_one({"_id": tx})
    assert doc["stop"]["meter_stop"] == 510
    assert doc["energy_wh"] == 500


async def test_stop_for_unknown_transaction_is_answered_and_kept(stack: Stack) -> None:
    station = new_id()
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        for tx in (-1, 2_000_000_000):
            answer = await charger.result("StopTransaction", {
                "transactionId": tx, "meterStop": 77, "timestamp": now()})
            assert answer == {}
    orphans = await stack.db().orphan_stops.find({"station": station}).to_list()
    assert sorted(o["transaction_id"] for o in orphans) == [-1, 2_000_000_000]


async def test_concurrent_transaction_for_the_same_tag(stack: Stack) -> None:
    one, two = new_id(), new_id()
    tag = f"T{uuid.uuid4().hex[:8]}"
    await add_station(stack, one)
    await add_station(stack, two)
    await stack.cli("tags", "add", tag)
    async with Charger.connect(stack.gateway_url, one) as a, \
            Charger.connect(stack.gateway_url, two) as b:
        await a.boot()
        await b.boot()
        first = await a.result("StartTransaction", {
            "connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": now()})
        assert first["idTagInfo"]["status"] == "Accepted"
        second = await b.result("StartTransaction", {
            "connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": now()})
        assert second["idTagInfo"]["status"] == "ConcurrentTx"
        assert second["transactionId"] != first["transactionId"]
        # Recorded even though it was not accepted.
        assert await stack.db().transactions.find_one({"_id": second["transactionId"]})
        await a.result("StopTransaction", {"transactionId": first["transactionId"],
                                           "meterStop": 5, "timestamp": now()})
        third = await b.result("StartTransaction", {
            "connectorId": 2, "idTag": tag, "meterStart": 0, "timestamp": now()})
        assert third["idTagInfo"]["status"] == "Accepted"


async def test_older_status_never_overwrites_newer(stack: Stack) -> None:
    station = new_id()
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await charger.result("StatusNotification", {
            "connectorId": 1, "errorCode": "NoError", "status": "Charging",
            "timestamp": "2026-11-23T12:00:00Z"})
        await charger.result("StatusNotification", {
            "connectorId": 1, "errorCode": "NoError", "status": "Available",
            "timestamp": "2026-11-23T11:00:00Z"})
    db = stack.db()
    assert (await db.connector_status.find_one({"_id": f"{station}/1"}))["status"] == "Charging"
    assert await db.status_events.count_documents({"station": station}) == 2


async def test_data_transfer_and_status_notifications_are_stored(stack: Stack) -> None:
    station = new_id()
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        answer = await charger.result("DataTransfer", {"vendorId": "com.acme", "messageId": "x",
                                                        "data": "hello"})
        assert answer["status"] == "UnknownVendorId"
        assert await charger.result("FirmwareStatusNotification", {"status": "Downloading"}) \
            == {}
        assert await charger.result("DiagnosticsStatusNotification", {"status": "Uploaded"}) \
            == {}
    db = stack.db()
    transfer = await db.data_transfers.find_one({"station": station})
    assert transfer["request"]["data"] == "hello"
    assert (await db.firmware_status.find_one({"_id": station}))["status"] == "Downloading"
    assert (await db.diagnostics_status.find_one({"_id": station}))["status"] == "Uploaded"


async def test_a_data_transfer_id_reused_after_a_reconnect_is_stored_again(stack: Stack
                                                                           ) -> None:
    station = new_id()
    await add_station(stack, station)
    for data in ("first connection", "second connection"):
        async with Charger.connect(stack.gateway_url, station) as charger:
            await charger.boot()
            answer = await charger.result("DataTransfer", {"vendorId": "com.acme",
                                                            "data": data}, unique_id="dt-1")
            assert answer["status"] == "UnknownVendorId"
    stored = await stack.db().data_transfers.find({"station": station}).to_list()
    assert sorted(d["request"]["data"] for d in stored) == ["first connection",
                                                            "second connection"]
    assert len({d["session"] for d in stored}) == 2


async def test_transaction_ids_are_unique_across_service_replicas(stack: Stack) -> None:
    """A second transactions replica allocates from its own block: no id is handed twice."""
    extra = stack.spawn("transactions")
    await stack.wait_ready(extra)
    station = new_id()
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        ids = []
        for n in range(30):
            answer = await charger.result("StartTransaction", {
                "connectorId": 1, "idTag": f"U{uuid.uuid4().hex[:8]}", "meterStart": n,
                "timestamp": now()})
            ids.append(answer["transactionId"])
    assert len(set(ids)) == 30
    assert await stack.stop_process(extra) == 0
