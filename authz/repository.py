"""The MongoDB documents authz owns: stations (registry, boot info, last seen), data transfers,
the security events of refused connections.

Every write is idempotent: redelivered messages set the same fields again.

``data_transfers``: one per DataTransfer call, ``_id`` = :func:`data_transfer_key` (station,
the gateway's session id, the CALL's unique id), so a redelivery of the same broker message
is stored once while a charger that reuses a CALL id after a reconnect (a new session) gets
a record of its own. ``{station, session, unique_id, request: {vendorId, messageId, data},
data_bytes, status, received_at}``; a ``data`` larger than GRIDLINK_MAX_DATA_TRANSFER_BYTES
is not kept (``request`` without ``data``, ``rejected: "data_too_large"``). Records of
earlier releases keep their ``station/uniqueId`` ids. Kept for
GRIDLINK_RETENTION_DATA_TRANSFERS_DAYS (:mod:`services.retention`).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from pymongo import IndexModel, InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from services import id_tags, security_events, stations
from services.read_batcher import ReadBatcher
from services.store import IndexSpec, merge_indexes
from services.write_batcher import WriteBatcher, raise_unexpected

DATA_TRANSFERS = "data_transfers"
INDEXES: IndexSpec = merge_indexes(
    stations.INDEXES,
    id_tags.INDEXES,
    security_events.INDEXES,
    {DATA_TRANSFERS: [IndexModel([("station", 1), ("received_at", -1)])]},
)
_ADMISSION_FIELDS = {field: 1 for field in (
    "registration", "security_profile", "password_hash", "previous_password_hash",
    "previous_valid_until", "certificate_cn", "next_profile")}


class AuthzRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, default_registration: str,
                 password_checks: int = 2) -> None:
        self.db = db
        self.default_registration = default_registration
        self.passwords = stations.PasswordChecker(concurrency=password_checks)
        self.writes = WriteBatcher(db, component="authz")  # boots of a reconnect storm, coalesced
        self.reads = ReadBatcher(db, component="authz")  # registrations and id tags, coalesced

    async def admission_documents(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """What admission needs of these stations, in one read."""
        wanted = list(dict.fromkeys(ids))
        return {doc["_id"]: doc async for doc in self.db[stations.COLLECTION].find(
            {"_id": {"$in": wanted}}, projection=_ADMISSION_FIELDS)}

    async def register_unknown(self, station: str, *, profile: int, now: datetime) -> None:
        """Register a station on its first connection (coalesced with others); a duplicate
        means a concurrent connection registered it, which is fine."""
        raise_unexpected(await self.writes.write(stations.COLLECTION, [InsertOne(
            {"_id": station, "registration": self.default_registration,
             "security_profile": profile, "created_at": now, "auto_registered": True})]))

    async def forget_previous_password(self, station: str) -> None:
        await stations.forget_previous_password(self.db, station)

    async def apply_scheduled_profile(self, station: str, profile: int) -> None:
        await stations.apply_scheduled_profile(self.db, station, profile)

    async def rehash_password(self, station: str, old_hash: str, password: str) -> None:
        """Replace a hash of an earlier release with today's (off the event loop)."""
        new_hash = await asyncio.to_thread(stations.hash_password, password)
        await stations.upgrade_password_hash(self.db, station, old_hash, new_hash)

    async def record_security_event(self, document: dict[str, Any]) -> None:
        await security_events.record(self.db, document)

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

    async def record_data_transfer(self, station: str, session: str, unique_id: str,
                                   request: dict[str, Any], status: str, now: datetime, *,
                                   data_bytes: int = 0, rejected: str | None = None) -> None:
        """Store a DataTransfer once per call (a redelivery changes nothing)."""
        document: dict[str, Any] = {
            "station": station, "session": session, "unique_id": unique_id,
            "request": request, "data_bytes": data_bytes, "status": status,
            "received_at": now}
        if rejected is not None:
            document["rejected"] = rejected
        await self.db[DATA_TRANSFERS].update_one(
            {"_id": data_transfer_key(station, session, unique_id)},
            {"$setOnInsert": document}, upsert=True)


def data_transfer_key(station: str, session: str, unique_id: str) -> str:
    """The id of a DataTransfer record: a JSON array, so no separator in a station id or a
    CALL id can make two calls one key."""
    return json.dumps([station, session, unique_id], ensure_ascii=False)

