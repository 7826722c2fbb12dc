"""The read batcher: concurrent lookups share one ``$in`` query and each gets exactly what
its own query would have found, also by a dotted path into arrays of subdocuments."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.read_batcher import ReadBatcher


async def test_concurrent_lookups_share_one_query(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db["things"].insert_many([
        {"_id": 1, "station": "A", "status": "Active"},
        {"_id": 2, "station": "A", "status": "Used"},
        {"_id": 3, "station": "B", "status": "Active"},
    ])
    reads = ReadBatcher(db)
    found = await asyncio.gather(*(
        reads.find("things", "station", station, where={"status": "Active"})
        for station in ("A", "B", "C", "A")))
    assert [[d["_id"] for d in docs] for docs in found] == [[1], [3], [], [1]]
    assert reads.queries <= 2  # the first goes alone, the others wait for it and share


async def test_a_dotted_path_into_an_array(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db["groups"].insert_many([
        {"_id": "site", "members": [{"station": "A", "connector": 1},
                                    {"station": "B", "connector": None}]},
        {"_id": "depot", "members": [{"station": "B", "connector": 2}]},
        {"_id": "empty", "members": []},
    ])
    reads = ReadBatcher(db)
    found = await asyncio.gather(*(reads.find("groups", "members.station", station)
                                   for station in ("A", "B", "C")))
    assert [sorted(d["_id"] for d in docs) for docs in found] == [
        ["site"], ["depot", "site"], []]
