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

What each charger was told (collection ``charging_profiles``, see :mod:`services.charging`):
an Accepted SetChargingProfile installs its profile, replacing the one with the same
chargingProfileId or the same connector, purpose and stackLevel (§3.13.2, §5.16.3); an
answered ClearChargingProfile (Accepted, or Unknown: the charger holds none of them)
removes the profiles it selects (errata 3.25: no criteria = all; an id = that one; else
all given fields); a TxProfile ends with its transaction (``transaction.stopped``). A
TxProfile accepted with a RemoteStartTransaction is kept ``pending`` and attached to the
transaction the same tag starts on that station. Outcomes may be processed out of order:
a change only applies over profiles sent before it. GetCompositeSchedule answers are
recorded in ``composite_schedules``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from commands.features import CommandHooks, CommandRefused
from services import charging
from services.charging import ChargerCaps
from services.envelope import CommandRequest
from services.ocpp16 import parse_time, utcnow
from services.runtime import ServiceRuntime

log = logging.getLogger("gridlink.commands.smart_charging")

RECURRENCE_S = {"Daily": 86_400, "Weekly": 604_800}
PENDING_TTL = timedelta(minutes=10)  # a RemoteStart TxProfile whose transaction never came
CLEANUP_INTERVAL_S = 60.0

Refusal = tuple[str, str]  # (error code, description)


def _constraint(text: str) -> Refusal:
    return ("PropertyConstraintViolation", text)


# --- pure checks ------------------------------------------------------------------------


def schedule_problem(schedule: dict[str, Any], caps: ChargerCaps,
                     recurrence_s: int | None = None) -> Refusal | None:
    """What is wrong with a (schema-valid) chargingSchedule, or None."""
    periods = schedule["chargingSchedulePeriod"]
    if not periods:
        return ("OccurenceConstraintViolation", "chargingSchedulePeriod: at least one period")
    if periods[0]["startPeriod"] != 0:
        return _constraint("chargingSchedulePeriod: the first startPeriod must be 0")
    starts = [p["startPeriod"] for p in periods]
    if any(b <= a for a, b in itertools.pairwise(starts)):
        return _constraint("chargingSchedulePeriod: startPeriod must increase")
    for period in periods:
        if period["limit"] < 0:
            return _constraint("chargingSchedulePeriod: limit must not be negative")
        if period.get("numberPhases") is not None and not 1 <= period["numberPhases"] <= 3:
            return _constraint("chargingSchedulePeriod: numberPhases must be 1, 2 or 3")
    duration = schedule.get("duration")
    if duration is not None:
        if duration <= 0:
            return _constraint("duration must be positive")
        if starts[-1] >= duration:
            return _constraint(f"startPeriod {starts[-1]} is not within duration {duration}: "
                               "the charger would never run it")
    if recurrence_s is not None and starts[-1] >= recurrence_s:
        return _constraint(f"startPeriod {starts[-1]} is past the recurrence period "
                           f"({recurrence_s} s): the charger would never run it")
    if schedule.get("minChargingRate", 0) < 0:
        return _constraint("minChargingRate must not be negative")
    unit = schedule["chargingRateUnit"]
    if caps.units is not None and unit not in caps.units:
        allowed = ", ".join(sorted(caps.units)) or "none"
        return ("UnsupportedUnit", f"chargingRateUnit {unit}: the charger allows {allowed} "
                "(ChargingScheduleAllowedChargingRateUnit)")
    if caps.max_periods is not None and len(periods) > caps.max_periods:
        return ("TooManyPeriods", f"{len(periods)} periods; the charger takes at most "
                f"{caps.max_periods} (ChargingScheduleMaxPeriods)")
    return None


def connector_problem(connector: int, caps: ChargerCaps) -> Refusal | None:
    if connector < 0:
        return _constraint("connectorId must not be negative")
    if caps.connectors is not None and connector > caps.connectors:
        return ("UnknownConnector", f"connector {connector}: the charger has "
                f"{caps.connectors} (NumberOfConnectors)")
    return None


