"""Smart Charging documents, shared by the commands service and the CLI.

Collections (the commands service writes the first three; the CLI writes the groups)::

    charging_profiles    what each charger was told and accepted, one document per
                         installed profile, _id "STATION/CONNECTOR/PURPOSE/STACKLEVEL":
                         {station, connector, charging_profile_id, purpose, stack_level,
                          kind, recurrency_kind, valid_from, valid_to, transaction_id,
                          schedule (the chargingSchedule as sent), command_id, origin,
                          sent_at, accepted_at}
                         plus, until their transaction starts, TxProfiles accepted with a
                         RemoteStartTransaction: {pending: true, id_tag, connector|null}
    composite_schedules  GetCompositeSchedule answers, _id = command id:
                         {station, connector, duration, unit, status, schedule_start,
                          charging_schedule, answered_at}
    load_allocations     load management's state per active transaction, _id = transactionId:
                         {group, station, connector, started_at, target, accepted,
                          in_flight {command_id, limit, sent_at}, failed {limit, at, status},
                          sends, updated_at}    (amounts in the group's unit)
    station_groups       {_id: name, unit: A|W, limit, phases, voltage,
                          members: [{station, connector|null, max_current, min_current,
                                     phases}], created_at, updated_at,
                          lease_owner, lease_until}

A member is one connector of a station (``STATION:2``) or all of them (``STATION``); a
connector belongs to at most one group.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from services import stations
from services.errors import ConfigurationError, GridLinkError
from services.ocpp16 import iso, utcnow
from services.store import IndexSpec

CHARGING_PROFILES = "charging_profiles"
COMPOSITE_SCHEDULES = "composite_schedules"
LOAD_ALLOCATIONS = "load_allocations"
STATION_GROUPS = "station_groups"

UNITS = ("A", "W")
PURPOSES = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")

INDEXES: IndexSpec = {
    CHARGING_PROFILES: [
        IndexModel([("station", ASCENDING), ("connector", ASCENDING)]),
        IndexModel([("station", ASCENDING), ("charging_profile_id", ASCENDING)]),
        IndexModel("transaction_id"),
    ],
    COMPOSITE_SCHEDULES: [IndexModel([("station", ASCENDING), ("answered_at", DESCENDING)])],
    LOAD_ALLOCATIONS: [IndexModel("group")],
    STATION_GROUPS: [IndexModel("members.station")],
}

Db = AsyncDatabase[dict[str, Any]]
CONFIGURATION = "station_configuration"  # GetConfiguration snapshots (commands/features/core)


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


def _int_value(keys: dict[str, Any], name: str) -> int | None:
    try:
        return int(str(keys[name]).strip())
    except (KeyError, TypeError, ValueError):
        return None


def caps_from(snapshot: dict[str, Any] | None) -> ChargerCaps:
    """Read the capabilities out of a configuration snapshot."""
    keys = {k["key"]: k.get("value") for k in (snapshot or {}).get("keys", [])}
    units: frozenset[str] | None = None
    raw = keys.get("ChargingScheduleAllowedChargingRateUnit")
    if raw is not None:
        words = {w.strip().lower() for w in str(raw).split(",")}
        units = frozenset({u for u, names in (("A", {"current", "a"}), ("W", {"power", "w"}))
                           if words & names})
    return ChargerCaps(
        connectors=_int_value(keys, "NumberOfConnectors"),
        max_stack_level=_int_value(keys, "ChargeProfileMaxStackLevel"),
        units=units,
        max_periods=_int_value(keys, "ChargingScheduleMaxPeriods"),
        max_profiles=_int_value(keys, "MaxChargingProfilesInstalled"),
    )


async def charger_caps(db: Db, station: str) -> ChargerCaps:
    return caps_from(await db[CONFIGURATION].find_one({"_id": station}))


# --- groups ------------------------------------------------------------------------------


def parse_member(text: str) -> tuple[str, int | None]:
    """``STATION`` (all its connectors) or ``STATION:CONNECTOR`` (connector > 0)."""
    station, sep, connector = text.rpartition(":")
    if not sep or not connector.isdigit():
        if not text:
            raise ConfigurationError("empty station id")
        return text, None
    if not station:
        raise ConfigurationError(f"{text!r}: no station before ':'")
    if int(connector) <= 0:
        raise ConfigurationError(f"{text!r}: connector must be > 0")
    return station, int(connector)


def member_label(member: dict[str, Any]) -> str:
    connector = member.get("connector")
    return member["station"] if connector is None else f"{member['station']}:{connector}"


def member_for(group: dict[str, Any], station: str, connector: int) -> dict[str, Any] | None:
    """The group's member entry covering this connector (a connector entry wins)."""
    found = None
    for member in group.get("members", []):
        if member["station"] != station:
            continue
        if member.get("connector") == connector:
            return member
        if member.get("connector") is None:
            found = member
    return found


