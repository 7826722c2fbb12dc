"""Site load management: keep every station group under its limit with TxProfiles.

A group (``station_groups``, made with ``gridlink groups``) has a maximum current or power.
Whenever something may change the shares — ``transaction.started``/``transaction.stopped``
(at least once: a pass is idempotent and reads the current state, so a repeated event
changes nothing), the answer to one of load management's profiles, a ClearChargingProfile
that removed one, and every ``RECONCILE_INTERVAL_S`` for group edits and retries — a **pass**
over the group:

1. reads the group and its active, authorized transactions (``transactions``: the truth,
   whatever events were missed) and the per-transaction state in ``load_allocations``;
2. computes the shares (:func:`commands.load_management.allocation.allocate`);
3. plans the sends (:func:`commands.load_management.allocation.plan`): decreases and first profiles
   before increases, increases only while the sum of what the chargers may draw stays within
   the limit — so they wait for the chargers to accept the decreases, and the answer that
   confirms the last decrease starts the pass that sends them;
4. sends each as a SetChargingProfile TxProfile (``chargingProfileId`` derived from the
   transaction id, ``stackLevel`` the charger's ChargeProfileMaxStackLevel) through
   :meth:`commands.lifecycle.Lifecycle.submit`, at most ``GRIDLINK_PROFILE_SENDS_PER_S`` per
   process.

An answer updates the transaction's state: Accepted → the new limit holds; anything else →
the charger may or may not have applied it, so GridLink assumes the higher of the two until
a later profile is accepted, and does not resend the same limit for ``RETRY_AFTER_S``
(doubling with each failure in a row, up to ``MAX_RETRY_AFTER_S``).
A charger that never accepts keeps its ceiling counted: the others wait rather than risk
the limit.

Passes over one group are serialized: an asyncio lock within a process and, across
replicas, a lease on the group document (``lease_owner``/``lease_until``); a pass that
cannot get the lease in ``LEASE_WAIT_S`` leaves the work to the holder and the periodic pass.

Operator TxProfiles for a load-managed transaction are refused at or above load
management's stack level (they would outrank its limit), and so is any profile with a
chargingProfileId in load management's range.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pymongo import ReturnDocument

from commands.lifecycle import Lifecycle
from commands.load_management import allocation as lm
from commands.load_management.repository import LOAD_ALLOCATIONS, STATION_GROUPS
from commands.load_management.rules import Pacer, controlled, member_for
from commands.repository import last_sent_at
from commands.smart_charging.repository import charger_caps
from commands.smart_charging.rules import ChargerCaps, clear_matches
from services import transaction_records
from services.envelope import FINAL_STATUSES, CommandRequest
from services.ocpp16 import utcnow
from services.runtime import ServiceRuntime

log = logging.getLogger("gridlink.commands.load_management")

ORIGIN = "load-management"
COMMAND_PREFIX = "lm-"
SEND_TIMEOUT_S = 30.0
RECONCILE_INTERVAL_S = 5.0
LEASE_TTL = timedelta(seconds=60)
LEASE_WAIT_S = 10.0
STALE_IN_FLIGHT = timedelta(seconds=SEND_TIMEOUT_S + 30)


class LoadManager:
    """Passes over station groups, serialized per group."""

    def __init__(self, runtime: ServiceRuntime, commands: Lifecycle) -> None:
        self.runtime = runtime
        self.commands = commands
        db = runtime.store.db
        self.groups = db[STATION_GROUPS]
        self.allocations = db[LOAD_ALLOCATIONS]
        self.db = db
        self.pacer = Pacer(runtime.settings.profile_sends_per_s)
        self.owner = f"{runtime.settings.instance}/{uuid.uuid4().hex[:8]}"
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def store(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        return await self.runtime.with_store(operation)

    # --- serializing --------------------------------------------------------------------

    async def reconcile(self, name: str) -> None:
        """One pass over group ``name`` (waits for a running one to finish first)."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if not await self._take_lease(name):
                log.warning("group busy in another replica; left to it",
                            extra={"group": name})
                return
            try:
                await self._pass(name)
            finally:
                await self.store(lambda: self.groups.update_one(
                    {"_id": name, "lease_owner": self.owner}, {"$set": {"lease_until": None}}))

    def reconcile_soon(self, name: str) -> None:
        """Start a pass without waiting for it (from a command's after-hook)."""

        async def run() -> None:
            try:
                await self.reconcile(name)
            except Exception:  # the periodic pass retries
                log.exception("load management pass failed", extra={"group": name})

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _take_lease(self, name: str) -> bool:
        deadline = asyncio.get_running_loop().time() + LEASE_WAIT_S
        while True:
            now = utcnow()
            taken = await self.store(lambda now=now: self.groups.find_one_and_update(
                {"_id": name, "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}},
                                      {"lease_owner": self.owner}]},
                {"$set": {"lease_owner": self.owner, "lease_until": now + LEASE_TTL}},
                projection={"_id": 1}))
            if taken is not None:
                return True
            if await self.store(lambda: self.groups.find_one({"_id": name}, {"_id": 1})) is None:
                return True  # no group: the pass only forgets its allocations
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.1)

    async def _renew_lease(self, name: str) -> None:
        await self.store(lambda: self.groups.update_one(
            {"_id": name, "lease_owner": self.owner},
            {"$set": {"lease_until": utcnow() + LEASE_TTL}}))

    # --- a pass -------------------------------------------------------------------------

    async def _pass(self, name: str) -> None:
        group = await self.store(lambda: self.groups.find_one({"_id": name}))
        if group is None:
            await self.store(lambda: self.allocations.delete_many({"group": name}))
            return
        limit = lm.GroupLimit(unit=group["unit"], value=group["limit"],
                              voltage=group.get("voltage", 230.0), phases=group.get("phases", 3))
        active = await self.store(lambda: self._active(group))
        allocations = await self._sync_allocations(name, group["unit"], active)
        now = utcnow()
        for alloc in list(allocations.values()):
            if alloc.get("in_flight") and alloc["in_flight"]["sent_at"] < now - STALE_IN_FLIGHT:
                await self._settle_stale(alloc)
                allocations = await self._sync_allocations(name, group["unit"], active)
        demands, states, members = [], [], {}
        for transaction in active:
            member = member_for(group, transaction["station"], transaction["connector"])
            assert member is not None
            bounds = lm.member_bounds(limit, max_current=member.get("max_current"),
                                      min_current=member.get("min_current"),
                                      phases=member.get("phases"))
            members[transaction["_id"]] = member
            demands.append(lm.Demand(transaction["_id"], transaction["start_time"],
                                     bounds.minimum, bounds.maximum))
            states.append(controlled(allocations[transaction["_id"]], bounds.maximum, now))
        targets = lm.allocate(limit.tenths, demands)
        for transaction_id, target in targets.items():
            if allocations[transaction_id].get("target") != lm.from_tenths(target):
                await self.store(lambda t=transaction_id, v=target: self.allocations.update_one(
                    {"_id": t}, {"$set": {"target": lm.from_tenths(v)}}))
        caps: dict[str, ChargerCaps] = {}
        for send in lm.plan(limit.tenths, states, targets):
            alloc = allocations[send.transaction_id]
            station = alloc["station"]
            if station not in caps:
                caps[station] = await self.store(lambda s=station: charger_caps(
                    self.db, s))
            await self.pacer.wait()
            await self._send(limit, alloc, members[send.transaction_id], send, caps[station])
            await self._renew_lease(name)

    async def _active(self, group: dict[str, Any]) -> list[dict[str, Any]]:
        """The group's active, authorized transactions."""
        stations = sorted({m["station"] for m in group.get("members", [])})
        if not stations:
            return []
        found = await transaction_records.active_authorized(self.db, stations)
        return [t for t in found if member_for(group, t["station"], t["connector"]) is not None]

    async def _sync_allocations(self, name: str, unit: str, active: list[dict[str, Any]]
                                ) -> dict[int, dict[str, Any]]:
        """One ``load_allocations`` document per active transaction, none for others."""
        ids = [t["_id"] for t in active]
        await self.store(lambda: self.allocations.delete_many(
            {"group": name, "_id": {"$nin": ids}}))
        known = {a["_id"]: a for a in await self.store(lambda: self.allocations.find(
            {"_id": {"$in": ids}}, {"group": 1, "unit": 1}).to_list())}
        for transaction in active:
            if known.get(transaction["_id"], {}).get("group") == name:
                continue
            await self.store(lambda t=transaction: self.allocations.update_one(
                {"_id": t["_id"]},
                {"$set": {"group": name, "station": t["station"], "connector": t["connector"],
                          "started_at": t["start_time"]},
                 "$setOnInsert": {"unit": unit, "accepted": None, "unsure": None,
                                  "in_flight": None, "failed": None, "sends": 0}},
                upsert=True))
        # A unit change makes the stored amounts meaningless: count the ceilings again.
        if any(a.get("unit") != unit for a in known.values()):
            await self.store(lambda: self.allocations.update_many(
                {"_id": {"$in": ids}, "unit": {"$ne": unit}},
                {"$set": {"unit": unit, "accepted": None, "unsure": None, "failed": None}}))
        found = await self.store(lambda: self.allocations.find({"_id": {"$in": ids}}).to_list())
        return {a["_id"]: a for a in found}

    async def _settle_stale(self, alloc: dict[str, Any]) -> None:
        """An answer that never arrived here: read the command, or forget an unsent one."""
        command_id = alloc["in_flight"]["command_id"]
        command = await self.store(lambda: self.commands.repo.get(command_id))
        if command is None:
            await self.store(lambda: self.allocations.update_one(
                {"_id": alloc["_id"], "in_flight.command_id": command_id},
                {"$set": {"in_flight": None}}))
        elif command["status"] in FINAL_STATUSES:
            await self.apply_outcome(command)

    async def _send(self, limit: lm.GroupLimit, alloc: dict[str, Any], member: dict[str, Any],
                    send: lm.Send, caps: ChargerCaps) -> None:
        transaction_id = alloc["_id"]
        sequence = int(alloc.get("sends", 0)) + 1
        command_id = f"{COMMAND_PREFIX}{transaction_id}-{sequence}"
        stack = lm.stack_level(caps.max_stack_level)
        amount = lm.from_tenths(send.limit)
        claimed = await self.store(lambda: self.allocations.find_one_and_update(
            {"_id": transaction_id, "in_flight": None, "sends": alloc.get("sends", 0)},
            {"$set": {"in_flight": {"command_id": command_id, "limit": amount,
                                    "stack_level": stack, "sent_at": utcnow()}},
             "$inc": {"sends": 1}},
            return_document=ReturnDocument.AFTER))
        if claimed is None:
            return  # changed meanwhile; the next pass sees it
        phases = member.get("phases") or limit.phases
        unit = caps.unit_for(limit.unit)
        payload = lm.tx_profile_payload(
            transaction_id=transaction_id, connector=alloc["connector"],
            limit=lm.charger_limit(send.limit, group_unit=limit.unit, charger_unit=unit,
                                   per_ampere=limit.per_ampere(member.get("phases"))),
            unit=unit, phases=phases, stack=stack)
        log.info("load management profile", extra={
            "station": alloc["station"], "transaction_id": transaction_id, "limit": amount,
            "unit": limit.unit, "command_id": command_id, "raises": send.raises})
        request = CommandRequest(command_id=command_id, station=alloc["station"],
                                 action="SetChargingProfile", payload=payload,
                                 timeout_s=SEND_TIMEOUT_S)
        if await self.commands.submit(request, origin=ORIGIN) is None:
            exists = await self.store(lambda: self.commands.repo.get(command_id, ("_id",)))
            if exists is None:  # refused before it was recorded: nothing was sent
                await self.store(lambda: self.allocations.update_one(
                    {"_id": transaction_id, "in_flight.command_id": command_id},
                    {"$set": {"in_flight": None, "failed": {
                        "limit": amount, "at": utcnow(), "status": "invalid"}}}))

    # --- answers ------------------------------------------------------------------------

    async def apply_outcome(self, command: dict[str, Any]) -> str | None:
        """Record the answer to one of our profiles; the transaction's group, if it has one."""
        profile = command["payload"]["csChargingProfiles"]
        transaction_id = profile.get("transactionId")
        alloc = await self.store(lambda: self.allocations.find_one(
            {"_id": transaction_id, "in_flight.command_id": command["_id"]}))
        if alloc is None:
            return None  # already recorded, or the transaction is gone
        sent = alloc["in_flight"]
        accepted = command["status"] == "accepted" and \
            (command.get("response") or {}).get("status") == "Accepted"
        if accepted:
            change: dict[str, Any] = {
                "accepted": sent["limit"], "unsure": None, "failed": None,
                "stack_level": sent["stack_level"], "profile_sent_at": last_sent_at(command)}
        else:  # it may be in force or not: assume the higher until a later one is accepted
            before = alloc.get("failed") or {}
            count = before.get("count", 0) + 1 if before.get("limit") == sent["limit"] else 1
            change = {"unsure": max(sent["limit"], alloc.get("unsure") or 0),
                      "failed": {"limit": sent["limit"], "at": utcnow(),
                                 "status": command["status"], "count": count}}
            log.warning("load management profile not accepted", extra={
                "station": command["station"], "transaction_id": transaction_id,
                "status": command["status"], "command_id": command["_id"]})
        await self.store(lambda: self.allocations.update_one(
            {"_id": transaction_id, "in_flight.command_id": command["_id"]},
            {"$set": {"in_flight": None, "updated_at": utcnow(), **change}}))
        return str(alloc["group"])

    async def profiles_cleared(self, command: dict[str, Any]) -> set[str]:
        """A ClearChargingProfile removed our profiles: their chargers run free again."""
        criteria, station, cleared_at = command["payload"], command["station"], \
            last_sent_at(command)
        groups: set[str] = set()
        async for alloc in self.allocations.find({"station": station}):
            if alloc.get("accepted") is None or alloc.get("profile_sent_at") is None:
                continue
            if alloc["profile_sent_at"] >= cleared_at:
                continue
            if clear_matches(criteria, charging_profile_id=lm.profile_id(alloc["_id"]),
                             connector=alloc["connector"], purpose="TxProfile",
                             stack_level=alloc.get("stack_level", 0)):
                await self.allocations.update_one(
                    {"_id": alloc["_id"]},
                    {"$set": {"accepted": None, "unsure": None, "failed": None}})
                groups.add(alloc["group"])
        return groups

    # --- periodic -----------------------------------------------------------------------

    async def run_periodically(self, runtime: ServiceRuntime) -> None:
        """Every group, every RECONCILE_INTERVAL_S: group edits, retries, missed events."""
        while not runtime.stopping.is_set():
            names = {g["_id"] for g in await self.store(
                lambda: self.groups.find({}, {"_id": 1}).to_list())}
            names |= {a["group"] for a in await self.store(
                lambda: self.allocations.find({}, {"group": 1}).to_list())}
            for name in sorted(names):
                if runtime.stopping.is_set():
                    break
                try:
                    await self.reconcile(name)
                except Exception:
                    log.exception("load management pass failed", extra={"group": name})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.stopping.wait(), RECONCILE_INTERVAL_S)

