"""MongoDB through pymongo's async API: client lifecycle, indexes, outage detection.

The same code talks to a MongoDB replica set in production and to the embedded SecantusDB
in development and tests; only the URL differs. Against the embedded server retryable
writes are turned off (its bookkeeping for them slows every write once thousands ran).

Every client carries one write concern, inherited by every database, collection and bulk
write made through it: ``{w: "majority", j: true}`` unless configured otherwise
(GRIDLINK_MONGO_WRITE_CONCERN, GRIDLINK_MONGO_JOURNAL). A service answers a charger only
after its writes were acknowledged, so what was answered is on disk — on a majority of a
replica set, and in the journal, which survives a crash (docs/operations.md, Durability).
No GridLink code chooses another write concern for a single write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, PyMongoError
from pymongo.write_concern import WriteConcern

from services.db_stats import CommandStats
from services.errors import StoreUnavailable
from services.metrics import STORE_ERRORS
from services.settings import Settings

log = logging.getLogger("gridlink.store")

T = TypeVar("T")
IndexSpec = dict[str, list[IndexModel]]  # collection name -> its indexes


#: The default: acknowledged by a majority of the replica set, each from its journal.
DURABLE = WriteConcern(w="majority", j=True)


def write_concern(settings: Settings) -> WriteConcern:
    """The write concern GRIDLINK_MONGO_WRITE_CONCERN and GRIDLINK_MONGO_JOURNAL say."""
    w = settings.mongo_write_concern
    return WriteConcern(w=int(w) if w.isdigit() else w, j=settings.mongo_journal)


def client_for(url: str, *, app_name: str, concern: WriteConcern = DURABLE,
               **options: Any) -> AsyncMongoClient[dict[str, Any]]:
    """An AsyncMongoClient with GridLink's timeouts and write concern ``concern`` (it
    overrides a ``w`` or ``journal`` in ``url``), and any other pymongo ``options``; no I/O
    until first use."""
    return AsyncMongoClient(
        url,
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=3000,
        connectTimeoutMS=3000,
        socketTimeoutMS=10000,
        w=concern.document.get("w", 1),
        journal=bool(concern.document.get("j", False)),
        **options,
    )


class Store:
    """One database of one client (its lifecycle: ping, wait, indexes, close)."""

    def __init__(self, url: str, database: str, *, component: str,
                 concern: WriteConcern = DURABLE, command_stats: bool = False) -> None:
        listeners = [CommandStats(component)] if command_stats else []
        self.client: Any = client_for(url, app_name=f"gridlink-{component}", concern=concern,
                                      event_listeners=listeners)
        self.db: AsyncDatabase[dict[str, Any]] = self.client[database]
        self.component = component

    @classmethod
    def over(cls, client: Any, database: str, *, component: str) -> Store:
        """A store over a client made elsewhere (:func:`services.memory.memory_store`)."""
        store = cls.__new__(cls)
        store.client = client
        store.db = client[database]
        store.component = component
        return store

    async def ping(self) -> bool:
        try:
            await self.client.admin.command("ping")
            return True
        except PyMongoError:
            return False

    async def wait_until_up(self, *, attempts: int | None = None) -> None:
        delay, tried = 0.5, 0
        while not await self.ping():
            tried += 1
            if attempts is not None and tried >= attempts:
                raise StoreUnavailable("cannot reach MongoDB")
            log.warning("mongodb unreachable, retrying")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)

    async def ensure_indexes(self, spec: IndexSpec) -> None:
        for collection, indexes in spec.items():
            if indexes:
                await self.db[collection].create_indexes(indexes)

    async def close(self) -> None:
        await self.client.close()


async def guarded(component: str, operation: Callable[[], Awaitable[T]]) -> T:
    """Run a store operation; a lost connection becomes StoreUnavailable."""
    try:
        return await operation()
    except ConnectionFailure as exc:
        STORE_ERRORS.labels(component=component).inc()
        raise StoreUnavailable(f"mongodb: {exc}") from None


def merge_indexes(*specs: IndexSpec) -> IndexSpec:
    merged: IndexSpec = {}
    for spec in specs:
        for collection, indexes in spec.items():
            merged.setdefault(collection, []).extend(indexes)
    return merged
