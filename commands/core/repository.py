"""The availability each ChangeAvailability requested, and whether the connector confirmed it.

Collection ``availability``, one document per connector, ``_id`` = "STATION/CONNECTOR"::

    {station, connector, requested: Operative|Inoperative, answer, requested_at, command_id,
     confirmed: bool, confirmed_at}
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from services.ocpp16 import iso
from services.read_batcher import ReadBatcher
from services.store import IndexSpec

COLLECTION = "availability"
INDEXES: IndexSpec = {COLLECTION: [IndexModel("station")]}

Db = AsyncDatabase[dict[str, Any]]


class AvailabilityRepository:
    def __init__(self, db: Db) -> None:
        self.db = db
        # every StatusNotification asks; storms ask thousands
        self.reads = ReadBatcher(db, component="commands")

    async def requested(self, key: str, *, station: str, connector: int, requested: str,
                        answer: str | None, at: datetime, command_id: str) -> None:
        """A ChangeAvailability was answered: remember it, not confirmed yet."""
        await self.db[COLLECTION].update_one(
            {"_id": key},
            {"$set": {"station": station, "connector": connector, "requested": requested,
                      "answer": answer, "requested_at": at, "command_id": command_id,
                      "confirmed": False, "confirmed_at": None}},
            upsert=True)

    async def get(self, key: str) -> dict[str, Any] | None:
        return await self.reads.find_one(COLLECTION, "_id", key)

    async def confirm(self, key: str, at: datetime) -> None:
        await self.db[COLLECTION].update_one(
            {"_id": key, "confirmed": False}, {"$set": {"confirmed": True, "confirmed_at": at}})


async def list_rows(db: Db, station: str | None) -> list[dict[str, Any]]:
    """Requested availability per connector, for ``gridlink availability list``."""
    query = {"station": station} if station else {}
    rows = []
    async for doc in db[COLLECTION].find(query, sort=[("_id", 1)]):
        rows.append({"station": doc["station"], "connector": doc["connector"],
                     "requested": doc["requested"], "answer": doc["answer"],
                     "confirmed": doc["confirmed"], "requestedAt": iso(doc["requested_at"])})
    return rows
