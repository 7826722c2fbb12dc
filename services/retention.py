"""How long collections that grow without bound keep their documents: MongoDB TTL indexes.

A service declares its :class:`Retention` policies (a collection, the date field its
documents expire by, the days from ``GRIDLINK_RETENTION_*_DAYS``) and the runtime applies
them at start-up with :func:`ensure_retention`, idempotently:

- no TTL index yet: it is created (``expireAfterSeconds``), named :data:`INDEX_NAME`;
- the setting changed: the existing index is changed in place with ``collMod`` (creating it
  again with other options would fail with IndexOptionsConflict); a database user without
  the ``collMod`` privilege (MongoDB's ``readWrite`` role lacks it) has it dropped and
  created again instead;
- ``0`` days: the index is dropped, documents are kept forever;
- the same value: nothing is done (replicas starting together all find it so).

MongoDB's TTL monitor deletes expired documents in the background (every 60 s by default);
SecantusDB, the embedded server, does the same. Documents whose field is missing or not a
date never expire. Every replica of a service must have the same setting (one ConfigMap),
or the last one started wins. A policy the server refuses (another index an operator made
holds the key) is logged and skipped: the service still starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

log = logging.getLogger("gridlink.retention")

INDEX_NAME = "gridlink_retention"
SECONDS_PER_DAY = 86_400
#: A concurrent start-up created the index with other options, or another index has its key.
_CONFLICTS = frozenset({85, 86})  # IndexOptionsConflict, IndexKeySpecsConflict
_UNAUTHORIZED = 13


@dataclass(frozen=True)
class Retention:
    """Documents of ``collection`` are deleted ``days`` after their ``field`` (a date);
    ``days == 0`` keeps them forever."""

    collection: str
    field: str
    days: float

    @property
    def seconds(self) -> int | None:
        """``expireAfterSeconds`` (at least 1), or None to keep forever."""
        if self.days <= 0:
            return None
        return max(1, round(self.days * SECONDS_PER_DAY))


async def ensure_retention(db: AsyncDatabase[dict[str, Any]], policies: tuple[Retention, ...]
                           ) -> dict[str, str]:
    """Make each collection's TTL index match its policy; what was done, by collection
    (``created``, ``changed``, ``dropped``, ``kept``, ``none``)."""
    done: dict[str, str] = {}
    for policy in policies:
        try:
            done[policy.collection] = await _apply(db, policy)
        except OperationFailure as exc:
            log.error("retention not applied", extra={
                "collection": policy.collection, "days": policy.days, "code": exc.code,
                "error": str(exc)})
            done[policy.collection] = "failed"
            continue
        if done[policy.collection] not in ("kept", "none"):
            log.info("retention %s", done[policy.collection], extra={
                "collection": policy.collection, "field": policy.field,
                "days": policy.days})
    return done


async def _apply(db: AsyncDatabase[dict[str, Any]], policy: Retention) -> str:
    collection = db[policy.collection]
    existing = (await collection.index_information()).get(INDEX_NAME)
    seconds = policy.seconds
    if seconds is None:
        if existing is None:
            return "none"
        await collection.drop_index(INDEX_NAME)
        return "dropped"
    key = [(policy.field, ASCENDING)]
    if existing is not None and [tuple(k) for k in existing["key"]] != key:
        await collection.drop_index(INDEX_NAME)  # a release that expired by another field
        existing = None
    if existing is None:
        try:
            await collection.create_index(key, name=INDEX_NAME, expireAfterSeconds=seconds)
            return "created"
        except OperationFailure as exc:
            if exc.code not in _CONFLICTS:
                raise
            existing = (await collection.index_information()).get(INDEX_NAME)
            if existing is None:
                raise  # another index has this key: an operator's, to be resolved by hand
    if existing.get("expireAfterSeconds") == seconds:
        return "kept"
    try:
        await db.command("collMod", policy.collection,
                         index={"name": INDEX_NAME, "expireAfterSeconds": seconds})
    except OperationFailure as exc:
        if exc.code != _UNAUTHORIZED:
            raise
        await collection.drop_index(INDEX_NAME)
        await collection.create_index(key, name=INDEX_NAME, expireAfterSeconds=seconds)
    return "changed"
