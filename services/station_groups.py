"""Station groups of site load management (collection ``station_groups``): the registry
operators edit — ``gridlink groups add|assign|unassign|remove`` and the HTTP API — and the
member rules it checks. The load management feature (``commands/load_management``) plans
with these groups; its own state (``load_allocations``) stays there.

``{_id: name, unit: A|W, limit, phases, voltage, members: [{station, connector|null,
max_current, min_current, phases}], created_at, updated_at, lease_owner, lease_until}``.
A member is one connector of a station (``STATION:2``) or all of them (``STATION``); a
connector belongs to at most one group.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services import stations
from services.clock import utcnow
from services.command_records import STATION_GROUPS
from services.errors import ConfigurationError, GridLinkError

COLLECTION = STATION_GROUPS
CURRENT, POWER = "A", "W"  # a group's limit: a current or a power
UNITS = (CURRENT, POWER)

Db = AsyncDatabase[dict[str, Any]]


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


def check_limit(unit: str, limit: float, phases: int, voltage: float) -> None:
    if unit not in UNITS:
        raise ConfigurationError(f"unit must be A or W, not {unit!r}")
    if not limit > 0:
        raise ConfigurationError("the group limit must be positive")
    if phases not in (1, 2, 3):
        raise ConfigurationError("--phases must be 1, 2 or 3")
    if not voltage > 0:
        raise ConfigurationError("--voltage must be positive")


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


def overlaps(member: dict[str, Any], station: str, connector: int | None) -> bool:
    """Does a group member cover (part of) this station or connector?"""
    if member["station"] != station:
        return False
    theirs = member.get("connector")
    return theirs is None or connector is None or theirs == connector


def member_text(member: dict[str, Any]) -> str:
    """``CP1:2 (max 32, min 6, 3ph)`` for ``gridlink groups list``."""
    details = [f"{k} {member[f]:g}" for k, f in (("max", "max_current"), ("min", "min_current"))
               if member.get(f) is not None]
    if member.get("phases") is not None:
        details.append(f"{member['phases']}ph")
    label = member_label(member)
    return f"{label} ({', '.join(details)})" if details else label


async def save_group(db: Db, name: str, *, unit: str, limit: float, phases: int = 3,
                     voltage: float = 230.0) -> bool:
    """Create a group or change its limit (members stay); True when it is new."""
    if not name:
        raise ConfigurationError("empty group name")
    check_limit(unit, limit, phases, voltage)
    now = utcnow()
    result = await db[COLLECTION].update_one(
        {"_id": name},
        {"$set": {"unit": unit, "limit": float(limit), "phases": phases,
                  "voltage": float(voltage), "updated_at": now},
         "$setOnInsert": {"members": [], "created_at": now}},
        upsert=True)
    return result.upserted_id is not None


async def assign(db: Db, name: str, members: list[tuple[str, int | None]], *,
                 max_current: float | None = None, min_current: float | None = None,
                 phases: int | None = None) -> None:
    """Add members to a group (or update their limits if they are in it already).

    Refused when the group or a station is unknown, or a connector is in another group.
    """
    check_member_limits(max_current, min_current, phases)
    group = await db[COLLECTION].find_one({"_id": name})
    if group is None:
        raise GridLinkError(f"no group {name!r}: create it with `gridlink groups add`")
    for station, connector in members:
        if await db[stations.COLLECTION].find_one({"_id": station}, {"_id": 1}) is None:
            raise GridLinkError(f"unknown station {station!r}")
        async for other in db[COLLECTION].find(
                {"_id": {"$ne": name}, "members.station": station}):
            for member in other["members"]:
                if overlaps(member, station, connector):
                    raise GridLinkError(
                        f"{member_label(member)} is in group {other['_id']!r} already")
    kept = [m for m in group.get("members", [])
            if (m["station"], m.get("connector")) not in set(members)]
    for station, connector in members:
        for member in kept:
            if overlaps(member, station, connector):
                raise GridLinkError(f"{member_label(member)} is in this group already; "
                                    "unassign it first to change how it is listed")
    added = [{"station": s, "connector": c, "max_current": max_current,
              "min_current": min_current, "phases": phases} for s, c in members]
    await db[COLLECTION].update_one(
        {"_id": name}, {"$set": {"members": kept + added, "updated_at": utcnow()}})


async def unassign(db: Db, name: str, members: list[tuple[str, int | None]]) -> int:
    """Remove members from a group; how many were removed."""
    group = await db[COLLECTION].find_one({"_id": name})
    if group is None:
        raise GridLinkError(f"no group {name!r}")
    wanted = set(members)
    kept = [m for m in group["members"] if (m["station"], m.get("connector")) not in wanted]
    await db[COLLECTION].update_one(
        {"_id": name}, {"$set": {"members": kept, "updated_at": utcnow()}})
    return len(group["members"]) - len(kept)


async def remove_group(db: Db, name: str) -> None:
    result = await db[COLLECTION].delete_one({"_id": name})
    if result.deleted_count == 0:
        raise GridLinkError(f"no group {name!r}")
