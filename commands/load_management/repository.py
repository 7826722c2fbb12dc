"""Site load management's documents::

    station_groups       {_id: name, unit: A|W, limit, phases, voltage,
                          members: [{station, connector|null, max_current, min_current,
                                     phases}], created_at, updated_at,
                          lease_owner, lease_until}        (made with ``gridlink groups``
                         or the HTTP API: the registry is :mod:`services.station_groups`)
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

from commands.load_management.rules import member_for, member_text
from services.command_records import STATION_GROUPS
from services.read_batcher import ReadBatcher
from services.station_groups import assign as assign
from services.station_groups import remove_group as remove_group
from services.station_groups import save_group as save_group
from services.station_groups import unassign as unassign
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

