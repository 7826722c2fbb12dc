"""The MongoDB documents authz owns: stations (registry, boot info, last seen), data transfers.

Every write is idempotent: redelivered messages set the same fields again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import IndexModel, InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from services import id_tags, stations
from services.envelope import ConnectDecision, ConnectRequest
from services.read_batcher import ReadBatcher
from services.store import IndexSpec, merge_indexes
from services.write_batcher import WriteBatcher, raise_unexpected

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
        self.passwords = stations.PasswordChecker()
        self.writes = WriteBatcher(db, component="authz")  # boots of a reconnect storm, coalesced
        self.reads = ReadBatcher(db)  # registrations and id tags, coalesced

    async def admit(self, request: ConnectRequest, now: datetime) -> ConnectDecision:
        """May this identity open a connection? (Basic-auth and certificates plug in here.)"""
        return (await self.admit_many([request], now))[0]

    async def admit_many(self, requests: list[ConnectRequest], now: datetime
                         ) -> list[ConnectDecision]:
        """Admit a batch of handshakes with one read (and at most one write for unknown
        stations when they are accepted); one decision per request, in order."""
        wanted = list(dict.fromkeys(r.station for r in requests))
        known = {doc["_id"]: doc async for doc in self.db[stations.COLLECTION].find(
            {"_id": {"$in": wanted}}, projection={"password_hash": 1})}
        unknown = [s for s in wanted if s not in known]
        if unknown and self.accept_unknown:
            # a duplicate: registered meanwhile by a concurrent connect, which is fine
            raise_unexpected(await self.writes.write(stations.COLLECTION, [InsertOne(
                {"_id": station, "registration": self.default_registration,
                 "created_at": now, "auto_registered": True}) for station in unknown]))
        return [await self._decide(r, known.get(r.station)) for r in requests]

    async def _decide(self, request: ConnectRequest, document: dict[str, Any] | None
                      ) -> ConnectDecision:
        if document is None:
            if not self.accept_unknown:
                return ConnectDecision(accept=False, status=404, reason="unknown_station")
            return ConnectDecision(accept=True)  # registered above (or concurrently)
        stored_hash = document.get("password_hash")
        if stored_hash is not None and (
                request.password is None
                or not await self.passwords.check(request.password, stored_hash)):
            return ConnectDecision(accept=False, status=401, reason="unauthorized")
        return ConnectDecision(accept=True)

    async def record_boot(self, station: str, boot: dict[str, Any], now: datetime) -> str:
        """Store the boot information; return the station's registration status.

        An upsert and a read rather than one findAndModify: the same answer, and far
        cheaper on every MongoDB-wire server (a reconnect storm is thousands of boots)."""
        result = await self.writes.write(stations.COLLECTION, [UpdateOne(
            {"_id": station},
            {"$set": {"boot": boot, "last_boot": now, "last_seen": now},
             "$setOnInsert": {"registration": self.default_registration, "created_at": now}},
            upsert=True)])
        raise_unexpected(result)
        document = await self.reads.find_one(stations.COLLECTION, "_id", station,
                                             projection={"registration": 1})
        return str((document or {}).get("registration", self.default_registration))

    async def record_seen(self, station: str, now: datetime) -> None:
        """Last seen, never moved backwards (heartbeats of a whole fleet, coalesced)."""
        raise_unexpected(await self.writes.write(stations.COLLECTION, [UpdateOne(
            {"_id": station, "$or": [{"last_seen": {"$lt": now}}, {"last_seen": None}]},
            {"$set": {"last_seen": now}})]))

    async def id_tag_info(self, tag: str, now: datetime) -> dict[str, Any]:
        return await id_tags.id_tag_info(self.db, tag, now, self.reads)

    async def record_data_transfer(self, station: str, unique_id: str, request: dict[str, Any],
                                   status: str, now: datetime) -> None:
        await self.db[DATA_TRANSFERS].update_one(
            {"_id": f"{station}/{unique_id}"},
            {"$setOnInsert": {"station": station, "request": request, "status": status,
                              "received_at": now}},
            upsert=True,
        )

