"""The id-tag store (collection ``id_tags``), shared by authz and transactions.

One document per tag: ``{_id: tag, status, expiry, parent}``. :func:`id_tag_info` computes
the ``idTagInfo`` a charger gets: Accepted / Blocked / Expired (past expiry) / Invalid
(unknown), with ``parentIdTag`` and ``expiryDate``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from services.ocpp16 import iso
from services.read_batcher import ReadBatcher
from services.store import IndexSpec

COLLECTION = "id_tags"
STATUSES = ("Accepted", "Blocked", "Expired", "Invalid")
INDEXES: IndexSpec = {COLLECTION: [IndexModel("parent")]}


def info_from_document(document: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """idTagInfo (camelCase, as sent) for a tag document, judged at ``now``."""
    if document is None:
        return {"status": "Invalid"}
    status = document.get("status", "Accepted")
    expiry: datetime | None = document.get("expiry")
    if status == "Accepted" and expiry is not None and expiry <= now:
        status = "Expired"
    info: dict[str, Any] = {"status": status}
    if expiry is not None:
        info["expiryDate"] = iso(expiry)
    if document.get("parent"):
        info["parentIdTag"] = document["parent"]
    return info


async def id_tag_info(db: AsyncDatabase[dict[str, Any]], tag: str, now: datetime,
                      reads: ReadBatcher | None = None) -> dict[str, Any]:
    """Look a tag up and judge it (one read, shared with concurrent lookups via ``reads``)."""
    if reads is not None:
        return info_from_document(await reads.find_one(COLLECTION, "_id", tag), now)
    return info_from_document(await db[COLLECTION].find_one({"_id": tag}), now)


async def upsert_tag(db: AsyncDatabase[dict[str, Any]], tag: str, *, status: str,
                     expiry: datetime | None, parent: str | None) -> None:
    await db[COLLECTION].update_one(
        {"_id": tag},
        {"$set": {"status": status, "expiry": expiry, "parent": parent}},
        upsert=True,
    )
