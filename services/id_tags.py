"""The id-tag store (collection ``id_tags``), shared by authz and transactions.

One document per tag: ``{_id: tag, status, expiry, parent, max_concurrent}``.
:func:`id_tag_info` computes the ``idTagInfo`` a charger gets: Accepted / Blocked / Expired
(past expiry) / Invalid (unknown), with ``parentIdTag`` and ``expiryDate``.
``max_concurrent`` is how many transactions the tag may have Accepted at once on different
connectors (a fleet card may have several; absent means 1, :func:`max_concurrent`); the
transactions service enforces it (``transactions/tag_sessions.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from services.clock import iso
from services.read_batcher import ReadBatcher
from services.store import IndexSpec

COLLECTION = "id_tags"
STATUSES = ("Accepted", "Blocked", "Expired", "Invalid")
INDEXES: IndexSpec = {COLLECTION: [IndexModel("parent")]}
DEFAULT_MAX_CONCURRENT = 1
MAX_CONCURRENT_LIMIT = 1000  # the most a tag may be given (each session holds a slot)


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


def max_concurrent(document: dict[str, Any] | None) -> int:
    """How many Accepted transactions the tag may have at once (1 when not set)."""
    value = (document or {}).get("max_concurrent")
    return int(value) if isinstance(value, int) and value >= 1 else DEFAULT_MAX_CONCURRENT


async def find_tag(db: AsyncDatabase[dict[str, Any]], tag: str,
                   reads: ReadBatcher | None = None) -> dict[str, Any] | None:
    """A tag's document (one read, shared with concurrent lookups via ``reads``)."""
    if reads is not None:
        return await reads.find_one(COLLECTION, "_id", tag)
    return await db[COLLECTION].find_one({"_id": tag})


async def id_tag_info(db: AsyncDatabase[dict[str, Any]], tag: str, now: datetime,
                      reads: ReadBatcher | None = None) -> dict[str, Any]:
    """Look a tag up and judge it (one read, shared with concurrent lookups via ``reads``)."""
    return info_from_document(await find_tag(db, tag, reads), now)


async def upsert_tag(db: AsyncDatabase[dict[str, Any]], tag: str, *, status: str,
                     expiry: datetime | None, parent: str | None,
                     max_concurrent: int | None = None) -> None:
    """Add or update a tag; ``max_concurrent`` None keeps a stored one (a new tag gets 1)."""
    await db[COLLECTION].update_one(
        {"_id": tag}, tag_update(status=status, expiry=expiry, parent=parent,
                                 max_concurrent=max_concurrent), upsert=True)


def tag_update(*, status: str, expiry: datetime | None, parent: str | None,
               max_concurrent: int | None = None) -> dict[str, Any]:
    """The upsert that adds or updates a tag (:func:`upsert_tag`, and the bulk import)."""
    if max_concurrent is not None and not 1 <= max_concurrent <= MAX_CONCURRENT_LIMIT:
        raise ValueError(f"max_concurrent must be 1..{MAX_CONCURRENT_LIMIT}")
    update: dict[str, Any] = {"$set": {"status": status, "expiry": expiry, "parent": parent}}
    if max_concurrent is None:
        update["$setOnInsert"] = {"max_concurrent": DEFAULT_MAX_CONCURRENT}
    else:
        update["$set"]["max_concurrent"] = max_concurrent
    return update
