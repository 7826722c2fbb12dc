"""Local Auth List Management end to end: `gridlink locallist sync` -> commands service ->
gateway -> a charger simulated here that keeps a local list, and back into MongoDB.

The id-tag store is shared by the whole test session, so expectations are computed from it
(``commands.local_list.repository.desired_from_store``) rather than assumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from commands.local_list import repository, rules
from services.ocpp16 import utcnow
from tests.charger import Charger
from tests.helpers import add_station, add_tag, new_id
from tests.helpers import new_tag as _new_tag
from tests.processes import Stack, finish

pytestmark = pytest.mark.integration


class ListCharger:
    """Answers GetLocalListVersion and SendLocalList like a charger with a local list
    (and GetConfiguration with ``configuration``).

    ``script`` holds answers for the next SendLocalList calls, in order: a CALLRESULT
    payload (the update is applied only when it says Accepted) or a (code, description)
    CALLERROR; with the script empty, every update is applied and Accepted (Differential
    ones only when their version is higher, else VersionMismatch, as §7.47 says).
    """

    def __init__(self, charger: Charger, *, version: int = 0) -> None:
        self.charger = charger
        self.version = version
        self.configuration: dict[str, str] = {}  # read-only keys for GetConfiguration
        self.entries: dict[str, dict[str, Any]] = {}
        self.script: list[Any] = []
        self.received: list[dict[str, Any]] = []
        self.asked = 0

    async def serve(self) -> None:
        while True:
            frame = await self.charger.incoming.get()
            action, payload = frame[2], frame[3]
            if action == "GetLocalListVersion":
                self.asked += 1
                await self.charger.answer([3, frame[1], {"listVersion": self.version}])
                continue
            if action == "GetConfiguration":
                await self.charger.answer([3, frame[1], {"configurationKey": [
                    {"key": key, "readonly": True, "value": value}
                    for key, value in self.configuration.items()]}])
                continue
            assert action == "SendLocalList", frame
            self.received.append(payload)
            answer = self.script.pop(0) if self.script else self._apply_status(payload)
            if isinstance(answer, tuple):
                await self.charger.answer([4, frame[1], answer[0], answer[1], {}])
                continue
            if answer.get("status") == "Accepted":
                self.entries = rules.apply_update(self.entries, payload)
                self.version = payload["listVersion"]
            await self.charger.answer([3, frame[1], answer])

    def _apply_status(self, payload: dict[str, Any]) -> dict[str, str]:
        if payload["updateType"] == "Differential" and payload["listVersion"] <= self.version:
            return {"status": "VersionMismatch"}
        return {"status": "Accepted"}


@contextlib.asynccontextmanager
async def list_charger(stack: Stack, station: str, *, version: int = 0
                       ) -> AsyncIterator[ListCharger]:
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        keeper = ListCharger(charger, version=version)
        task = asyncio.create_task(keeper.serve())
        try:
            yield keeper
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if task.done() and not task.cancelled() and task.exception():
                raise task.exception()  # type: ignore[misc]


async def desired(stack: Stack) -> dict[str, dict[str, Any]]:
    return await repository.desired_from_store(stack.db(), utcnow())


async def stored(stack: Stack, station: str) -> dict[str, Any]:
    document: dict[str, Any] | None = await stack.db().local_lists.find_one({"_id": station})
    assert document is not None
    return document


async def sync(stack: Stack, *args: str) -> tuple[int, str, str]:
    process = await stack.start_cli("locallist", "sync", *args)
    return await finish(process)




async def test_full_then_differential(stack: Stack) -> None:
    station, keep, block, drop = new_id("LL"), _new_tag("L"), _new_tag("L"), _new_tag("L")
    await add_station(stack, station)
    for tag in (keep, block, drop):
        await add_tag(stack, tag)
    async with list_charger(stack, station) as charger:
        code, out, err = await sync(stack, station)
        assert code == 0, err
        assert out.strip().startswith(f"{station}: in sync at version 1 (Full update")
        [full] = charger.received
        assert (full["listVersion"], full["updateType"]) == (1, "Full")
        assert charger.entries == await desired(stack)
        assert {keep, block, drop} <= charger.entries.keys()
        state = await stored(stack, station)
        assert state["version"] == 1
        assert rules.entries_from_stored(state["entries"]) == charger.entries

        new = _new_tag("L")
        await add_tag(stack, new)
        await add_tag(stack, block, status="Blocked")
        await stack.db().id_tags.delete_one({"_id": drop})
        code, out, err = await sync(stack, station)
        assert code == 0, err
        assert out.strip().startswith(f"{station}: in sync at version 2 (Differential")
        diff = charger.received[1]
        assert (diff["listVersion"], diff["updateType"]) == (2, "Differential")
        changes = {item["idTag"]: item.get("idTagInfo")
                   for item in diff["localAuthorizationList"]}
        assert changes[new] == {"status": "Accepted"}
        assert changes[block] == {"status": "Blocked"}
        assert changes[drop] is None  # removed: sent without idTagInfo
        assert keep not in changes  # unchanged tags are not sent again
        assert charger.entries == await desired(stack)
        assert (await stored(stack, station))["version"] == 2

        # Nothing changed: nothing is sent.
        code, out, err = await sync(stack, station)
        assert code == 0, err
        assert out.strip() == f"{station}: in sync at version 2"
        assert len(charger.received) == 2 and charger.asked == 3

    code, out, _ = await stack.cli("locallist", "show", station, "--json")
    assert code == 0
    shown = json.loads(out)
    assert (shown["version"], shown["reportedVersion"], shown["sync"]["state"]) == (
        2, 2, "done")
    assert {e["idTag"]: e["idTagInfo"]["status"] for e in shown["entries"]}[block] == "Blocked"


async def test_station_that_lost_its_list_gets_the_full_list(stack: Stack) -> None:
    station = new_id("LL")
    await add_station(stack, station)
    await add_tag(stack, _new_tag("L"))
    async with list_charger(stack, station) as charger:
        assert (await sync(stack, station))[0] == 0
        charger.version, charger.entries = 0, {}  # e.g. a factory reset
        code, _, err = await sync(stack, station)
        assert code == 0, err
        assert [(p["listVersion"], p["updateType"]) for p in charger.received] == [
            (1, "Full"), (2, "Full")]
        assert charger.entries == await desired(stack)
        code, _, err = await sync(stack, station, "--full")  # forced, although in sync
        assert code == 0, err
        assert charger.received[-1]["updateType"] == "Full"
        assert charger.version == 3


@pytest.mark.parametrize("refusal", ["VersionMismatch", "Failed"])
async def test_refused_differential_falls_back_to_full(stack: Stack, refusal: str) -> None:
    station = new_id("LL")
    await add_station(stack, station)
    async with list_charger(stack, station) as charger:
        assert (await sync(stack, station))[0] == 0
        await add_tag(stack, _new_tag("L"))
        charger.script.append({"status": refusal})
        code, out, err = await sync(stack, station)
        assert code == 0, err
        assert "differential update refused, then Full update" in out
        assert [(p["listVersion"], p["updateType"]) for p in charger.received] == [
            (1, "Full"), (2, "Differential"), (3, "Full")]
        assert charger.entries == await desired(stack)
    state = await stored(stack, station)
    assert (state["version"], state["sync"]["state"], state["sync"]["fallback"]) == (
        3, "done", True)


async def test_any_requesters_refused_differential_falls_back(stack: Stack) -> None:
    """Another service's own SendLocalList (the command contract) gets the fallback too."""
    station = new_id("LL")
    await add_station(stack, station)
    async with list_charger(stack, station, version=8) as charger:
        process = await stack.start_cli("command", station, "SendLocalList", json.dumps({
            "listVersion": 5, "updateType": "Differential",
            "localAuthorizationList": [{"idTag": "X1"}]}))
        code, out, err = await finish(process)
        assert code == 0, err
        assert json.loads(out) == {"status": "VersionMismatch"}

        async def full_sent() -> bool:
            state = await stack.db().local_lists.find_one({"_id": station})
            return bool(state and (state.get("sync") or {}).get("state") == "done")

        from tests.processes import wait_for

        await wait_for(full_sent, what="fallback Full update accepted")
        assert [(p["listVersion"], p["updateType"]) for p in charger.received] == [
            (5, "Differential"), (6, "Full")]
        assert charger.entries == await desired(stack)
        assert (await stored(stack, station))["version"] == 6


