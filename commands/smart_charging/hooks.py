"""Smart Charging profile (OCPP 1.6 §3.13, §5.5, §5.7, §5.16 with the errata).

Before a command is recorded (a refusal is answered ``invalid``; nothing reaches the charger):

- **SetChargingProfile**: connectorId ≥ 0 and, when the charger reported NumberOfConnectors,
  not above it; ChargePointMaxProfile only at connector 0, TxProfile only above 0;
  transactionId only in a TxProfile, and required there: the transaction must be known,
  active and on that station and connector (the charger would discard a
  TxProfile without one, §3.13.1); stackLevel ≥ 0 and not above ChargeProfileMaxStackLevel;
  recurrencyKind exactly when the kind is Recurring; Recurring and Absolute need a
  startSchedule; validTo after validFrom and in the future; one or more periods, the first
  at 0, startPeriods increasing, none at or past the schedule's duration or the recurrence
  period (the charger would never run them), limits and minChargingRate ≥ 0,
  numberPhases 1 to 3; a chargingRateUnit and as many periods as the charger allows
  (ChargingScheduleAllowedChargingRateUnit, ChargingScheduleMaxPeriods) and room for one
  more profile (MaxChargingProfilesInstalled), when it reported them.
- **ClearChargingProfile**: connectorId and stackLevel ≥ 0; criteria that cannot match
  (ChargePointMaxProfile on a connector, TxProfile on connector 0) are refused, and so are
  criteria matching no profile GridLink knows the charger holds. An empty request (clear
  everything) is always allowed.
- **GetCompositeSchedule**: connectorId ≥ 0 (and a known connector), duration > 0, a unit
  the charger allows.

What each charger was told (collection ``charging_profiles``, see
:mod:`commands.smart_charging.repository`): an Accepted SetChargingProfile installs its
profile, replacing the one with the same chargingProfileId or the same connector, purpose
and stackLevel (§3.13.2, §5.16.3); an answered ClearChargingProfile (Accepted, or Unknown:
the charger holds none of them) removes the profiles it selects (errata 3.25: no criteria =
all; an id = that one; else all given fields); a TxProfile ends with its transaction
(``transaction.stopped``). A TxProfile accepted with a RemoteStartTransaction is kept
``pending`` and attached to the transaction the same tag starts on that station. Outcomes
may be processed out of order: a change only applies over profiles sent before it.
GetCompositeSchedule answers are recorded in ``composite_schedules``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from commands.hooks import CommandHooks, refuse
from commands.lifecycle import Lifecycle
from commands.repository import last_sent_at
from commands.smart_charging import rules
from commands.smart_charging.repository import INDEXES, ProfileRepository, charger_caps
from commands.smart_charging.rules import ChargerCaps
from services import transaction_records
from services.envelope import CommandRequest
from services.errors import CommandRefused
from services.ocpp16 import utcnow
from services.runtime import ServiceRuntime

log = logging.getLogger("gridlink.commands.smart_charging")

PENDING_TTL = timedelta(minutes=10)  # a RemoteStart TxProfile whose transaction never came
CLEANUP_INTERVAL_S = 60.0


def register(hooks: CommandHooks, commands: Lifecycle) -> None:
    db = hooks.runtime.store.db
    profiles = ProfileRepository(db)
    hooks.add_indexes(INDEXES)

    async def caps_of(rt: ServiceRuntime, station: str) -> ChargerCaps:
        caps: ChargerCaps = await rt.with_store(lambda: charger_caps(db, station))
        return caps

    async def transaction(rt: ServiceRuntime, transaction_id: int) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await rt.with_store(lambda: transaction_records.get(
            db, transaction_id, ("station", "connector", "active")))
        return found

    # --- SetChargingProfile -----------------------------------------------------------------

    @hooks.validate("SetChargingProfile")
    async def set_profile_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        payload, station = request.payload, request.station
        caps = await caps_of(rt, station)
        refuse(rules.set_profile_problem(payload, caps, utcnow()))
        profile = payload["csChargingProfiles"]
        connector = payload["connectorId"]
        if profile["chargingProfilePurpose"] == "TxProfile":
            await tx_profile_rules(rt, station, connector, profile.get("transactionId"))
        if caps.max_profiles is not None:
            await room_for_profile(rt, station, connector, profile, caps.max_profiles)

    async def tx_profile_rules(rt: ServiceRuntime, station: str, connector: int,
                               transaction_id: int | None) -> None:
        if transaction_id is None:
            active = await rt.with_store(lambda: transaction_records.active_on_connector(
                db, station, connector))
            raise CommandRefused(*rules.missing_transaction_id(active, station, connector))
        found = await transaction(rt, transaction_id)
        refuse(rules.tx_profile_problem(found, transaction_id, station, connector))

    async def room_for_profile(rt: ServiceRuntime, station: str, connector: int,
                               profile: dict[str, Any], most: int) -> None:
        key = rules.profile_key(station, connector, profile["chargingProfilePurpose"],
                                profile["stackLevel"])
        if await rt.with_store(lambda: profiles.would_replace(
                station, key, profile["chargingProfileId"])):
            return
        held = await rt.with_store(lambda: profiles.count(station))
        if held >= most:
            raise CommandRefused("TooManyProfiles", f"{station} holds {held} profiles, its "
                                 f"MaxChargingProfilesInstalled; clear one first")

    @hooks.after("SetChargingProfile")
    async def profile_set(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if command["status"] != "accepted" or \
                (command.get("response") or {}).get("status") != "Accepted":
            return
        payload, station = command["payload"], command["station"]
        profile = payload["csChargingProfiles"]
        if profile["chargingProfilePurpose"] == "TxProfile":
            found = await transaction(rt, profile["transactionId"])
            if found is None or not found.get("active"):
                return  # the transaction ended meanwhile: so did the profile
        document = rules.profile_document(station, payload["connectorId"], profile, command)
        await rt.with_store(lambda: profiles.install(document))

    # --- ClearChargingProfile ---------------------------------------------------------------

    @hooks.validate("ClearChargingProfile")
    async def clear_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        payload = request.payload
        problem = rules.clear_problem(payload)
        if problem is None and "connectorId" in payload:
            problem = rules.connector_problem(payload["connectorId"],
                                              await caps_of(rt, request.station))
        refuse(problem)
        if not payload:
            return  # clear everything: always allowed
        held = await rt.with_store(lambda: profiles.held(request.station))
        if not any(rules.profile_matches(payload, doc) for doc in held):
            raise CommandRefused("NoMatchingProfile", f"{request.station} holds no profile "
                                 "matching these criteria (as far as GridLink knows)")

    @hooks.after("ClearChargingProfile")
    async def profiles_cleared(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if not rules.clear_took_effect(command):
            return
        criteria, station = command["payload"], command["station"]
        held = await rt.with_store(lambda: profiles.held(
            station, sent_before=last_sent_at(command)))
        gone = [doc["_id"] for doc in held if rules.profile_matches(criteria, doc)]
        if gone:
            await rt.with_store(lambda: profiles.remove(gone))
            log.info("charging profiles cleared", extra={
                "station": station, "command_id": command["_id"], "count": len(gone)})

    # --- GetCompositeSchedule ---------------------------------------------------------------

    @hooks.validate("GetCompositeSchedule")
    async def composite_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        refuse(rules.composite_problem(request.payload, await caps_of(rt, request.station)))

    @hooks.after("GetCompositeSchedule")
    async def composite_answered(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if command["status"] not in ("accepted", "rejected"):
            return
        document = rules.composite_document(command)
        await rt.with_store(lambda: profiles.record_composite(document))

    # --- RemoteStartTransaction with a profile, and transactions ending ----------------------

    @hooks.after("RemoteStartTransaction")
    async def remote_start_profile(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        profile = command["payload"].get("chargingProfile")
        if profile is None or command["status"] != "accepted" or \
                (command.get("response") or {}).get("status") != "Accepted":
            return
        document = rules.profile_document(
            command["station"], command["payload"].get("connectorId"), profile, command,
            pending=True, id_tag=command["payload"]["idTag"])
        await rt.with_store(lambda: profiles.keep_pending(
            f"{command['station']}/remote-start/{command['_id']}", document))

    @hooks.on_event("transaction.started")
    async def attach_remote_start_profile(rt: ServiceRuntime, event: dict[str, Any]) -> None:
        station, connector = str(event["station"]), int(event["connector"])
        pending = await rt.with_store(lambda: profiles.pending_for(
            station, event.get("id_tag"), connector))
        if pending is None:
            return
        active = await transaction(rt, int(event["transaction_id"]))
        if active is None or not active.get("active"):
            return
        document = {k: v for k, v in pending.items() if k not in ("_id", "pending", "id_tag")}
        document.update(connector=connector, transaction_id=int(event["transaction_id"]))
        await rt.with_store(lambda: profiles.install(document))
        await rt.with_store(lambda: profiles.forget(pending["_id"]))

    @hooks.on_event("transaction.stopped")
    async def tx_profiles_end(rt: ServiceRuntime, event: dict[str, Any]) -> None:
        transaction_id = int(event["transaction_id"])
        await rt.with_store(lambda: profiles.end_with_transaction(transaction_id))

    async def forget_stale_pending(runtime: ServiceRuntime) -> None:
        """Drop RemoteStart TxProfiles whose transaction never started (the charger did
        too)."""
        while not runtime.stopping.is_set():
            cutoff = utcnow() - PENDING_TTL
            await runtime.with_store(lambda cutoff=cutoff: profiles.forget_pending_before(cutoff))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.stopping.wait(), CLEANUP_INTERVAL_S)

    hooks.background.append(forget_stale_pending)
