"""Site load management end to end: N chargers simulated here share a group's limit.

Each charger answers load management's TxProfiles as they arrive and applies them at once;
the site tracks what every charger may draw (its connector maximum until it got a profile)
and checks, at every profile, that no charger was ever raised while that would take the
group over its limit. The tests then assert the exact profiles each charger received.

Long on purpose: the simulated site (``Site``, ``Fleet``, ``respond``) is what every scenario
here drives and checks against; it belongs with them, not in the shared helpers.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest

from commands.load_management import allocation as lm
from commands.load_management import repository as group_store
from commands.load_management import rules as member_rules
from services.errors import ConfigurationError, GridLinkError
from tests.charger import Charger
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

#: frame -> a CALLRESULT payload, a (code, text) CALLERROR, or raw frame text ("UID" = its id)
Answer = Callable[[list[Any]], Any]
ACCEPTED = {"status": "Accepted"}


def accept(_frame: list[Any]) -> Any:
    return ACCEPTED


@dataclass
class Site:
    """What the chargers of one group were told, and what they may draw."""

    limit: float
    unit: str = "A"
    ceiling: dict[str, float] = field(default_factory=dict)  # station -> its maximum
    active: dict[int, str] = field(default_factory=dict)  # transaction -> station
    applied: dict[int, float] = field(default_factory=dict)  # transaction -> limit in force
    received: dict[str, list[float]] = field(default_factory=dict)  # station -> limits
    frames: list[list[Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def draw(self) -> float:
        return round(sum(self.applied.get(tx, self.ceiling[station])
                         for tx, station in self.active.items()), 1)

    def on_profile(self, station: str, payload: dict[str, Any], *, factor: float = 1.0,
                   applies: bool = True) -> None:
        """A profile arrived at ``station``; ``applies``: the charger accepted it."""
        body = payload["csChargingProfiles"]
        transaction_id = body["transactionId"]
        period = body["chargingSchedule"]["chargingSchedulePeriod"]
        checks = [body["chargingProfilePurpose"] == "TxProfile",
                  body["chargingProfileKind"] == "Relative",
                  body["chargingProfileId"] == lm.profile_id(transaction_id),
                  self.active.get(transaction_id) == station, len(period) == 1]
        if not all(checks):
            self.violations.append(f"unexpected profile for {station}: {payload}")
        self.received.setdefault(station, []).append(period[0]["limit"])
        if not applies:
            return
        limit = round(period[0]["limit"] * factor, 1)
        before = self.applied.get(transaction_id, self.ceiling[station])
        self.applied[transaction_id] = limit
        if limit > before and self.draw() > self.limit:
            self.violations.append(f"{station} raised to {limit} while the group draws "
                                   f"{self.draw()} > {self.limit}")

    def shares(self) -> dict[str, float]:
        return {self.active[tx]: limit for tx, limit in self.applied.items()
                if tx in self.active}

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 20) -> None:
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(predicate), timeout)
            except TimeoutError:
                raise AssertionError(f"timed out waiting for {what}; received "
                                     f"{self.received}, violations {self.violations}") from None

    async def start(self, charger: Charger, station: str, tag: str) -> int:
        transaction_id = await start_transaction(charger, tag)
        async with self.changed:  # profiles for it may already be on their way
            self.active[transaction_id] = station
        return transaction_id

    async def stop(self, charger: Charger, transaction_id: int) -> None:
        await stop_transaction(charger, transaction_id)
        async with self.changed:
            self.active.pop(transaction_id, None)
            self.applied.pop(transaction_id, None)
            self.changed.notify_all()


async def respond(charger: Charger, station: str, site: Site, answer: Answer = accept,
                  factor: float = 1.0) -> None:
    """The charger side: apply load management's profiles as they arrive and answer them."""
    while True:
        frame = await charger.incoming.get()
        site.frames.append(frame)
        reply = answer(frame)
        if frame[2] == "SetChargingProfile" and \
                lm.is_reserved_profile_id(frame[3]["csChargingProfiles"]["chargingProfileId"]):
            async with site.changed:
                site.on_profile(station, frame[3], factor=factor, applies=reply == ACCEPTED)
        elif frame[2] == "ClearChargingProfile":
            async with site.changed:  # everything cleared: the charger runs free again
                for tx in [tx for tx, s in site.active.items() if s == station]:
                    site.applied.pop(tx, None)
        if isinstance(reply, tuple):
            await charger.answer([4, frame[1], reply[0], reply[1], {}])
        elif isinstance(reply, str):
            await charger.ws.send(reply.replace("UID", frame[1]))
        else:
            await charger.answer([3, frame[1], reply])
        await site.notify()


