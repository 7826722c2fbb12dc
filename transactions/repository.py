"""The MongoDB documents the transactions service owns, with idempotent writes.

- ``transactions``: one per started transaction, ``_id`` = transactionId, ``start_key`` (the
  natural key station|connector|idTag|timestamp|meterStart, unique) makes a retransmitted
  StartTransaction find the same document; ``stop`` is set once (filter ``stop: null``).
- ``orphan_stops``: StopTransaction for an unknown transactionId, kept for review.
- ``meter_values``: one document per sampled value, ``_id`` derived from what identifies the
  sample, so a redelivered or resent MeterValues inserts nothing new.
- ``connector_status``: the latest status per connector; an older timestamp never wins.
  (Both names, and the reads other components make, are in :mod:`services.transaction_records`.)
- ``status_events``: every StatusNotification, for history.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services import counters, id_tags
from services.ocpp16 import iso, parse_time
from services.read_batcher import ReadBatcher
from services.store import IndexSpec, merge_indexes
from services.transaction_records import CONNECTOR_STATUS, TRANSACTIONS, connector_key
from services.write_batcher import WriteBatcher, raise_unexpected
from transactions.transaction_ids import TransactionIds

ORPHAN_STOPS = "orphan_stops"
METER_VALUES = "meter_values"
STATUS_EVENTS = "status_events"

INDEXES: IndexSpec = merge_indexes(
    id_tags.INDEXES,
    {
        TRANSACTIONS: [
            IndexModel("start_key", unique=True),
            IndexModel([("station", ASCENDING), ("start_time", DESCENDING)]),
            IndexModel([("id_tag", ASCENDING), ("active", ASCENDING)]),
        ],
        METER_VALUES: [
            IndexModel([("transaction_id", ASCENDING), ("timestamp", ASCENDING)]),
            IndexModel([("station", ASCENDING), ("timestamp", DESCENDING)]),
        ],
        STATUS_EVENTS: [IndexModel([("station", ASCENDING), ("timestamp", DESCENDING)])],
        ORPHAN_STOPS: [IndexModel("station")],
        counters.COLLECTION: [],
    },
)


def start_key(station: str, connector: int, id_tag: str, timestamp: datetime,
              meter_start: int) -> str:
    return f"{station}|{connector}|{id_tag}|{iso(timestamp)}|{meter_start}"


def _digest(*parts: object) -> str:
    return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()


def sample_documents(station: str, connector: int, transaction_id: int | None,
                     meter_values: Iterable[dict[str, Any]], received_at: datetime
                     ) -> list[dict[str, Any]]:
    """One document per sampled value (snake_case input as the ocpp library converts it)."""
    documents = []
    for meter_value in meter_values:
        timestamp = parse_time(meter_value["timestamp"])
        for sample in meter_value.get("sampled_value", []):
            measurand = sample.get("measurand", "Energy.Active.Import.Register")
            key = (station, connector, transaction_id, iso(timestamp), measurand,
                   sample.get("phase"), sample.get("location"), sample.get("context"))
            raw = sample["value"]
            document: dict[str, Any] = {
                "_id": _digest(*key),
                "station": station,
                "connector": connector,
                "transaction_id": transaction_id,
                "timestamp": timestamp,
                "measurand": measurand,
                "value": raw,
                "received_at": received_at,
            }
            for field in ("phase", "location", "context", "unit", "format"):
                if sample.get(field) is not None:
                    document[field] = sample[field]
            try:
                document["value_num"] = float(raw)
            except ValueError:
                pass  # SignedData or garbage: kept as text, never blocks the .conf
            documents.append(document)
    return documents


class TransactionRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], ids: TransactionIds,
                 writes: WriteBatcher | None = None) -> None:
        self.db = db
        self.ids = ids
        # meter values and statuses, coalesced across concurrent messages
        self.writes = writes or WriteBatcher(db, component="transactions")
        self.reads = ReadBatcher(db)

    async def id_tag_info(self, tag: str, now: datetime) -> dict[str, Any]:
        return await id_tags.id_tag_info(self.db, tag, now, self.reads)

    async def find_start(self, key: str) -> dict[str, Any] | None:
        return await self.db[TRANSACTIONS].find_one({"start_key": key})

    async def has_active_authorized(self, id_tag: str) -> bool:
        found = await self.db[TRANSACTIONS].find_one(
            {"id_tag": id_tag, "active": True, "id_tag_info.status": "Accepted"},
            projection={"_id": 1},
        )
        return found is not None

    async def insert_start(self, document: dict[str, Any]) -> dict[str, Any]:
        """Insert a new transaction; if its start_key exists (a race), return that one."""
        try:
            await self.db[TRANSACTIONS].insert_one(document)
            return document
        except DuplicateKeyError:
            existing = await self.find_start(document["start_key"])
            if existing is None:  # the duplicate was on _id: never reuse an id
                raise
            return existing

    async def find_transaction(self, transaction_id: int) -> dict[str, Any] | None:
        return await self.db[TRANSACTIONS].find_one({"_id": transaction_id})

    async def record_stop(self, transaction_id: int, stop: dict[str, Any], energy_wh: int
                          ) -> bool:
        """Set the stop once; False when it was already stopped (a repeated stop)."""
        result = await self.db[TRANSACTIONS].update_one(
            {"_id": transaction_id, "stop": None},
            {"$set": {"stop": stop, "active": False, "energy_wh": energy_wh,
                      "stop_time": stop["time"]}},
        )
        return result.modified_count == 1

    async def record_orphan_stop(self, station: str, stop: dict[str, Any]) -> None:
        key = _digest(station, stop["transaction_id"], iso(stop["time"]), stop["meter_stop"])
        await self.db[ORPHAN_STOPS].update_one(
            {"_id": key},
            {"$setOnInsert": {"station": station, **stop}},
            upsert=True,
        )

    async def insert_samples(self, documents: list[dict[str, Any]]) -> int:
        """Insert samples, ignoring ones already stored; returns how many were new."""
        results = raise_unexpected(await self.writes.write(
            METER_VALUES, [InsertOne(document) for document in documents]))
        return sum(1 for error in results if error is None)

    async def record_status(self, station: str, connector: int, status: dict[str, Any]) -> bool:
        """Keep the newest status per connector; False when an older one arrived late.

        Both writes go through the batcher, concurrently: the history entry is an
        idempotent upsert, the latest status is conditional on its timestamp."""
        timestamp: datetime = status["timestamp"]
        history = UpdateOne(
            {"_id": _digest(station, connector, iso(timestamp), status["status"],
                            status["error_code"])},
            {"$setOnInsert": {"station": station, "connector": connector, **status}},
            upsert=True)
        latest = UpdateOne(
            {"_id": connector_key(station, connector), "timestamp": {"$lte": timestamp}},
            {"$set": {"station": station, "connector": connector, **status}},
            upsert=True)
        history_result, latest_result = await asyncio.gather(
            self.writes.write(STATUS_EVENTS, [history]),
            self.writes.write(CONNECTOR_STATUS, [latest]))
        raise_unexpected(history_result)
        # A duplicate key on the latest status: a newer one is stored (the upsert collided).
        return raise_unexpected(latest_result)[0] is None

    async def count_active(self) -> int:
        return await self.db[TRANSACTIONS].count_documents({"active": True})
