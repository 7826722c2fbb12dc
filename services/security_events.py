"""Security events (OCPP 1.6 Security Whitepaper, "Security events"): what chargers report
with SecurityEventNotification, and what GridLink itself saw (a refused connection, a
certificate it rejected), in one collection.

``security_events``: ``{_id, station, type, at, tech_info, source: charger|csms, peer,
received_at}``. ``_id`` is derived from what identifies the event, so a redelivered or
resent notification is stored once. Written by the commands service (the chargers' events)
and by authz (refused handshakes); read by ``gridlink security events``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from services.ocpp16 import iso
from services.store import IndexSpec

COLLECTION = "security_events"
INDEXES: IndexSpec = {COLLECTION: [
    IndexModel([("station", ASCENDING), ("at", DESCENDING)]),
    IndexModel([("at", DESCENDING)]),
]}
CHARGER, CSMS = "charger", "csms"

Db = AsyncDatabase[dict[str, Any]]


def event_document(*, station: str, type: str, at: datetime, source: str,
                   tech_info: str | None = None, peer: str | None = None,
                   received_at: datetime | None = None, key: str | None = None
                   ) -> dict[str, Any]:
    """The stored form of an event; ``key`` (default: station, type, time, source) makes a
    repeated event the same document."""
    identity = key or f"{station}\0{type}\0{iso(at)}\0{source}\0{tech_info or ''}"
    return {"_id": hashlib.sha256(identity.encode()).hexdigest()[:32], "station": station,
            "type": type, "at": at, "tech_info": tech_info, "source": source, "peer": peer,
            "received_at": received_at or at}


async def record(db: Db, document: dict[str, Any]) -> bool:
    """Store an event once; True when it is new."""
    result = await db[COLLECTION].update_one({"_id": document["_id"]},
                                             {"$setOnInsert": document}, upsert=True)
    return result.upserted_id is not None


async def list_rows(db: Db, station: str | None, limit: int = 100) -> list[dict[str, Any]]:
    """Events, newest first, as CLI rows."""
    query = {"station": station} if station else {}
    rows = []
    async for doc in db[COLLECTION].find(query, sort=[("at", DESCENDING)], limit=limit):
        rows.append({"at": iso(doc["at"]), "station": doc["station"], "type": doc["type"],
                     "source": doc["source"], "techInfo": doc.get("tech_info"),
                     "peer": doc.get("peer")})
    return rows
