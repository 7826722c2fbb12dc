"""The MongoDB documents authz owns: stations (registry, boot info, last seen), data transfers.

Every write is idempotent: redelivered messages set the same fields again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services import id_tags, stations
from services.envelope import ConnectDecision, ConnectRequest
from services.store import IndexSpec, merge_indexes

DATA_TRANSFERS = "data_transfers"
INDEXES: IndexSpec = merge_indexes(
    stations.INDEXES,
    id_tags.INDEXES,
    {DATA_TRANSFERS: [IndexModel([("station", 1), ("received_at", -1)])]},
)


class AuthzRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, accept_unknown: bool,
                 default_registration: str) -> None:
        self.db = db
        self.accept_unknown = accept_unknown
        self.default_registration = default_registration

    async def admit(self, request: ConnectRequest, now: datetime) -> ConnectDecision:
        """May this identity open a connection? (Basic-auth and certificates plug in here.)"""
        document = await self.db[stations.COLLECTION].find_one({"_id": request.station})
        if document is None:
            if not self.accept_unknown:
                return ConnectDecision(accept=False, status=404, reason="unknown_station")
            try:
                await self.db[stations.COLLECTION].insert_one(
                    {"_id": request.station, "registration": self.default_registration,
                     "created_at": now, "auto_registered": True}
                )
            except DuplicateKeyError:
                pass  # registered concurrently by another connect: fine
            return ConnectDecision(accept=True)
        stored_hash = document.get("password_hash")
        if stored_hash is not None and (
                request.password is None
                or not stations.check_password(request.password, stored_hash)):
            return ConnectDecision(accept=False, status=401, reason="unauthorized")
        return ConnectDecision(accept=True)

    async def record_boot(self, station: str, boot: dict[str, Any], now: datetime) -> str:
        """Store the boot information; return the station's registration status."""
        document = await self.db[stations.COLLECTION].find_one_and_update(
            {"_id": station},
            {"$set": {"boot": boot, "last_boot": now, "last_seen": now},
             "$setOnInsert": {"registration": self.default_registration, "created_at": now}},
            upsert=True,
            return_document=True,
            projection={"registration": 1},
        )
        return str((document or {}).get("registration", self.default_registration))

    async def record_seen(self, station: str, now: datetime) -> None:
        await self.db[stations.COLLECTION].update_one(
            {"_id": station, "$or": [{"last_seen": {"$lt": now}}, {"last_seen": None}]},
            {"$set": {"last_seen": now}},
        )

    async def id_tag_info(self, tag: str, now: datetime) -> dict[str, Any]:
        return await id_tags.id_tag_info(self.db, tag, now)

    async def record_data_transfer(self, station: str, unique_id: str, request: dict[str, Any],
                                   status: str, now: datetime) -> None:
        await self.db[DATA_TRANSFERS].update_one(
            {"_id": f"{station}/{unique_id}"},
            {"$setOnInsert": {"station": station, "request": request, "status": status,
                              "received_at": now}},
            upsert=True,
        )
