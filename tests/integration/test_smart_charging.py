"""Smart Charging end to end: commands through the broker and the commands service to a
charger simulated here (real websocket, real gateway, real database), the stored profiles,
and the requests refused before anything reaches the charger."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from services.envelope import CommandResult
from services.ocpp16 import iso, utcnow
from tests.charger import Charger, now
from tests.helpers import (
    add_station,
    fresh_tag,
    new_id,
    send,
    start_transaction,
    stop_transaction,
)
from tests.helpers import charging_profile as profile
from tests.processes import Stack, wait_for

pytestmark = pytest.mark.integration


# --- helpers ---------------------------------------------------------------------------------










async def exchange(stack: Stack, charger: Charger, station: str, action: str,
                   payload: dict[str, Any], answer: Any) -> tuple[list[Any], CommandResult]:
    """Send a command; the charger answers with a CALLRESULT payload, a (code, text)
    CALLERROR, or raw frame text; return the frame it received and the result."""
    pending = asyncio.create_task(send(stack, station, action, payload))
    frame = await charger.next_csms_call(timeout=20)
    assert frame[2] == action, frame
    if isinstance(answer, tuple):
        await charger.answer([4, frame[1], answer[0], answer[1], {}])
    elif isinstance(answer, str):
        await charger.ws.send(answer.replace("UID", frame[1]))
    else:
        await charger.answer([3, frame[1], answer])
    return frame, await asyncio.wait_for(pending, 30)


async def refused(stack: Stack, charger: Charger, station: str, action: str,
                  payload: dict[str, Any]) -> CommandResult:
    """A command that must be answered invalid with nothing sent to the charger."""
    result = await send(stack, station, action, payload)
    assert result.status == "invalid", result
    assert "currentTime" in await charger.result("Heartbeat", {})  # the charger heard nothing
    assert charger.incoming.empty()
    return result






async def stored(stack: Stack, station: str) -> list[dict[str, Any]]:
    return await stack.db().charging_profiles.find({"station": station},
                                                   sort=[("_id", 1)]).to_list()




NOW = utcnow()
LATER = iso(NOW + timedelta(days=1))
EARLIER = iso(NOW - timedelta(days=1))


# --- SetChargingProfile ---------------------------------------------------------------------


async def test_profiles_are_stored_replaced_and_listed(stack: Stack) -> None:
    station = new_id("SCP")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        maximum = profile("ChargePointMaxProfile", profile_id=10, connector=0, limit=32)
        frame, result = await exchange(stack, charger, station, "SetChargingProfile", maximum,
                                       {"status": "Accepted"})
        assert frame[3] == maximum and result.status == "accepted"
        daily = profile(profile_id=20, stack_level=1, chargingProfileKind="Recurring",
                        recurrencyKind="Daily", validFrom=EARLIER, validTo=LATER,
                        schedule={"startSchedule": "2026-01-01T00:00:00Z",
                                  "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16},
                                                             {"startPeriod": 28_800, "limit": 6}]})
        await exchange(stack, charger, station, "SetChargingProfile", daily,
                       {"status": "Accepted"})

        async def ids() -> list[int]:
            return sorted(p["charging_profile_id"] for p in await stored(stack, station))

        await wait_for(lambda: _equals(ids(), [10, 20]), what="two profiles stored")
        # Same connector, purpose and stack level: replaces profile 20 (§3.13.2).
        await exchange(stack, charger, station, "SetChargingProfile",
                       profile(profile_id=21, stack_level=1, limit=10), {"status": "Accepted"})
        await wait_for(lambda: _equals(ids(), [10, 21]), what="profile 20 replaced")
        # Same chargingProfileId at another stack level: replaces it too (§5.16.4).
        await exchange(stack, charger, station, "SetChargingProfile",
                       profile(profile_id=21, stack_level=2, limit=8), {"status": "Accepted"})
        await wait_for(lambda: _equals(ids(), [10, 21]), what="profile 21 moved")
        # Declined answers change nothing.
        _, rejected = await exchange(stack, charger, station, "SetChargingProfile",
                                     profile(profile_id=30, stack_level=3),
                                     {"status": "Rejected"})
        assert rejected.status == "rejected"
    docs = {p["charging_profile_id"]: p for p in await stored(stack, station)}
    assert sorted(docs) == [10, 21]
    assert docs[21]["stack_level"] == 2
    assert docs[21]["schedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 8}]
    code, out, err = await stack.cli("profiles", "list", "--station", station, "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["connector"], r["purpose"], r["chargingProfileId"]) for r in rows] == [
        (0, "ChargePointMaxProfile", 10), (1, "TxDefaultProfile", 21)]
    assert rows[0]["schedule"] == "0s 32A" and rows[1]["origin"] == "request"
    code, out, _ = await stack.cli("profiles", "list", "--station", station)
    assert code == 0 and "ChargePointMaxProfile" in out


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_tx_profile_needs_the_active_transaction_and_ends_with_it(stack: Stack) -> None:
    station, tag = new_id("SCT"), await fresh_tag(stack, "SC")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        nothing = await refused(stack, charger, station, "SetChargingProfile",
                                profile("TxProfile"))
        assert nothing.error_code == "NoActiveTransaction"
        ghost = await refused(stack, charger, station, "SetChargingProfile",
                              profile("TxProfile", transactionId=2_000_000_001))
        assert ghost.error_code == "UnknownTransaction"
        transaction = await start_transaction(charger, tag)
        missing = await refused(stack, charger, station, "SetChargingProfile",
                                profile("TxProfile"))
        assert missing.error_code == "OccurenceConstraintViolation"
        assert str(transaction) in (missing.error_description or "")
        wrong = await refused(stack, charger, station, "SetChargingProfile",
                              profile("TxProfile", connector=2, transactionId=transaction))
        assert wrong.error_code == "ConnectorMismatch"
        tx_profile = profile("TxProfile", profile_id=5, transactionId=transaction, limit=12.5)
        _, result = await exchange(stack, charger, station, "SetChargingProfile", tx_profile,
                                   {"status": "Accepted"})
        assert result.status == "accepted"

        async def tx_profiles() -> list[Any]:
            return [p["transaction_id"] for p in await stored(stack, station)]

        await wait_for(lambda: _equals(tx_profiles(), [transaction]), what="TxProfile stored")
        await stop_transaction(charger, transaction)
        await wait_for(lambda: _equals(tx_profiles(), []), what="TxProfile ended")
        after = await refused(stack, charger, station, "SetChargingProfile",
                              profile("TxProfile", transactionId=transaction))
        assert after.error_code == "TransactionStopped"
    assert await stack.db().commands.count_documents(
        {"station": station, "action": "SetChargingProfile"}) == 1


async def test_charger_errors_and_garbage_fail_the_command_only(stack: Stack) -> None:
    station = new_id("SCE")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        _, error = await exchange(stack, charger, station, "SetChargingProfile",
                                  profile(profile_id=1), ("NotSupported", "no smart charging"))
        assert (error.status, error.error_code) == ("callerror", "NotSupported")
        _, garbage = await exchange(stack, charger, station, "SetChargingProfile",
                                    profile(profile_id=2), {"status": "Sure"})
        assert garbage.status == "callerror"
        _, composite = await exchange(stack, charger, station, "GetCompositeSchedule",
                                      {"connectorId": 1, "duration": 60},
                                      {"status": "Accepted", "chargingSchedule": {
                                          "chargingRateUnit": "X"}})
        assert composite.status == "callerror"
        _, clear = await exchange(stack, charger, station, "ClearChargingProfile", {},
                                  '[3, "UID", {"status": 7}]')
        assert clear.status == "callerror"
        # The service is fine: the next command goes through and is stored.
        _, ok = await exchange(stack, charger, station, "SetChargingProfile",
                               profile(profile_id=3), {"status": "Accepted"})
        assert ok.status == "accepted"
    await wait_for(lambda: _equals(_profile_ids(stack, station), [3]), what="profile 3 only")
    assert await stack.db().composite_schedules.count_documents({"station": station}) == 0


async def _profile_ids(stack: Stack, station: str) -> list[int]:
    return sorted(p["charging_profile_id"] for p in await stored(stack, station))


async def test_capabilities_from_configuration_are_enforced(stack: Stack) -> None:
    station = new_id("SCC")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await exchange(stack, charger, station, "GetConfiguration", {}, {"configurationKey": [
            {"key": "NumberOfConnectors", "readonly": True, "value": "1"},
            {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "2"},
            {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True,
             "value": "Current"},
            {"key": "MaxChargingProfilesInstalled", "readonly": True, "value": "1"}]})
        cases = [(profile(connector=2), "UnknownConnector"),
                 (profile(stack_level=3), "PropertyConstraintViolation"),
                 (profile(schedule={"chargingRateUnit": "W"}), "UnsupportedUnit")]
        for payload, code in cases:
            result = await refused(stack, charger, station, "SetChargingProfile", payload)
            assert result.error_code == code, result
        await exchange(stack, charger, station, "SetChargingProfile", profile(profile_id=1),
                       {"status": "Accepted"})
        await wait_for(lambda: _equals(_profile_ids(stack, station), [1]), what="stored")
        full = await refused(stack, charger, station, "SetChargingProfile",
                             profile(profile_id=2, stack_level=1))
        assert full.error_code == "TooManyProfiles"
        # Replacing the one it holds is fine.
        _, replaced = await exchange(stack, charger, station, "SetChargingProfile",
                                     profile(profile_id=2, stack_level=0),
                                     {"status": "Accepted"})
        assert replaced.status == "accepted"
        unit = await refused(stack, charger, station, "GetCompositeSchedule",
                             {"connectorId": 1, "duration": 60, "chargingRateUnit": "W"})
        assert unit.error_code == "UnsupportedUnit"


# --- ClearChargingProfile ----------------------------------------------------------------------


async def test_clear_charging_profile_removes_what_it_selects(stack: Stack) -> None:
    station = new_id("SCL")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        for payload in (profile("ChargePointMaxProfile", profile_id=1, connector=0),
                        profile(profile_id=2, connector=1, stack_level=0),
                        profile(profile_id=3, connector=2, stack_level=0),
                        profile(profile_id=4, connector=2, stack_level=1)):
            await exchange(stack, charger, station, "SetChargingProfile", payload,
                           {"status": "Accepted"})
        await wait_for(lambda: _equals(_profile_ids(stack, station), [1, 2, 3, 4]),
                       what="four profiles")
        # Criteria matching nothing GridLink knows of: refused, nothing sent.
        for criteria, code in (({"id": 99}, "NoMatchingProfile"),
                               ({"connectorId": 1, "stackLevel": 5}, "NoMatchingProfile"),
                               ({"connectorId": 0, "chargingProfilePurpose": "TxProfile"},
                                "PropertyConstraintViolation")):
            result = await refused(stack, charger, station, "ClearChargingProfile", criteria)
            assert result.error_code == code
        # Logical AND of the fields: connector 2 at stack level 1 only.
        frame, _ = await exchange(stack, charger, station, "ClearChargingProfile",
                                  {"connectorId": 2, "stackLevel": 1}, {"status": "Accepted"})
        assert frame[3] == {"connectorId": 2, "stackLevel": 1}
        await wait_for(lambda: _equals(_profile_ids(stack, station), [1, 2, 3]),
                       what="profile 4 cleared")
        # An id ignores the other fields.
        await exchange(stack, charger, station, "ClearChargingProfile",
                       {"id": 2, "connectorId": 2}, {"status": "Accepted"})
        await wait_for(lambda: _equals(_profile_ids(stack, station), [1, 3]),
                       what="profile 2 cleared")
        # "Unknown": the charger holds none of them, so GridLink forgets them as well.
        await exchange(stack, charger, station, "ClearChargingProfile",
                       {"chargingProfilePurpose": "TxDefaultProfile"}, {"status": "Unknown"})
        await wait_for(lambda: _equals(_profile_ids(stack, station), [1]),
                       what="profile 3 forgotten")
        # No criteria: everything, and always allowed.
        await exchange(stack, charger, station, "ClearChargingProfile", {},
                       {"status": "Accepted"})
        await wait_for(lambda: _equals(_profile_ids(stack, station), []), what="all cleared")
        _, again = await exchange(stack, charger, station, "ClearChargingProfile", {},
                                  {"status": "Unknown"})
        assert again.status == "accepted" and again.response == {"status": "Unknown"}


# --- GetCompositeSchedule ----------------------------------------------------------------------


async def test_get_composite_schedule_answers_are_recorded(stack: Stack) -> None:
    station = new_id("SCG")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        bad = await refused(stack, charger, station, "GetCompositeSchedule",
                            {"connectorId": 1, "duration": 0})
        assert bad.error_code == "PropertyConstraintViolation"
        start_at = now()
        schedule = {"duration": 3600, "chargingRateUnit": "A", "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 16}, {"startPeriod": 1800, "limit": 10.5}]}
        _, result = await exchange(
            stack, charger, station, "GetCompositeSchedule",
            {"connectorId": 1, "duration": 3600, "chargingRateUnit": "A"},
            {"status": "Accepted", "connectorId": 1, "scheduleStart": start_at,
             "chargingSchedule": schedule})
        assert result.status == "accepted" and result.response["chargingSchedule"] == schedule
        _, declined = await exchange(stack, charger, station, "GetCompositeSchedule",
                                     {"connectorId": 0, "duration": 60},
                                     {"status": "Rejected"})
        assert declined.status == "rejected"
        in_watts = {**schedule, "chargingRateUnit": "A"}
        _, other_unit = await exchange(  # asked in W, answered in A
            stack, charger, station, "GetCompositeSchedule",
            {"connectorId": 2, "duration": 3600, "chargingRateUnit": "W"},
            {"status": "Accepted", "connectorId": 2, "scheduleStart": start_at,
             "chargingSchedule": in_watts})
        assert other_unit.status == "accepted"

    async def recorded() -> bool:
        return await stack.db().composite_schedules.count_documents({"station": station}) == 3

    await wait_for(recorded, what="three answers recorded")
    code, out, err = await stack.cli("profiles", "composite", "--station", station, "--json")
    assert code == 0, err
    rows = {r["connector"]: r for r in json.loads(out)}
    assert rows[1]["status"] == "Accepted" and rows[1]["schedule"] == "0s 16A, 1800s 10.5A"
    assert (rows[1]["unit"], rows[1]["flags"]) == ("A", None)
    assert rows[1]["scheduleStart"] is not None
    assert rows[0]["status"] == "Rejected" and rows[0]["schedule"] == ""
    assert (rows[2]["unit"], rows[2]["askedUnit"], rows[2]["flags"]) == ("A", "W",
                                                                        "unit_mismatch")


# --- RemoteStartTransaction with a profile ---------------------------------------------------


async def test_remote_start_profile_follows_its_transaction(stack: Stack) -> None:
    station, tag = new_id("SCR"), await fresh_tag(stack, "SC")
    await add_station(stack, station)
    tx_profile = profile("TxProfile", profile_id=7, limit=10)["csChargingProfiles"]
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        _, result = await exchange(stack, charger, station, "RemoteStartTransaction",
                                   {"connectorId": 2, "idTag": tag,
                                    "chargingProfile": tx_profile}, {"status": "Accepted"})
        assert result.status == "accepted"

        async def pending() -> bool:
            docs = await stored(stack, station)
            return len(docs) == 1 and docs[0].get("pending") is True

        await wait_for(pending, what="pending remote-start profile")
        transaction = await start_transaction(charger, tag, connector=2)

        async def attached() -> bool:
            docs = await stored(stack, station)
            return [(d["connector"], d["transaction_id"], d.get("pending")) for d in docs] == [
                (2, transaction, None)]

        await wait_for(attached, what="profile attached to the transaction")
        await stop_transaction(charger, transaction)
        await wait_for(lambda: _equals(stored(stack, station), []), what="profile ended")