def set_profile_problem(payload: dict[str, Any], caps: ChargerCaps, now: datetime
                        ) -> Refusal | None:
    """The rules of a (schema-valid) SetChargingProfile that need no database."""
    connector = payload["connectorId"]
    profile = payload["csChargingProfiles"]
    purpose, kind = profile["chargingProfilePurpose"], profile["chargingProfileKind"]
    schedule = profile["chargingSchedule"]
    problem = connector_problem(connector, caps)
    if problem is not None:
        return problem
    if purpose == "ChargePointMaxProfile" and connector != 0:
        return _constraint("a ChargePointMaxProfile can only be set at connectorId 0")
    if purpose == "TxProfile" and connector == 0:
        return _constraint("a TxProfile can only be set at connectorId > 0")
    if purpose != "TxProfile" and "transactionId" in profile:
        return _constraint("transactionId belongs in a TxProfile only")
    stack = profile["stackLevel"]
    if stack < 0:
        return _constraint("stackLevel must not be negative")
    if caps.max_stack_level is not None and stack > caps.max_stack_level:
        return _constraint(f"stackLevel {stack} is above the charger's "
                           f"ChargeProfileMaxStackLevel {caps.max_stack_level}")
    recurrency = profile.get("recurrencyKind")
    if kind == "Recurring" and recurrency is None:
        return ("OccurenceConstraintViolation", "a Recurring profile needs recurrencyKind")
    if kind != "Recurring" and recurrency is not None:
        return _constraint("recurrencyKind is only for a Recurring profile")
    if kind in ("Recurring", "Absolute") and "startSchedule" not in schedule:
        return ("OccurenceConstraintViolation",
                f"an {kind} profile needs chargingSchedule.startSchedule")
    valid_from = parse_time(profile["validFrom"]) if "validFrom" in profile else None
    valid_to = parse_time(profile["validTo"]) if "validTo" in profile else None
    if valid_to is not None:
        if valid_to <= now:
            return _constraint("validTo is in the past: the profile would never apply")
        if valid_from is not None and valid_to <= valid_from:
            return _constraint("validTo must be after validFrom")
    return schedule_problem(schedule, caps, RECURRENCE_S.get(recurrency or ""))


def clear_problem(payload: dict[str, Any]) -> Refusal | None:
    """Criteria of a ClearChargingProfile that are invalid or can never match."""
    connector = payload.get("connectorId")
    purpose = payload.get("chargingProfilePurpose")
    if connector is not None and connector < 0:
        return _constraint("connectorId must not be negative")
    if payload.get("stackLevel", 0) < 0:
        return _constraint("stackLevel must not be negative")
    if "id" in payload:
        return None  # the other fields are ignored (errata 3.26)
    if purpose == "ChargePointMaxProfile" and connector not in (None, 0):
        return _constraint("a ChargePointMaxProfile is only ever at connectorId 0")
    if purpose == "TxProfile" and connector == 0:
        return _constraint("a TxProfile is never at connectorId 0")
    return None


def profile_matches(criteria: dict[str, Any], doc: dict[str, Any]) -> bool:
    return charging.clear_matches(
        criteria, charging_profile_id=doc.get("charging_profile_id"),
        connector=doc.get("connector"), purpose=doc["purpose"], stack_level=doc["stack_level"])


def sent_at(command: dict[str, Any]) -> datetime:
    """When the command left GridLink (its last send, else its creation)."""
    sent = [h["at"] for h in command.get("history", []) if h["status"] == "sent"]
    return sent[-1] if sent else command["created_at"]


