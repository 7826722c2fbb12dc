"""Site load management wired into the command path: every station group kept under its
limit with TxProfiles (how: :mod:`commands.load_management.manager`).

- ``transaction.started`` / ``transaction.stopped`` start a pass over the transaction's group;
- an answer to one of load management's profiles, or a ClearChargingProfile that removed
  one, records the outcome and starts a pass;
- an operator's SetChargingProfile is refused when it would outrank load management's
  TxProfile (at or above its stackLevel) or uses a chargingProfileId in its range;
- a periodic pass catches group edits, retries and missed events.
"""

from __future__ import annotations

import logging
from typing import Any

from commands.hooks import CommandHooks
from commands.lifecycle import Lifecycle
from commands.load_management import allocation as lm
from commands.load_management.manager import ORIGIN, LoadManager
from commands.load_management.repository import INDEXES, LOAD_ALLOCATIONS, group_of
from commands.smart_charging.repository import charger_caps
from commands.smart_charging.rules import clear_took_effect
from services.envelope import CommandRequest
from services.errors import CommandRefused, ShuttingDown
from services.read_batcher import ReadBatcher
from services.runtime import ServiceRuntime

log = logging.getLogger("gridlink.commands.load_management")


def register(hooks: CommandHooks, commands: Lifecycle) -> None:
    manager = LoadManager(hooks.runtime, commands)
    hooks.add_indexes(INDEXES)
    # every transaction event asks for its group and allocation: one query for concurrent ones
    reads = ReadBatcher(hooks.runtime.store.db)

    async def group_for(rt: ServiceRuntime, event: dict[str, Any]) -> str | None:
        group = await rt.with_store(lambda: group_of(
            rt.store.db, str(event["station"]), int(event["connector"]), reads))
        return None if group is None else str(group["_id"])

    async def pass_now(name: str) -> None:
        """A pass for an event. A failure is logged, not raised: the event's other hooks
        must still run, and the periodic pass redoes the work from the stored state."""
        try:
            await manager.reconcile(name)
        except ShuttingDown:
            raise
        except Exception:
            log.exception("load management pass failed", extra={"group": name})

    @hooks.on_event("transaction.started")
    async def transaction_started(rt: ServiceRuntime, event: dict[str, Any]) -> None:
        name = await group_for(rt, event)
        if name is not None:
            await pass_now(name)

    @hooks.on_event("transaction.stopped")
    async def transaction_stopped(rt: ServiceRuntime, event: dict[str, Any]) -> None:
        alloc = await rt.with_store(lambda: reads.find_one(
            LOAD_ALLOCATIONS, "_id", int(event["transaction_id"]), projection={"group": 1}))
        name = str(alloc["group"]) if alloc is not None else await group_for(rt, event)
        if name is not None:
            await pass_now(name)

    @hooks.validate("SetChargingProfile")
    async def load_managed_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        profile = request.payload["csChargingProfiles"]
        transaction_id = profile.get("transactionId")
        alloc = None
        if transaction_id is not None:
            alloc = await rt.with_store(lambda: manager.allocations.find_one(
                {"_id": transaction_id}, {"in_flight": 1}))
        if alloc is not None and (alloc.get("in_flight") or {}).get("command_id") \
                == request.command_id:
            return  # load management's own profile
        if lm.is_reserved_profile_id(profile["chargingProfileId"]):
            raise CommandRefused("ReservedProfileId", "chargingProfileId "
                                 f"{profile['chargingProfileId']} is in load management's "
                                 f"range {lm.PROFILE_ID_BASE}..."
                                 f"{lm.PROFILE_ID_BASE + lm.PROFILE_ID_SPAN - 1}")
        if alloc is None or profile["chargingProfilePurpose"] != "TxProfile":
            return
        caps = await rt.with_store(lambda: charger_caps(rt.store.db, request.station))
        level = lm.stack_level(caps.max_stack_level)
        if profile["stackLevel"] >= level:
            raise CommandRefused("LoadManaged", f"transaction {transaction_id} is load-managed "
                                 f"at stackLevel {level}; a TxProfile at stackLevel "
                                 f"{profile['stackLevel']} would override the group limit "
                                 f"(use a stackLevel below {level})")

    @hooks.after("SetChargingProfile")
    async def profile_answered(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if command.get("origin") != ORIGIN:
            return
        name = await manager.apply_outcome(command)
        if name is not None:
            manager.reconcile_soon(name)

    @hooks.after("ClearChargingProfile")
    async def profiles_cleared(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if not clear_took_effect(command):
            return
        for name in await rt.with_store(lambda: manager.profiles_cleared(command)):
            manager.reconcile_soon(name)

    hooks.background.append(manager.run_periodically)