async def make_group(stack: Stack, *limit: str) -> str:
    """``gridlink groups add`` (the CLI, as an operator would)."""
    name = f"site-{uuid.uuid4().hex[:8]}"
    code, out, err = await stack.cli("groups", "add", name, *limit)
    assert code == 0 and "created" in out, err
    return name


async def assign(stack: Stack, name: str, *args: str) -> None:
    code, _, err = await stack.cli("groups", "assign", name, *args)
    assert code == 0, err


async def group_row(stack: Stack, name: str) -> dict[str, Any]:
    code, out, err = await stack.cli("groups", "list", "--json")
    assert code == 0, err
    return next(row for row in json.loads(out) if row["group"] == name)


async def new_group(stack: Stack, unit: str, limit: float, **options: Any) -> str:
    """A group made the way the CLI makes it, without a process (faster)."""
    name = f"site-{uuid.uuid4().hex[:8]}"
    assert await group_store.save_group(stack.db(), name, unit=unit, limit=limit, **options)
    return name


async def members(stack: Stack, name: str, stations: list[str], **limits: Any) -> None:
    await group_store.assign(stack.db(), name, [member_rules.parse_member(s) for s in stations],
                          **limits)


@dataclass
class Fleet:
    """N chargers, one connector each, with their responders."""

    stations: list[str]
    chargers: list[Charger]
    tasks: list[asyncio.Task[None]]


async def fleet(stack: Stack, exits: AsyncExitStack, site: Site, count: int, *,
                ceiling: float, answers: dict[int, Answer] | None = None,
                factor: dict[int, float] | None = None, prefix: str = "LM") -> Fleet:
    stations, chargers, tasks = [], [], []
    for _ in range(count):
        station = new_id(prefix)
        await add_station(stack, station)
        charger = await exits.enter_async_context(Charger.connect(stack.gateway_url, station))
        await charger.boot()
        site.ceiling[station] = ceiling
        stations.append(station)
        chargers.append(charger)
    for index, (station, charger) in enumerate(zip(stations, chargers, strict=True)):
        task = asyncio.create_task(respond(charger, station, site,
                                           (answers or {}).get(index, accept),
                                           (factor or {}).get(index, 1.0)))
        exits.callback(task.cancel)
        tasks.append(task)
    return Fleet(stations, chargers, tasks)


async def test_start_stop_sequence_shares_the_limit(stack: Stack) -> None:
    """Three chargers (16 A each, minimum 6 A) under 32 A, started and stopped in turn."""
    site = Site(limit=32)
    tag = [await fresh_tag(stack, "SC") for _ in range(3)]
    name = await make_group(stack, "--max-current", "32")
    async with AsyncExitStack() as exits:
        f = await fleet(stack, exits, site, 3, ceiling=16)
        a, b, c = f.stations
        await assign(stack, name, *(f"{s}:1" for s in f.stations),
                     "--connector-max", "16", "--min", "6")
        tx1 = await site.start(f.chargers[0], a, tag[0])
        await site.until(lambda: site.shares() == {a: 16}, "A at 16 A")
        tx2 = await site.start(f.chargers[1], b, tag[1])
        await site.until(lambda: site.shares() == {a: 16, b: 16}, "A and B at 16 A")
        tx3 = await site.start(f.chargers[2], c, tag[2])
        # 32 A / 3 = 10.66..: the tenth left over goes to the earliest start.
        await site.until(lambda: site.shares() == {a: 10.7, b: 10.7, c: 10.6}, "three shares")
        assert site.draw() == 32

        # Operators cannot outrank or take over load management's profiles.
        outrank = await send(stack, b, "SetChargingProfile",
                                profile("TxProfile", stack_level=lm.DEFAULT_STACK_LEVEL,
                                        transactionId=tx2))
        assert (outrank.status, outrank.error_code) == ("invalid", "LoadManaged")
        taken = await send(stack, b, "SetChargingProfile",
                              profile(profile_id=lm.profile_id(tx2)))
        assert (taken.status, taken.error_code) == ("invalid", "ReservedProfileId")

        await site.stop(f.chargers[0], tx1)
        await site.until(lambda: site.shares() == {b: 16, c: 16}, "B and C back to 16 A")
        assert site.received == {a: [16, 10.7], b: [16, 10.7, 16], c: [10.6, 16]}

        row = await group_row(stack, name)
        assert row["allocated"] == 32 and row["limit"] == "32 A"
        assert sorted((t["transactionId"], t["accepted"]) for t in row["transactions"]) == [
            (tx2, 16), (tx3, 16)]

        # An operator clears B's profiles: B runs free again, so GridLink tells it again.
        cleared = await send(stack, b, "ClearChargingProfile", {})
        assert cleared.status == "accepted"
        await site.until(lambda: site.received[b] == [16, 10.7, 16, 16], "B told again")

        await site.stop(f.chargers[1], tx2)
        await site.stop(f.chargers[2], tx3)
        assert site.violations == []
        # Every profile went through the commands collection with its origin.
        sent = await stack.db().commands.count_documents(
            {"station": {"$in": f.stations}, "origin": "load-management"})
        assert sent == 8

        async def forgotten() -> bool:
            return await stack.db().load_allocations.count_documents({"group": name}) == 0

        await wait_for(forgotten, what="allocations of stopped transactions removed")
    code, _, err = await stack.cli("groups", "remove", name)
    assert code == 0, err