def profile_document(station: str, connector: int | None, profile: dict[str, Any],
                     command: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The stored form of an accepted csChargingProfiles."""
    return {
        "station": station, "connector": connector,
        "charging_profile_id": profile["chargingProfileId"],
        "purpose": profile["chargingProfilePurpose"], "stack_level": profile["stackLevel"],
        "kind": profile["chargingProfileKind"], "recurrency_kind": profile.get("recurrencyKind"),
        "valid_from": parse_time(profile["validFrom"]) if "validFrom" in profile else None,
        "valid_to": parse_time(profile["validTo"]) if "validTo" in profile else None,
        "transaction_id": profile.get("transactionId"),
        "schedule": profile["chargingSchedule"], "command_id": command["_id"],
        "origin": command.get("origin"), "sent_at": sent_at(command),
        "accepted_at": command.get("updated_at") or utcnow(), **extra,
    }


# --- the feature -----------------------------------------------------------------------------


def register(hooks: CommandHooks) -> None:
    db = hooks.runtime.store.db
    profiles = db[charging.CHARGING_PROFILES]
    hooks.add_indexes(charging.INDEXES)

    async def caps_of(rt: ServiceRuntime, station: str) -> ChargerCaps:
        caps: ChargerCaps = await rt.with_store(lambda: charging.charger_caps(db, station))
        return caps

    async def transaction(rt: ServiceRuntime, transaction_id: int) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await rt.with_store(lambda: db["transactions"].find_one(
            {"_id": transaction_id}, {"station": 1, "connector": 1, "active": 1}))
        return found

    # --- SetChargingProfile -----------------------------------------------------------------

    @hooks.validate("SetChargingProfile")
    async def set_profile_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        payload, station = request.payload, request.station
        caps = await caps_of(rt, station)
        problem = set_profile_problem(payload, caps, utcnow())
        if problem is not None:
            raise CommandRefused(*problem)
        profile = payload["csChargingProfiles"]
        connector = payload["connectorId"]
        if profile["chargingProfilePurpose"] == "TxProfile":
            await tx_profile_rules(rt, station, connector, profile.get("transactionId"))
        if caps.max_profiles is not None:
            await room_for_profile(rt, station, connector, profile, caps.max_profiles)

    async def tx_profile_rules(rt: ServiceRuntime, station: str, connector: int,
                               transaction_id: int | None) -> None:
        if transaction_id is None:
            active = await rt.with_store(lambda: db["transactions"].find_one(
                {"station": station, "connector": connector, "active": True}, {"_id": 1}))
            if active is None:
                raise CommandRefused("NoActiveTransaction", f"no active transaction on "
                                     f"{station} connector {connector}: the charger would "
                                     "discard a TxProfile")
            raise CommandRefused("OccurenceConstraintViolation", "a TxProfile needs its "
                                 f"transactionId (the active one on connector {connector} "
                                 f"is {active['_id']})")
        found = await transaction(rt, transaction_id)
        if found is None or found["station"] != station:
            raise CommandRefused("UnknownTransaction",
                                 f"no transaction {transaction_id} on {station}")
        if not found.get("active"):
            raise CommandRefused("TransactionStopped",
                                 f"transaction {transaction_id} has already stopped")
        if found["connector"] != connector:
            raise CommandRefused("ConnectorMismatch", f"transaction {transaction_id} is on "
                                 f"connector {found['connector']}, not {connector}")

    async def room_for_profile(rt: ServiceRuntime, station: str, connector: int,
                               profile: dict[str, Any], most: int) -> None:
        key = charging.profile_key(station, connector, profile["chargingProfilePurpose"],
                                   profile["stackLevel"])
        replaced = await rt.with_store(lambda: profiles.find_one(
            {"station": station, "$or": [{"_id": key},
                                         {"charging_profile_id": profile["chargingProfileId"]}]},
            {"_id": 1}))
        if replaced is not None:
            return
        held = await rt.with_store(lambda: profiles.count_documents({"station": station}))
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
        document = profile_document(station, payload["connectorId"], profile, command)
        await rt.with_store(lambda: install(document))

    async def install(document: dict[str, Any]) -> None:
        """Store a profile unless a newer one holds its place; drop what it replaces."""
        key = charging.profile_key(document["station"], document["connector"],
                                   document["purpose"], document["stack_level"])
        with contextlib.suppress(DuplicateKeyError):  # a newer profile holds this key
            await profiles.update_one(
                {"_id": key, "sent_at": {"$lte": document["sent_at"]}},
                {"$set": document, "$unset": {"pending": "", "id_tag": ""}}, upsert=True)
        await profiles.delete_many({
            "station": document["station"], "_id": {"$ne": key},
            "charging_profile_id": document["charging_profile_id"],
            "sent_at": {"$lt": document["sent_at"]}})

    # --- ClearChargingProfile ---------------------------------------------------------------

    @hooks.validate("ClearChargingProfile")
    async def clear_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        payload = request.payload
        problem = clear_problem(payload)
        if problem is None and "connectorId" in payload:
            problem = connector_problem(payload["connectorId"], await caps_of(rt, request.station))
        if problem is not None:
            raise CommandRefused(*problem)
        if not payload:
            return  # clear everything: always allowed
        held = await rt.with_store(
            lambda: profiles.find({"station": request.station}).to_list())
        if not any(profile_matches(payload, doc) for doc in held):
            raise CommandRefused("NoMatchingProfile", f"{request.station} holds no profile "
                                 "matching these criteria (as far as GridLink knows)")

    @hooks.after("ClearChargingProfile")
    async def profiles_cleared(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        answer = (command.get("response") or {}).get("status")
        if command["status"] not in ("accepted", "rejected") or \
                answer not in ("Accepted", "Unknown"):
            return
        criteria, station, before = command["payload"], command["station"], sent_at(command)
        held = await rt.with_store(lambda: profiles.find(
            {"station": station, "sent_at": {"$lt": before}}).to_list())
        gone = [doc["_id"] for doc in held if profile_matches(criteria, doc)]
        if gone:
            await rt.with_store(lambda: profiles.delete_many({"_id": {"$in": gone}}))
            log.info("charging profiles cleared", extra={
                "station": station, "command_id": command["_id"], "count": len(gone)})

    # --- GetCompositeSchedule ---------------------------------------------------------------

    @hooks.validate("GetCompositeSchedule")
    async def composite_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        payload = request.payload
        caps = await caps_of(rt, request.station)
        problem = connector_problem(payload["connectorId"], caps)
        if problem is not None:
            raise CommandRefused(*problem)
        if payload["duration"] <= 0:
            raise CommandRefused(*_constraint("duration must be positive"))
        unit = payload.get("chargingRateUnit")
        if unit is not None and caps.units is not None and unit not in caps.units:
            raise CommandRefused("UnsupportedUnit", f"chargingRateUnit {unit}: the charger "
                                 "does not allow it (ChargingScheduleAllowedChargingRateUnit)")

    @hooks.after("GetCompositeSchedule")
    async def composite_answered(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if command["status"] not in ("accepted", "rejected"):
            return
        payload, response = command["payload"], command.get("response") or {}
        start = response.get("scheduleStart")
        document = {
            "_id": command["_id"], "station": command["station"],
            "connector": response.get("connectorId", payload["connectorId"]),
            "duration": payload["duration"], "unit": payload.get("chargingRateUnit"),
            "status": response.get("status"),
            "schedule_start": parse_time(start) if start else None,
            "charging_schedule": response.get("chargingSchedule"),
            "answered_at": command.get("updated_at") or utcnow(),
        }
        await rt.with_store(lambda: db[charging.COMPOSITE_SCHEDULES].replace_one(
            {"_id": command["_id"]}, document, upsert=True))

    # --- RemoteStartTransaction with a profile, and transactions ending ----------------------

    @hooks.after("RemoteStartTransaction")
    async def remote_start_profile(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        profile = command["payload"].get("chargingProfile")
        if profile is None or command["status"] != "accepted" or \
                (command.get("response") or {}).get("status") != "Accepted":
            return
        document = profile_document(
            command["station"], command["payload"].get("connectorId"), profile, command,
            pending=True, id_tag=command["payload"]["idTag"])
        await rt.with_store(lambda: profiles.replace_one(
            {"_id": f"{command['station']}/remote-start/{command['_id']}"}, document,
            upsert=True))

    @hooks.on_event("transaction.started")
    async def attach_remote_start_profile(rt: ServiceRuntime, event: dict[str, Any]) -> None:
        station, connector = str(event["station"]), int(event["connector"])
        pending = await rt.with_store(lambda: profiles.find_one(
            {"station": station, "pending": True, "id_tag": event.get("id_tag"),
             "connector": {"$in": [connector, None]}}, sort=[("sent_at", -1)]))
        if pending is None:
            return
        active = await transaction(rt, int(event["transaction_id"]))
        if active is None or not active.get("active"):
            return
        document = {k: v for k, v in pending.items() if k not in ("_id", "pending", "id_tag")}
        document.update(connector=connector, transaction_id=int(event["transaction_id"]))
        await rt.with_store(lambda: install(document))
        await rt.with_store(lambda: profiles.delete_one({"_id": pending["_id"]}))

    @hooks.on_event("transaction.stopped")
    async def tx_profiles_end(rt: ServiceRuntime, event: dict[str, Any]) -> None:
        transaction_id = int(event["transaction_id"])
        await rt.with_store(lambda: profiles.delete_many(
            {"purpose": "TxProfile", "transaction_id": transaction_id}))

    hooks.background.append(forget_stale_pending)


async def forget_stale_pending(runtime: ServiceRuntime) -> None:
    """Drop RemoteStart TxProfiles whose transaction never started (the charger did too)."""
    profiles = runtime.store.db[charging.CHARGING_PROFILES]
    while not runtime.stopping.is_set():
        cutoff = utcnow() - PENDING_TTL
        await runtime.with_store(lambda cutoff=cutoff: profiles.delete_many(
            {"pending": True, "sent_at": {"$lt": cutoff}}))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), CLEANUP_INTERVAL_S)