async def group_of(db: Db, station: str, connector: int) -> dict[str, Any] | None:
    """The group a station's connector belongs to, if any."""
    async for group in db[STATION_GROUPS].find({"members.station": station}):
        if member_for(group, station, connector) is not None:
            return group
    return None


def check_limit(unit: str, limit: float, phases: int, voltage: float) -> None:
    if unit not in UNITS:
        raise ConfigurationError(f"unit must be A or W, not {unit!r}")
    if not limit > 0:
        raise ConfigurationError("the group limit must be positive")
    if phases not in (1, 2, 3):
        raise ConfigurationError("--phases must be 1, 2 or 3")
    if not voltage > 0:
        raise ConfigurationError("--voltage must be positive")


async def save_group(db: Db, name: str, *, unit: str, limit: float, phases: int = 3,
                     voltage: float = 230.0) -> bool:
    """Create a group or change its limit (members stay); True when it is new."""
    if not name:
        raise ConfigurationError("empty group name")
    check_limit(unit, limit, phases, voltage)
    now = utcnow()
    result = await db[STATION_GROUPS].update_one(
        {"_id": name},
        {"$set": {"unit": unit, "limit": float(limit), "phases": phases,
                  "voltage": float(voltage), "updated_at": now},
         "$setOnInsert": {"members": [], "created_at": now}},
        upsert=True)
    return result.upserted_id is not None


def check_member_limits(max_current: float | None, min_current: float | None,
                        phases: int | None) -> None:
    if max_current is not None and not max_current > 0:
        raise ConfigurationError("--connector-max must be positive")
    if min_current is not None and not min_current >= 0:
        raise ConfigurationError("--min must not be negative")
    if max_current is not None and min_current is not None and min_current > max_current:
        raise ConfigurationError("--min must not exceed --connector-max")
    if phases is not None and phases not in (1, 2, 3):
        raise ConfigurationError("--phases must be 1, 2 or 3")


def _overlaps(a: dict[str, Any], station: str, connector: int | None) -> bool:
    if a["station"] != station:
        return False
    theirs = a.get("connector")
    return theirs is None or connector is None or theirs == connector


async def assign(db: Db, name: str, members: list[tuple[str, int | None]], *,
                 max_current: float | None = None, min_current: float | None = None,
                 phases: int | None = None) -> None:
    """Add members to a group (or update their limits if they are in it already).

    Refused when the group or a station is unknown, or a connector is in another group.
    """
    check_member_limits(max_current, min_current, phases)
    group = await db[STATION_GROUPS].find_one({"_id": name})
    if group is None:
        raise GridLinkError(f"no group {name!r}: create it with `gridlink groups add`")
    for station, connector in members:
        if await db[stations.COLLECTION].find_one({"_id": station}, {"_id": 1}) is None:
            raise GridLinkError(f"unknown station {station!r}")
        async for other in db[STATION_GROUPS].find(
                {"_id": {"$ne": name}, "members.station": station}):
            for member in other["members"]:
                if _overlaps(member, station, connector):
                    raise GridLinkError(
                        f"{member_label(member)} is in group {other['_id']!r} already")
    kept = [m for m in group.get("members", [])
            if (m["station"], m.get("connector")) not in set(members)]
    for station, connector in members:
        for member in kept:
            if _overlaps(member, station, connector):
                raise GridLinkError(f"{member_label(member)} is in this group already; "
                                    "unassign it first to change how it is listed")
    added = [{"station": s, "connector": c, "max_current": max_current,
              "min_current": min_current, "phases": phases} for s, c in members]
    await db[STATION_GROUPS].update_one(
        {"_id": name}, {"$set": {"members": kept + added, "updated_at": utcnow()}})


