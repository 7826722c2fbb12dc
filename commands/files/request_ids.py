"""The ``requestId`` of GetLog and SignedUpdateFirmware: how a charger's LogStatusNotification
and SignedFirmwareStatusNotification name the request they report on (N01.FR.07, L01.FR.10).

``gridlink logs request`` and ``gridlink firmware update --signed`` take a fresh one from the
shared counter ``file_request_id`` (:mod:`services.counters`), so replicas never hand out the
same. A request with a requestId of its own (``gridlink command``) is checked before it is
sent: ``request_ids`` holds one document per (action, station, requestId), ``_id``
``"{action}:{requestId}:{station}"`` with the command it belongs to, so a second command
with the same requestId for that station is refused rather than mixed up with the first.
"""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from services.envelope import CommandRequest
from services.errors import CommandRefused
from services.file_transfers import REQUEST_ID_COUNTER, fresh_request_id
from services.ocpp16 import utcnow
from services.runtime import ServiceRuntime

COLLECTION = "request_ids"
COUNTER = REQUEST_ID_COUNTER

Db = AsyncDatabase[dict[str, Any]]

#: A requestId no other GetLog or SignedUpdateFirmware of GridLink's carries.
fresh = fresh_request_id


async def claim(db: Db, action: str, station: str, request_id: int, command_id: str) -> bool:
    """Bind the requestId to one command of the station (idempotent); False if another
    command of that station holds it."""
    document = await db[COLLECTION].find_one_and_update(
        {"_id": f"{action}:{request_id}:{station}"},
        {"$setOnInsert": {"station": station, "action": action, "request_id": request_id,
                          "command_id": command_id, "created_at": utcnow()}},
        upsert=True, return_document=ReturnDocument.AFTER)
    return bool(document["command_id"] == command_id)


async def claim_or_refuse(runtime: ServiceRuntime, db: Db, request: CommandRequest) -> None:
    """:func:`claim` the request's requestId for it, or refuse the command."""
    station, request_id = request.station, request.payload["requestId"]
    if not await runtime.with_store(lambda: claim(db, request.action, station, request_id,
                                                  request.command_id)):
        raise CommandRefused("PropertyConstraintViolation",
                             f"requestId {request_id} belongs to another {request.action} of "
                             f"{station!r}")