async def test_minimums_that_do_not_fit_pause_the_latest(stack: Stack) -> None:
    site = Site(limit=16)
    tag = [await fresh_tag(stack, "SC") for _ in range(3)]
    name = await new_group(stack, "A", 16)
    async with AsyncExitStack() as exits:
        f = await fleet(stack, exits, site, 3, ceiling=16)
        a, b, c = f.stations
        await members(stack, name, f.stations, max_current=16, min_current=6)
        tx1 = await site.start(f.chargers[0], a, tag[0])
        await site.until(lambda: site.shares() == {a: 16}, "A alone")
        tx2 = await site.start(f.chargers[1], b, tag[1])
        await site.until(lambda: site.shares() == {a: 8, b: 8}, "A and B halves")
        tx3 = await site.start(f.chargers[2], c, tag[2])
        await site.until(lambda: site.shares() == {a: 8, b: 8, c: 0}, "C paused")
        await site.stop(f.chargers[0], tx1)
        await site.until(lambda: site.shares() == {b: 8, c: 8}, "C resumes")
        assert site.received == {a: [16, 8], b: [8], c: [0, 8]}
        await site.stop(f.chargers[1], tx2)
        await site.until(lambda: site.shares() == {c: 16}, "C alone")
        await site.stop(f.chargers[2], tx3)
        assert site.violations == []
    await group_store.remove_group(stack.db(), name)


def current_only(frame: list[Any]) -> Any:
    """A charger that reports it takes only amperes."""
    if frame[2] == "GetConfiguration":
        return {"configurationKey": [{"key": "ChargingScheduleAllowedChargingRateUnit",
                                      "readonly": True, "value": "Current"}]}
    return ACCEPTED


async def test_power_limit_units_and_a_lowered_limit(stack: Stack) -> None:
    """A W group; one charger only takes amperes; the operator lowers the limit."""
    site = Site(limit=11_040, unit="W")
    tag = [await fresh_tag(stack, "SC") for _ in range(2)]
    name = await new_group(stack, "W", 11_040, phases=3, voltage=230)
    async with AsyncExitStack() as exits:
        # Charger B takes amperes: the site converts what it receives back to watts.
        f = await fleet(stack, exits, site, 2, ceiling=11_040, factor={1: 690.0},
                        answers={1: current_only})
        a, b = f.stations
        configuration = await send(stack, b, "GetConfiguration", {})
        assert configuration.status == "accepted"
        await members(stack, name, f.stations)
        tx1 = await site.start(f.chargers[0], a, tag[0])
        await site.until(lambda: site.shares() == {a: 11_040}, "A has it all")
        tx2 = await site.start(f.chargers[1], b, tag[1])
        await site.until(lambda: site.shares() == {a: 5520, b: 5520}, "halves")
        code, _, err = await stack.cli("groups", "add", name, "--max-power", "6900")
        assert code == 0, err
        site.limit = 6900  # from now on; the periodic pass picks the change up
        await site.until(lambda: site.shares() == {a: 3450, b: 3450}, "lowered", timeout=30)
        units = [fr[3]["csChargingProfiles"]["chargingSchedule"]["chargingRateUnit"]
                 for fr in site.frames if fr[2] == "SetChargingProfile"]
        assert site.received == {a: [11_040, 5520, 3450], b: [8, 5]}
        assert units.count("A") == 2 and units.count("W") == 3
        await site.stop(f.chargers[0], tx1)
        await site.stop(f.chargers[1], tx2)
        assert site.violations == []
    await group_store.remove_group(stack.db(), name)


