"""The MongoDB documents the commands service owns.

``commands``: one per command, ``_id`` = command_id (the idempotency key), with its lifecycle
``queued -> sent -> accepted | rejected | callerror | timeout | offline`` (``invalid`` ones
are answered but never stored) and a ``history`` of transitions with timestamps. Status
changes are conditional on the current status, so a late or repeated outcome changes nothing.
The stored ``payload`` is redacted (:mod:`commands.redaction`); ``sender`` is who asked for
it (the request's AMQP ``user_id``, or ``gridlink:<origin>``); features add fields of their
own when it is recorded (``new_key_hash``: :mod:`commands.credentials.hooks`).
(Each feature's own documents live in its package's ``repository.py``.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services import stations
from services.command_records import COMMANDS
from services.read_batcher import ReadBatcher
from services.store import IndexSpec

OPEN_STATUSES = ["queued", "sent"]

INDEXES: IndexSpec = {
    COMMANDS: [
        IndexModel([("station", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("status", ASCENDING), ("deadline", ASCENDING)]),
        IndexModel([("status", ASCENDING), ("expires_at", ASCENDING)]),
    ],
}

Document = dict[str, Any]


def sent_times(command: Document) -> list[datetime]:
    """When the command was sent, oldest first (several times if it waited for a boot)."""
    return [h["at"] for h in command.get("history", []) if h["status"] == "sent"]


def first_sent_at(command: Document) -> datetime:
    """When the command first left GridLink (its creation if it never did)."""
    sent = sent_times(command)
    return sent[0] if sent else command["created_at"]  # type: ignore[no-any-return]


def last_sent_at(command: Document) -> datetime:
    """When the command last left GridLink (its creation if it never did)."""
    sent = sent_times(command)
    return sent[-1] if sent else command["created_at"]  # type: ignore[no-any-return]


class CommandRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        # a boot storm asks for every station's queue at once
        self.reads = ReadBatcher(db, component="commands")

    async def station_exists(self, station: str) -> bool:
        return await self.station(station) is not None

    async def station(self, station: str, fields: tuple[str, ...] = ()) -> Document | None:
        """The station's registry document (:mod:`services.stations`), with ``fields``."""
        projection = {"_id": 1, **{field: 1 for field in fields}}
        return await self.db[stations.COLLECTION].find_one({"_id": station}, projection)

    async def create(self, document: Document) -> Document | None:
        """Insert a new command; None when the id exists (returns nothing new)."""
        try:
            await self.db[COMMANDS].insert_one(document)
            return document
        except DuplicateKeyError:
            return None

    async def get(self, command_id: str, fields: tuple[str, ...] = ()) -> Document | None:
        projection = {field: 1 for field in fields} if fields else None
        return await self.db[COMMANDS].find_one({"_id": command_id}, projection)

    async def add_waiter(self, command_id: str, reply_to: str) -> None:
        await self.db[COMMANDS].update_one(
            {"_id": command_id}, {"$addToSet": {"reply_to": reply_to}}
        )

    async def transition(self, command_id: str, status: str, at: datetime,
                         fields: Document | None = None,
                         from_statuses: list[str] | None = None) -> Document | None:
        """Move to ``status`` if the command is still in ``from_statuses``; the new document."""
        return await self.db[COMMANDS].find_one_and_update(
            {"_id": command_id, "status": {"$in": from_statuses or OPEN_STATUSES}},
            {"$set": {"status": status, "updated_at": at, **(fields or {})},
             "$push": {"history": {"status": status, "at": at}}},
            return_document=True,
        )

    async def annotate(self, command_id: str, fields: Document) -> None:
        """Store fields a feature keeps on the command (whatever its status)."""
        await self.db[COMMANDS].update_one({"_id": command_id}, {"$set": fields})

    async def unsend(self, command_id: str) -> None:
        """Undo a "sent" that reached no gateway: queued again, as if never sent."""
        await self.db[COMMANDS].update_one(
            {"_id": command_id, "status": "sent"},
            {"$set": {"status": "queued"}, "$pop": {"history": 1}},
        )

    async def overdue(self, now: datetime, limit: int = 100) -> list[Document]:
        """Sent (or stuck queued, not waiting for a boot) past their deadline."""
        cursor = self.db[COMMANDS].find(
            {"$or": [{"status": "sent"},
                     {"status": "queued", "queue_if_offline": {"$ne": True}}],
             "deadline": {"$lt": now}}, limit=limit
        )
        return await cursor.to_list()

    async def expired(self, now: datetime, limit: int = 100) -> list[Document]:
        cursor = self.db[COMMANDS].find(
            {"status": "queued", "expires_at": {"$lt": now}}, limit=limit
        )
        return await cursor.to_list()

    async def waiting_for(self, station: str) -> list[Document]:
        """Commands queued until the station boots, oldest first."""
        found = await self.reads.find(COMMANDS, "station", station,
                                      where={"status": "queued", "queue_if_offline": True})
        return sorted(found, key=lambda document: document["created_at"])

