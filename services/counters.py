"""Counters shared by every replica (collection ``counters``): ``{_id: name, value: int}``.

Each name is its own sequence (``transaction_id``, ``reservation_id``); :func:`advance` moves
one forward with a single ``$inc``, so replicas never hand out the same value.
"""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

COLLECTION = "counters"


async def advance(db: AsyncDatabase[dict[str, Any]], name: str, by: int = 1) -> int:
    """Add ``by`` to counter ``name`` (created at 0) and return its new value."""
    document = await db[COLLECTION].find_one_and_update(
        {"_id": name}, {"$inc": {"value": by}}, upsert=True,
        return_document=ReturnDocument.AFTER)
    assert document is not None
    return int(document["value"])
