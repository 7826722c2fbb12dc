"""Site load management's documents::

    station_groups       {_id: name, unit: A|W, limit, phases, voltage,
                          members: [{station, connector|null, max_current, min_current,
                                     phases}], created_at, updated_at,
                          lease_owner, lease_until}        (made with ``gridlink groups``)
    load_allocations     load management's state per active transaction, _id = transactionId:
                         {group, station, connector, started_at, target, accepted,
                          in_flight {command_id, limit, stack_level, sent_at},
                          failed {limit, at, status, count}, unsure, sends, stack_level,
                          profile_sent_at, updated_at}      (amounts in the group's unit)
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from commands.load_management.rules import (
    check_limit,
    check_member_limits,
    member_for,
    member_label,
    member_text,
    overlaps,
)
from services import stations
from services.command_records import STATION_GROUPS
from services.errors import ConfigurationError, GridLinkError
from services.ocpp16 import utcnow
from services.read_batcher import ReadBatcher
from services.store import IndexSpec

LOAD_ALLOCATIONS = "load_allocations"

INDEXES: IndexSpec = {
    LOAD_ALLOCATIONS: [IndexModel("group")],
    STATION_GROUPS: [IndexModel("members.station")],
}

Db = AsyncDatabase[dict[str, Any]]


async def group_of(db: Db, station: str, connector: int,
                   reads: ReadBatcher | None = None) -> dict[str, Any] | None:
    """The group a station's connector belongs to, if any (the lookup shared with
    concurrent ones through ``reads``: every transaction event asks)."""
    if reads is not None:
        groups = await reads.find(STATION_GROUPS, "members.station", station)
    else:
        groups = await db[STATION_GROUPS].find({"members.station": station}).to_list()
    for group in groups:
        if member_for(group, station, connector) is not None:
            return group
    return None


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
            "members": [member_text(m) for m in group.get("members", [])],
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

