"""Upload tokens (collection ``upload_tokens``): one per upload location GridLink hands out
with GetDiagnostics or GetLog, ``_id`` = the token::

    {_id, station, command_id, kind: "diagnostics" | "log", details, created_at,
     expires_at, reservation?, reserved_until?, used_at?, file_id?}

(``details``: what the upload's file ``metadata`` gets besides station and command, e.g. a
log's ``log_type`` and ``request_id``.)

A token takes one upload. Before reading a body byte the file server **reserves** it with
one atomic ``find_one_and_update`` (only an unexpired, unused token of that station without
a live reservation matches), so two concurrent uploads with one token cannot both proceed;
the completed upload **consumes** it (``used_at``, ``file_id``); an aborted one
**releases** the reservation, so the charger may retry. A reservation is a lease
(``reserved_until``): if the replica holding it dies, the token is free again once the
lease ends (the longest a request may take, GRIDLINK_FILES_REQUEST_TIMEOUT_S, plus a
minute). Why a token is refused: :func:`commands.files.rules.upload_refusal`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from services.ocpp16 import utcnow
from services.store import IndexSpec

COLLECTION = "upload_tokens"
DIAGNOSTICS, LOG = "diagnostics", "log"

INDEXES: IndexSpec = {
    COLLECTION: [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)],
}

Db = AsyncDatabase[dict[str, Any]]


async def register(db: Db, token: str, station: str, command_id: str, expires_at: datetime,
                   kind: str = DIAGNOSTICS, details: dict[str, Any] | None = None) -> bool:
    """Bind ``token`` to one command of ``station``; False if another command holds it."""
    document = await db[COLLECTION].find_one_and_update(
        {"_id": token},
        {"$setOnInsert": {"station": station, "command_id": command_id, "kind": kind,
                          "details": details or {}, "created_at": utcnow(),
                          "expires_at": expires_at}},
        upsert=True, return_document=ReturnDocument.AFTER,
    )
    return bool(document["station"] == station and document["command_id"] == command_id
                and document.get("kind", DIAGNOSTICS) == kind)


async def get(db: Db, token: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": token})


async def reserve(db: Db, token: str, station: str, now: datetime, lease_until: datetime
                  ) -> dict[str, Any] | None:
    """Reserve the token for one upload (atomically); the token document with its
    ``reservation`` id, or None when it may not be used now (look at it to say why)."""
    return await db[COLLECTION].find_one_and_update(
        {"_id": token, "station": station, "expires_at": {"$gt": now}, "used_at": None,
         "$or": [{"reserved_until": None}, {"reserved_until": {"$lte": now}}]},
        {"$set": {"reservation": uuid.uuid4().hex, "reserved_until": lease_until}},
        return_document=ReturnDocument.AFTER,
    )


async def release(db: Db, token: str, reservation: str) -> None:
    """Give up a reservation (the upload was aborted): the token may be used again."""
    await db[COLLECTION].update_one(
        {"_id": token, "reservation": reservation},
        {"$unset": {"reservation": "", "reserved_until": ""}})


async def consume(db: Db, token: str, reservation: str, file_id: ObjectId) -> bool:
    """The upload under ``reservation`` completed: the token is used up. False if the
    reservation was lost meanwhile (the lease ended and another upload took it)."""
    result = await db[COLLECTION].update_one(
        {"_id": token, "reservation": reservation},
        {"$set": {"used_at": utcnow(), "file_id": file_id},
         "$unset": {"reservation": "", "reserved_until": ""}})
    return result.modified_count == 1
