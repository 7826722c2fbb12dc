"""Smart Charging documents (the commands service writes them; the CLI reads them)::

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
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from commands import station_configuration
from commands.smart_charging.rules import ChargerCaps, caps_from, periods_text, profile_key
from services.command_records import CHARGING_PROFILES
from services.ocpp16 import iso
from services.read_batcher import ReadBatcher
from services.store import IndexSpec

COMPOSITE_SCHEDULES = "composite_schedules"

INDEXES: IndexSpec = {
    CHARGING_PROFILES: [
        IndexModel([("station", ASCENDING), ("connector", ASCENDING)]),
        IndexModel([("station", ASCENDING), ("charging_profile_id", ASCENDING)]),
        IndexModel("transaction_id"),
    ],
    COMPOSITE_SCHEDULES: [IndexModel([("station", ASCENDING), ("answered_at", DESCENDING)])],
}

Db = AsyncDatabase[dict[str, Any]]
Document = dict[str, Any]


async def charger_caps(db: Db, station: str) -> ChargerCaps:
    """What the station reported it can do (from its configuration snapshot)."""
    return caps_from(await station_configuration.read_document(db, station))


class ProfileRepository:
    """The profiles each charger holds, as far as GridLink knows."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.profiles = db[CHARGING_PROFILES]
        self.reads = ReadBatcher(db)

    async def held(self, station: str, *, sent_before: datetime | None = None
                   ) -> list[Document]:
        query: Document = {"station": station}
        if sent_before is not None:
            query["sent_at"] = {"$lt": sent_before}
        return await self.profiles.find(query).to_list()

    async def would_replace(self, station: str, key: str, charging_profile_id: int) -> bool:
        """Does a charger's profile hold this key or id already (a new one replaces it)?"""
        found = await self.profiles.find_one(
            {"station": station, "$or": [{"_id": key},
                                         {"charging_profile_id": charging_profile_id}]},
            {"_id": 1})
        return found is not None

    async def count(self, station: str) -> int:
        return await self.profiles.count_documents({"station": station})

    async def install(self, document: Document) -> None:
        """Store a profile unless a newer one holds its place; drop what it replaces."""
        key = profile_key(document["station"], document["connector"],
                          document["purpose"], document["stack_level"])
        with contextlib.suppress(DuplicateKeyError):  # a newer profile holds this key
            await self.profiles.update_one(
                {"_id": key, "sent_at": {"$lte": document["sent_at"]}},
                {"$set": document, "$unset": {"pending": "", "id_tag": ""}}, upsert=True)
        await self.profiles.delete_many({
            "station": document["station"], "_id": {"$ne": key},
            "charging_profile_id": document["charging_profile_id"],
            "sent_at": {"$lt": document["sent_at"]}})

    async def remove(self, ids: list[str]) -> None:
        await self.profiles.delete_many({"_id": {"$in": ids}})

    async def keep_pending(self, key: str, document: Document) -> None:
        """A TxProfile accepted with a RemoteStartTransaction, until its transaction starts."""
        await self.profiles.replace_one({"_id": key}, document, upsert=True)

    async def pending_for(self, station: str, id_tag: str | None, connector: int
                          ) -> Document | None:
        """The newest RemoteStart TxProfile waiting for this start (every
        ``transaction.started`` asks: concurrent lookups share one query)."""
        pending = [found for found in await self.reads.find(
                       CHARGING_PROFILES, "station", station, where={"pending": True})
                   if found.get("id_tag") == id_tag and found.get("connector") in (connector, None)]
        return max(pending, key=lambda found: found["sent_at"], default=None)

    async def forget(self, key: str) -> None:
        await self.profiles.delete_one({"_id": key})

    async def end_with_transaction(self, transaction_id: int) -> None:
        """Forget the TxProfiles of a stopped transaction. Every stop asks and almost none
        has one: a lookup shared with concurrent stops, a delete only when there is one."""
        if await self.reads.find(CHARGING_PROFILES, "transaction_id", transaction_id,
                                 where={"purpose": "TxProfile"}, projection={"transaction_id": 1}):
            await self.profiles.delete_many({"purpose": "TxProfile",
                                             "transaction_id": transaction_id})

    async def forget_pending_before(self, cutoff: datetime) -> None:
        await self.profiles.delete_many({"pending": True, "sent_at": {"$lt": cutoff}})

    async def record_composite(self, document: Document) -> None:
        await self.db[COMPOSITE_SCHEDULES].replace_one({"_id": document["_id"]}, document,
                                                       upsert=True)


def _time(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


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
            "unit": doc.get("unit"), "askedUnit": doc.get("asked_unit"),
            "flags": ",".join(doc.get("flags") or []) or None,
            "scheduleStart": _time(doc.get("schedule_start")),
            "schedule": periods_text(schedule),
            "answeredAt": _time(doc["answered_at"]),
        })
    return rows

