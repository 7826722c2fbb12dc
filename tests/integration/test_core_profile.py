"""Core-profile commands with their stored state, the command lifecycle options, triggers."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.charger import Charger, now
from tests.helpers import add_station, answer_next, new_id
from tests.processes import Stack, wait_for

pytestmark = pytest.mark.integration


async def test_change_availability_scheduled_until_status_confirms(stack: Stack) -> None:
    station = new_id("AV")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("command", station, "ChangeAvailability",
                                    '{"connectorId": 1, "type": "Inoperative"}')
        await answer_next(charger, "ChangeAvailability", {"status": "Scheduled"})
        assert (await process.wait()) == 0
        code, out, _ = await stack.cli("availability", "list", "--station", station, "--json")
        assert code == 0
        row = json.loads(out)[0]
        assert (row["requested"], row["answer"], row["confirmed"]) == (
            "Inoperative", "Scheduled", False)
        # The transaction ends; the connector becomes Unavailable: confirmed.
        await charger.result("StatusNotification", {
            "connectorId": 1, "errorCode": "NoError", "status": "Unavailable",
            "timestamp": now()})

    async def confirmed() -> bool:
        doc = await stack.db().availability.find_one({"_id": f"{station}/1"})
        return bool(doc and doc["confirmed"])

    await wait_for(confirmed, what="availability confirmed by StatusNotification")


async def test_configuration_snapshot_and_read_only_keys(stack: Stack) -> None:
    station = new_id("CFG")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("command", station, "GetConfiguration", "{}")
        await answer_next(charger, "GetConfiguration", {
            "configurationKey": [
                {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
                {"key": "NumberOfConnectors", "readonly": True, "value": "2"}],
            "unknownKey": []})
        assert (await process.wait()) == 0

        code, _, err = await stack.cli("command", station, "ChangeConfiguration",
                                       '{"key": "NumberOfConnectors", "value": "3"}')
        assert code == 1 and "ReadOnly" in err
        assert charger.incoming.empty()

        process = await stack.start_cli("command", station, "ChangeConfiguration",
                                    '{"key": "HeartbeatInterval", "value": "60"}')
        await answer_next(charger, "ChangeConfiguration", {"status": "Accepted"})
        assert (await process.wait()) == 0
        process = await stack.start_cli("command", station, "GetConfiguration",
                                    '{"key": ["VendorThing"]}')
        await answer_next(charger, "GetConfiguration", {"unknownKey": ["VendorThing"]})
        assert (await process.wait()) == 0
    code, out, _ = await stack.cli("config", "show", station, "--json")
    assert code == 0
    rows = {r["key"]: r for r in json.loads(out)}
    assert rows["HeartbeatInterval"]["value"] == "60"
    assert rows["NumberOfConnectors"]["readonly"] is True
    assert rows["VendorThing"]["readonly"] == "unknown"


async def test_remote_start_and_stop_by_connector(stack: Stack) -> None:
    station = new_id("RS")
    tag = f"T{uuid.uuid4().hex[:8]}"
    await add_station(stack, station)
    await stack.cli("tags", "add", tag)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        code, _, err = await stack.cli("command", station, "RemoteStartTransaction", json.dumps(
            {"idTag": tag, "connectorId": 1, "chargingProfile": {
                "chargingProfileId": 1, "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
                "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 16}]}}}))
        assert code == 1 and "TxProfile" in err
        process = await stack.start_cli("remote", "start", station, tag, "--connector", "1",
                                        "--limit", "10")
        frame = await answer_next(charger, "RemoteStartTransaction", {"status": "Accepted"})
        assert frame[3]["chargingProfile"]["chargingSchedule"]["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": 10.0}]
        assert (await process.wait()) == 0
        start = await charger.result("StartTransaction", {
            "connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": now()})
        code, _, err = await stack.cli("command", station, "RemoteStopTransaction",
                                       '{"transactionId": 1999999999}')
        assert code == 1 and "UnknownTransaction" in err
        process = await stack.start_cli("remote", "stop", station, "--connector", "1")
        frame = await answer_next(charger, "RemoteStopTransaction", {"status": "Accepted"})
        assert frame[3] == {"transactionId": start["transactionId"]}
        assert (await process.wait()) == 0



async def test_unlock_connector_zero_is_refused(stack: Stack) -> None:
    station = new_id("UL")
    await add_station(stack, station)
    code, _, err = await stack.cli("command", station, "UnlockConnector", '{"connectorId": 0}')
    assert code == 1 and "connectorId must be > 0" in err


async def test_trigger_message_lets_a_pending_station_send(stack: Stack) -> None:
    station = new_id("TRIG")
    await add_station(stack, station, registration="Pending")
    async with Charger.connect(stack.gateway_url, station) as charger:
        assert (await charger.boot())["status"] == "Pending"
        process = await stack.start_cli("command", station, "TriggerMessage",
                                    '{"requestedMessage": "StatusNotification", "connectorId": 1}')
        await answer_next(charger, "TriggerMessage", {"status": "Accepted"})
        assert (await process.wait()) == 0
        answer = await charger.result("StatusNotification", {
            "connectorId": 1, "errorCode": "NoError", "status": "Available"})
        assert answer == {}
    assert await stack.db().connector_status.find_one({"_id": f"{station}/1"})


async def test_queue_if_offline_sends_after_the_next_boot(stack: Stack) -> None:
    station = new_id("Q")
    await add_station(stack, station)
    code, out, err = await stack.cli("command", station, "ClearCache", "--queue-if-offline",
                                     "--no-wait", "--id", f"q-{station}")
    assert code == 0, err
    assert json.loads(out) == {"submitted": True}

    async def queued() -> bool:
        doc = await stack.db().commands.find_one({"_id": f"q-{station}"})
        return bool(doc and doc["status"] == "queued")

    await wait_for(queued, what="command queued for the offline station")
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await answer_next(charger, "ClearCache", {"status": "Accepted"})

    async def accepted() -> bool:
        doc = await stack.db().commands.find_one({"_id": f"q-{station}"})
        return bool(doc and doc["status"] == "accepted")

    await wait_for(accepted, what="queued command accepted after boot")
    code, out, _ = await stack.cli("commands", "list", "--station", station, "--json")
    assert [s.split("@")[0] for s in json.loads(out)[0]["history"]] == [
        "queued", "sent", "accepted"]


async def test_queued_command_expires(stack: Stack) -> None:
    station = new_id("EXP")
    await add_station(stack, station)
    code, _, err = await stack.cli("command", station, "Reset", '{"type": "Soft"}',
                                   "--queue-if-offline", "--expires-in", "1", "--timeout", "2")
    assert code == 1
    assert err.startswith("gridlink: expired")
    assert (await stack.db().commands.find_one({"station": station}))["status"] == "expired"