async def unassign(db: Db, name: str, members: list[tuple[str, int | None]]) -> int:
    """Remove members from a group; how many were removed."""
    group = await db[STATION_GROUPS].find_one({"_id": name})
    if group is None:
        raise GridLinkError(f"no group {name!r}")
    wanted = set(members)
    kept = [m for m in group["members"] if (m["station"], m.get("connector")) not in wanted]
    await db[STATION_GROUPS].update_one(
        {"_id": name}, {"$set": {"members": kept, "updated_at": utcnow()}})
    return len(group["members"]) - len(kept)


async def remove_group(db: Db, name: str) -> None:
    result = await db[STATION_GROUPS].delete_one({"_id": name})
    if result.deleted_count == 0:
        raise GridLinkError(f"no group {name!r}")


def _amount(value: float | None, unit: str) -> str | None:
    return None if value is None else f"{value:g} {unit}"


def _time(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


async def list_groups(db: Db) -> list[dict[str, Any]]:
    """Groups with members and their current shares (what the chargers accepted)."""
    rows = []
    async for group in db[STATION_GROUPS].find({}, sort=[("_id", ASCENDING)]):
        allocations = await db[LOAD_ALLOCATIONS].find(
            {"group": group["_id"]}, sort=[("started_at", ASCENDING)]).to_list()
        rows.append({
            "group": group["_id"],
            "limit": _amount(group["limit"], group["unit"]),
            "phases": group.get("phases"),
            "voltage": group.get("voltage"),
            "members": [_member_text(m) for m in group.get("members", [])],
            "transactions": [
                {"transactionId": a["_id"], "station": a["station"],
                 "connector": a["connector"], "target": a.get("target"),
                 "accepted": a.get("accepted"),
                 "pending": (a.get("in_flight") or {}).get("limit"),
                 "failed": (a.get("failed") or {}).get("status")}
                for a in allocations],
            "allocated": round(sum(a.get("accepted") or 0 for a in allocations), 1),
        })
    return rows


def _member_text(member: dict[str, Any]) -> str:
    details = [f"{k} {member[f]:g}" for k, f in (("max", "max_current"), ("min", "min_current"))
               if member.get(f) is not None]
    if member.get("phases") is not None:
        details.append(f"{member['phases']}ph")
    label = member_label(member)
    return f"{label} ({', '.join(details)})" if details else label


def periods_text(schedule: dict[str, Any]) -> str:
    """``0s 16A, 3600s 10A`` for a chargingSchedule."""
    unit = schedule.get("chargingRateUnit", "")
    return ", ".join(f"{p['startPeriod']}s {p['limit']:g}{unit}"
                     for p in schedule.get("chargingSchedulePeriod", []))


async def list_profiles(db: Db, station: str | None) -> list[dict[str, Any]]:
    """The profiles each charger accepted and still holds, as GridLink knows them."""
    query: dict[str, Any] = {"station": station} if station else {}
    rows = []
    cursor = db[CHARGING_PROFILES].find(
        query, sort=[("station", ASCENDING), ("connector", ASCENDING), ("purpose", ASCENDING),
                     ("stack_level", ASCENDING)])
    async for doc in cursor:
        schedule = doc.get("schedule") or {}
        rows.append({
            "station": doc["station"],
            "connector": doc.get("connector"),
            "chargingProfileId": doc.get("charging_profile_id"),
            "purpose": doc.get("purpose"),
            "stackLevel": doc.get("stack_level"),
            "kind": doc.get("kind"),
            "recurrency": doc.get("recurrency_kind"),
            "validFrom": _time(doc.get("valid_from")),
            "validTo": _time(doc.get("valid_to")),
            "transactionId": doc.get("transaction_id"),
            "schedule": periods_text(schedule),
            "origin": doc.get("origin"),
            "pending": bool(doc.get("pending")),
            "acceptedAt": _time(doc.get("accepted_at")),
        })
    return rows


async def list_composite_schedules(db: Db, station: str | None, limit: int = 50
                                   ) -> list[dict[str, Any]]:
    """Recorded GetCompositeSchedule answers, newest first."""
    query: dict[str, Any] = {"station": station} if station else {}
    rows = []
    async for doc in db[COMPOSITE_SCHEDULES].find(
            query, sort=[("answered_at", DESCENDING)], limit=limit):
        schedule = doc.get("charging_schedule") or {}
        rows.append({
            "station": doc["station"], "connector": doc["connector"],
            "duration": doc["duration"], "status": doc["status"],
            "scheduleStart": _time(doc.get("schedule_start")),
            "schedule": periods_text(schedule),
            "answeredAt": _time(doc["answered_at"]),
        })
    return rows