@pytest.mark.parametrize("failure", [("GenericError", "busy"), '[3, "UID", {"status": 7}]',
                                     {"status": "Rejected"}])
async def test_charger_refusing_its_profile_is_recorded_and_blocks_no_one(
        stack: Stack, failure: Any) -> None:
    site = Site(limit=20)
    tag = [await fresh_tag(stack, "SC") for _ in range(2)]
    name = await new_group(stack, "A", 20)
    async with AsyncExitStack() as exits:
        f = await fleet(stack, exits, site, 2, ceiling=16,
                        answers={1: lambda _frame: failure})
        a, b = f.stations
        await members(stack, name, f.stations, max_current=16)
        tx1 = await site.start(f.chargers[0], a, tag[0])
        await site.until(lambda: site.shares() == {a: 16}, "A alone")
        tx2 = await site.start(f.chargers[1], b, tag[1])
        # A goes down to 10; B's 10 fails: GridLink keeps counting B at its 16 A maximum.
        await site.until(lambda: site.received.get(b) == [10] and site.shares()[a] == 10,
                         "A lowered, B told")

        async def failed() -> bool:
            doc = await stack.db().load_allocations.find_one({"_id": tx2})
            return bool(doc and doc.get("failed"))

        await wait_for(failed, what="B's failure recorded")
        row = next(r for r in await group_store.list_groups(stack.db()) if r["group"] == name)
        states = {t["transactionId"]: t for t in row["transactions"]}
        assert states[tx2]["accepted"] is None and states[tx2]["failed"] in (
            "callerror", "rejected")
        assert states[tx1]["accepted"] == 10
        # B leaves: A may have 16 again.
        await site.stop(f.chargers[1], tx2)
        await site.until(lambda: site.shares() == {a: 16}, "A back to 16")
        await site.stop(f.chargers[0], tx1)
        assert site.received == {a: [16, 10, 16], b: [10]}
        assert site.violations == []
    await group_store.remove_group(stack.db(), name)


async def test_groups_cli_refuses_bad_input(stack: Stack) -> None:
    station = new_id("LMC")
    await add_station(stack, station)
    name = await make_group(stack, "--max-current", "40")
    other = await new_group(stack, "A", 40)
    cases = [
        (["groups", "add", "x", "--max-current", "0"], 2, "must be positive"),
        (["groups", "assign", name, station, "--min", "10", "--connector-max", "8"], 2,
         "--min must not exceed"),
        (["groups", "assign", name, "ghost-station"], 1, "unknown station"),
    ]
    for args, exit_code, message in cases:
        code, out, err = await stack.cli(*args)
        assert (code, out) == (exit_code, ""), (args, err)
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)
    await assign(stack, name, f"{station}:1", "--connector-max", "16")
    code, _, err = await stack.cli("groups", "assign", other, station)
    assert code == 1 and f"{station}:1 is in group {name!r} already" in err
    code, out, _ = await stack.cli("groups", "list")
    assert code == 0 and f"{station}:1 (max 16)" in out
    # The same rules, without a process each.
    db = stack.db()
    with pytest.raises(GridLinkError, match="no group"):
        await group_store.assign(db, "no-such-group", [(station, None)])
    with pytest.raises(GridLinkError, match="in this group already"):
        await group_store.assign(db, name, [(station, None)])
    with pytest.raises(ConfigurationError, match="must be positive"):
        await group_store.save_group(db, "x", unit="W", limit=-1)
    with pytest.raises(ConfigurationError, match="phases"):
        await group_store.save_group(db, "x", unit="A", limit=10, phases=4)
    with pytest.raises(ConfigurationError, match="must not be negative"):
        await group_store.assign(db, name, [(station, 2)], min_current=-1)
    assert await group_store.unassign(db, name, [(station, 2)]) == 0
    await group_store.assign(db, name, [(station, 2)], max_current=32, min_current=6, phases=1)
    assert await group_store.unassign(db, name, [(station, 1)]) == 1
    group = await db.station_groups.find_one({"_id": name})
    assert group["members"] == [{"station": station, "connector": 2, "max_current": 32,
                                 "min_current": 6, "phases": 1}]
    code, _, err = await stack.cli("groups", "remove", name)
    assert code == 0, err
    await group_store.remove_group(db, other)
    with pytest.raises(GridLinkError, match="no group"):
        await group_store.remove_group(db, other)
