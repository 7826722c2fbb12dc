"""Smart Charging without I/O (OCPP 1.6 §3.13, §5.5, §5.7, §5.16 with the errata): what a
SetChargingProfile, ClearChargingProfile or GetCompositeSchedule must satisfy before it is
sent, which profiles a ClearChargingProfile selects, and what a charger reported it can do.

Refusals are ``(error code, description)``; the checks are listed in
:mod:`commands.smart_charging.hooks`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commands.repository import last_sent_at
from commands.station_configuration import Snapshot
from services.errors import Refusal
from services.ocpp16 import parse_time, utcnow

UNITS = ("A", "W")
PURPOSES = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")
RECURRENCE_S = {"Daily": 86_400, "Weekly": 604_800}


def profile_key(station: str, connector: int, purpose: str, stack_level: int) -> str:
    """A charger keeps one profile per connector, purpose and stack level (§3.13.2)."""
    return f"{station}/{connector}/{purpose}/{stack_level}"


def clear_matches(criteria: dict[str, Any], *, charging_profile_id: int | None,
                  connector: int | None, purpose: str, stack_level: int) -> bool:
    """Does a ClearChargingProfile payload select this profile? (errata 3.25/3.26)

    No criteria: every profile. An ``id``: that profile only, other fields ignored.
    Otherwise every given field must match (logical AND). A profile whose connector is not
    known yet (a pending RemoteStart TxProfile) matches any connectorId.
    """
    if "id" in criteria:
        return criteria["id"] == charging_profile_id
    if "connectorId" in criteria and connector is not None \
            and criteria["connectorId"] != connector:
        return False
    if "chargingProfilePurpose" in criteria and criteria["chargingProfilePurpose"] != purpose:
        return False
    return not ("stackLevel" in criteria and criteria["stackLevel"] != stack_level)


@dataclass(frozen=True)
class ChargerCaps:
    """Smart Charging capabilities a charger reported (GetConfiguration); None: unknown."""

    connectors: int | None = None  # NumberOfConnectors
    max_stack_level: int | None = None  # ChargeProfileMaxStackLevel
    units: frozenset[str] | None = None  # ChargingScheduleAllowedChargingRateUnit as A/W
    max_periods: int | None = None  # ChargingScheduleMaxPeriods
    max_profiles: int | None = None  # MaxChargingProfilesInstalled

    def unit_for(self, preferred: str) -> str:
        """``preferred`` if the charger takes it (or nobody knows), else the unit it takes."""
        if self.units is None or preferred in self.units or not self.units:
            return preferred
        return sorted(self.units)[0]


def caps_from(document: dict[str, Any] | None) -> ChargerCaps:
    """The capabilities in a stored configuration snapshot."""
    snapshot = Snapshot.from_document(document)
    units: frozenset[str] | None = None
    raw = snapshot.value("ChargingScheduleAllowedChargingRateUnit")
    if raw is not None:
        words = {w.strip().lower() for w in raw.split(",")}
        units = frozenset({u for u, names in (("A", {"current", "a"}), ("W", {"power", "w"}))
                           if words & names})
    return ChargerCaps(
        connectors=snapshot.integer("NumberOfConnectors"),
        max_stack_level=snapshot.integer("ChargeProfileMaxStackLevel"),
        units=units,
        max_periods=snapshot.integer("ChargingScheduleMaxPeriods"),
        max_profiles=snapshot.integer("MaxChargingProfilesInstalled"),
    )


def clear_took_effect(command: dict[str, Any]) -> bool:
    """Did an answered ClearChargingProfile remove what it selects? (Accepted, or Unknown:
    the charger holds none of them any more.)"""
    answer = (command.get("response") or {}).get("status")
    return command["status"] in ("accepted", "rejected") and answer in ("Accepted", "Unknown")


# --- request checks ---------------------------------------------------------------------


def _constraint(text: str) -> Refusal:
    return ("PropertyConstraintViolation", text)


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
    return clear_matches(
        criteria, charging_profile_id=doc.get("charging_profile_id"),
        connector=doc.get("connector"), purpose=doc["purpose"], stack_level=doc["stack_level"])


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
        "origin": command.get("origin"), "sent_at": last_sent_at(command),
        "accepted_at": command.get("updated_at") or utcnow(), **extra,
    }


def periods_text(schedule: dict[str, Any]) -> str:
    """``0s 16A, 3600s 10A`` for a chargingSchedule."""
    unit = schedule.get("chargingRateUnit", "")
    return ", ".join(f"{p['startPeriod']}s {p['limit']:g}{unit}"
                     for p in schedule.get("chargingSchedulePeriod", []))


def tx_profile_problem(transaction: dict[str, Any] | None, transaction_id: int, station: str,
                       connector: int) -> Refusal | None:
    """A TxProfile's transaction must be known, active, and on that station and connector
    (the charger would discard the profile otherwise, §3.13.1)."""
    if transaction is None or transaction["station"] != station:
        return ("UnknownTransaction", f"no transaction {transaction_id} on {station}")
    if not transaction.get("active"):
        return ("TransactionStopped", f"transaction {transaction_id} has already stopped")
    if transaction["connector"] != connector:
        return ("ConnectorMismatch", f"transaction {transaction_id} is on connector "
                f"{transaction['connector']}, not {connector}")
    return None


def missing_transaction_id(active: dict[str, Any] | None, station: str, connector: int
                           ) -> Refusal:
    """Why a TxProfile without transactionId is refused (with the active one, if any)."""
    if active is None:
        return ("NoActiveTransaction", f"no active transaction on {station} connector "
                f"{connector}: the charger would discard a TxProfile")
    return ("OccurenceConstraintViolation", "a TxProfile needs its transactionId (the active "
            f"one on connector {connector} is {active['_id']})")


def composite_problem(payload: dict[str, Any], caps: ChargerCaps) -> Refusal | None:
    """GetCompositeSchedule: a known connector, duration > 0, a unit the charger allows."""
    problem = connector_problem(payload["connectorId"], caps)
    if problem is not None:
        return problem
    if payload["duration"] <= 0:
        return _constraint("duration must be positive")
    unit = payload.get("chargingRateUnit")
    if unit is not None and caps.units is not None and unit not in caps.units:
        return ("UnsupportedUnit", f"chargingRateUnit {unit}: the charger does not allow it "
                "(ChargingScheduleAllowedChargingRateUnit)")
    return None


def composite_document(command: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a GetCompositeSchedule answer."""
    payload, response = command["payload"], command.get("response") or {}
    start = response.get("scheduleStart")
    asked = payload.get("chargingRateUnit")
    answered = (response.get("chargingSchedule") or {}).get("chargingRateUnit")
    return {
        "_id": command["_id"], "station": command["station"],
        "connector": response.get("connectorId", payload["connectorId"]),
        "duration": payload["duration"], "unit": answered or asked,
        "asked_unit": asked,
        # What the charger said is kept as it said it; a unit other than the one asked for
        # is flagged (it is not converted: W and A differ by voltage and phases).
        "flags": ["unit_mismatch"] if asked and answered and asked != answered else [],
        "status": response.get("status"),
        "schedule_start": parse_time(start) if start else None,
        "charging_schedule": response.get("chargingSchedule"),
        "answered_at": command.get("updated_at") or utcnow(),
    }