async def test_long_lists_are_split_by_send_local_list_max_length(stack: Stack) -> None:
    station = new_id("LL")
    await add_station(stack, station)
    for _ in range(3):
        await add_tag(stack, _new_tag("L"))
    total = len(await desired(stack))
    per_message = max(1, -(-total // 3))  # about three messages
    async with list_charger(stack, station) as charger:
        charger.configuration = {"SendLocalListMaxLength": str(per_message),
                                 "LocalAuthListMaxLength": "10000"}
        code, _, err = await stack.cli("command", station, "GetConfiguration")
        assert code == 0, err
        code, _, err = await sync(stack, station)
        assert code == 0, err
        kinds = [p["updateType"] for p in charger.received]
        assert kinds[0] == "Full" and set(kinds[1:]) <= {"Differential"} and len(kinds) > 1
        assert all(len(p["localAuthorizationList"]) <= per_message for p in charger.received)
        assert [p["listVersion"] for p in charger.received] == list(range(1, len(kinds) + 1))
        assert charger.entries == await desired(stack)
        assert (await stored(stack, station))["version"] == len(kinds)

        # Over the station's size: refused before any SendLocalList reaches it.
        code, _, err = await stack.cli("command", station, "SendLocalList", json.dumps({
            "listVersion": 99, "updateType": "Full", "localAuthorizationList": [
                {"idTag": f"T{i}", "idTagInfo": {"status": "Accepted"}}
                for i in range(per_message + 1)]}))
        assert code == 1 and "invalid command: ListTooLong" in err


async def test_list_larger_than_the_station_holds(stack: Stack) -> None:
    station = new_id("LL")
    await add_station(stack, station)
    await add_tag(stack, _new_tag("L"))
    await add_tag(stack, _new_tag("L"))
    async with list_charger(stack, station) as charger:
        charger.configuration = {"LocalAuthListMaxLength": "1"}
        code, _, err = await stack.cli("command", station, "GetConfiguration")
        assert code == 0, err
        code, out, err = await sync(stack, station)
        assert code == 1 and out == ""
        assert "holds at most 1 (LocalAuthListMaxLength)" in err
        assert charger.received == []


@pytest.mark.parametrize(("payload", "needle"), [
    ({"listVersion": 0, "updateType": "Full"}, "listVersion must be at least 1"),
    ({"listVersion": -1, "updateType": "Full"}, "listVersion must be at least 1"),
    ({"listVersion": 2, "updateType": "Full", "localAuthorizationList": [
        {"idTag": "A", "idTagInfo": {"status": "Accepted"}},
        {"idTag": "A", "idTagInfo": {"status": "Blocked"}}]}, "appears twice"),
    ({"listVersion": 2, "updateType": "Full", "localAuthorizationList": [{"idTag": "A"}]},
     "needs idTagInfo"),
    ({"listVersion": 2, "updateType": "Sideways"}, "PropertyConstraintViolation"),
    ({"listVersion": 2, "updateType": "Full", "localAuthorizationList": [
        {"idTag": "A", "idTagInfo": {"status": "Accepted", "parentIdTag": "P" * 21}}]},
     "TypeConstraintViolation"),
])
async def test_bad_send_local_list_never_reaches_the_charger(stack: Stack,
                                                             payload: dict[str, Any],
                                                             needle: str) -> None:
    station = new_id("LL")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        code, out, err = await stack.cli("command", station, "SendLocalList",
                                         json.dumps(payload))
        assert code == 1 and out == ""
        assert "invalid command" in err and needle in err
        assert "currentTime" in await charger.result("Heartbeat", {})
        assert charger.incoming.empty()
    assert await stack.db().commands.count_documents({"station": station}) == 0


async def test_station_without_a_local_list(stack: Stack) -> None:
    station = new_id("LL")
    await add_station(stack, station)
    async with list_charger(stack, station, version=-1) as charger:
        code, out, err = await sync(stack, station)
        assert code == 1 and out == ""
        assert "no local authorization list (GetLocalListVersion: -1)" in err
        code, _, err = await stack.cli("command", station, "SendLocalList",
                                       '{"listVersion": 1, "updateType": "Full"}')
        assert code == 1 and "invalid command: NotSupported" in err
        assert charger.received == []


@pytest.mark.parametrize(("answer", "reason"), [
    (("InternalError", "flash full"), "callerror: InternalError flash full"),
    ({"status": "Perhaps"}, "callerror: PropertyConstraintViolation"),
    ({"status": "NotSupported"}, "answered NotSupported"),
])
async def test_failed_update_keeps_the_old_list(stack: Stack, answer: Any,
                                                reason: str) -> None:
    station = new_id("LL")
    await add_station(stack, station)
    async with list_charger(stack, station) as charger:
        charger.script.append(answer)
        code, out, err = await sync(stack, station)
        assert code == 1 and out == ""
        assert err.startswith(f"gridlink: {station}: failed: ") and reason in err
        assert len(err.strip().splitlines()) == 1
        state = await stored(stack, station)
        assert state.get("version") is None and "entries" not in state
        assert (state["sync"]["state"], len(charger.received)) == ("failed", 1)
        # The services survived: the next sync works.
        code, _, err = await sync(stack, station)
        assert code == 0, err
        assert (await stored(stack, station))["version"] == charger.version


async def test_one_sync_at_a_time_per_station(stack: Stack) -> None:
    station = new_id("LL")
    await add_station(stack, station)
    async with list_charger(stack, station) as charger:
        # Another sync is running (planned, its first message not answered yet).
        await repository.begin_job(stack.db(), station, [{"listVersion": 1, "updateType":
                                                          "Full"}], timeout_s=30, now=utcnow())
        code, out, err = await sync(stack, station)
        assert code == 1 and out == ""
        assert f"gridlink: {station}: a local list sync of {station} is already running" in err
        assert charger.received == []
        # A job that stopped making progress long ago does not block forever.
        await stack.db().local_lists.update_one({"_id": station}, {"$set": {
            "sync.updated_at": utcnow() - timedelta(minutes=5)}})
        code, out, err = await sync(stack, station)
        assert code == 0, err
        assert charger.version == 1


async def test_sync_all_and_offline_stations(stack: Stack) -> None:
    online, offline = new_id("LL"), new_id("LL")
    await add_station(stack, online)
    await add_station(stack, offline)
    async with list_charger(stack, online):
        code, out, err = await sync(stack, online, offline)
        assert code == 1
        assert out.strip().startswith(f"{online}: in sync at version 1")
        assert f"gridlink: {offline}: GetLocalListVersion offline" in err
        code, out, err = await sync(stack, "--all")
        assert code == 1  # other tests' stations are offline
        assert f"{online}: in sync at version 1" in out.splitlines()
        assert f"gridlink: {offline}: GetLocalListVersion offline" in err
    code, _, err = await stack.cli("locallist", "sync")
    assert code == 2 and "give STATION... or --all" in err
