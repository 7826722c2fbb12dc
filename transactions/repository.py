"""The MongoDB documents the transactions service owns, with idempotent writes.

- ``transactions``: one per started transaction, ``_id`` = transactionId. ``start_key`` (the
  natural key of :func:`transactions.natural_keys.start_key`, unique) makes a retransmitted
  StartTransaction find the same document, and a match is checked field by field (station
  first). ``settled`` is False until the start's outcome is decided (superseding, the tag's
  slot, ``id_tag_info``): a redelivery finishes what a crashed delivery began. ``active``
  is True until its stop, or until a newer start on its connector supersedes it:
  ``superseded`` = ``{by, at, received_at, energy_wh}`` (the newer transaction, its start
  time, when GridLink saw it, the energy as far as its meter values tell). ``stop`` is set
  once (filter ``stop: null``), also after a supersede: the real stop wins. ``energy_wh`` is
  meterStop - meterStart (None rather than negative), or the estimate of a superseded one.
  ``flags``: what to review (:mod:`transactions.checks`). Its state for operators is
  :func:`services.transaction_records.state_of`.
- ``tag_sessions``: the slots of tags in Accepted transactions (:mod:`transactions.tag_sessions`).
- ``orphan_stops``: StopTransaction for an unknown transactionId (or another station's),
  kept for review.
- ``meter_values``: one document per sampled value (:mod:`transactions.meter_samples`), so a
  redelivered or resent MeterValues inserts nothing new; ``flags`` when a check applies.
- ``connector_status``: the latest status per connector; an older timestamp never wins.
  (Both names, and the reads other components make, are in :mod:`services.transaction_records`.)
- ``status_events``: every StatusNotification, for history.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from services import counters, id_tags
from services.read_batcher import ReadBatcher
from services.store import IndexSpec, merge_indexes
from services.transaction_records import (
    CONNECTOR_STATUS,
    METER_VALUES,
    STATUS_EVENTS,
    TRANSACTIONS,
    connector_key,
)
from services.write_batcher import WriteBatcher, raise_unexpected
from transactions import checks, tag_sessions
from transactions.natural_keys import digest, legacy_start_key, same_start, start_key
from transactions.transaction_ids import TransactionIds

ORPHAN_STOPS = "orphan_stops"
STATION_CACHE_SIZE = 10_000  # transactionId -> station, for MeterValues (never changes)

INDEXES: IndexSpec = merge_indexes(
    id_tags.INDEXES,
    tag_sessions.INDEXES,
    {
        TRANSACTIONS: [
            IndexModel("start_key", unique=True),
            IndexModel([("station", ASCENDING), ("start_time", DESCENDING)]),
            IndexModel([("station", ASCENDING), ("connector", ASCENDING),
                        ("active", ASCENDING)]),
            IndexModel([("id_tag", ASCENDING), ("active", ASCENDING)]),
            IndexModel("superseded.by", sparse=True),
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

Document = dict[str, Any]


def to_millis(moment: datetime) -> datetime:
    """A time as MongoDB stores it (milliseconds), so comparisons agree with stored ones."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class TransactionRepository:
    def __init__(self, db: AsyncDatabase[Document], ids: TransactionIds,
                 writes: WriteBatcher | None = None) -> None:
        self.db = db
        self.ids = ids
        # meter values and statuses, coalesced across concurrent messages
        self.writes = writes or WriteBatcher(db, component="transactions")
        self.reads = ReadBatcher(db, component="transactions")
        self.sessions = tag_sessions.TagSessions(db, self.writes)
        self._stations: OrderedDict[int, str] = OrderedDict()

    # --- id tags ------------------------------------------------------------------------

    async def find_tag(self, tag: str) -> Document | None:
        return await id_tags.find_tag(self.db, tag, self.reads)

    async def id_tag_info(self, tag: str, now: datetime) -> dict[str, Any]:
        return id_tags.info_from_document(await self.find_tag(tag), now)

    # --- starts -------------------------------------------------------------------------

    async def find_start(self, station: str, connector: int, id_tag: str,
                         timestamp: datetime, meter_start: int) -> Document | None:
        """The transaction this StartTransaction started, if it was seen before (both keys
        in one lookup, shared with concurrent starts)."""
        keys = [start_key(station, connector, id_tag, timestamp, meter_start),
                legacy_start_key(station, connector, id_tag, timestamp, meter_start)]
        for candidates in await asyncio.gather(
                *(self.reads.find(TRANSACTIONS, "start_key", key) for key in keys)):
            for found in candidates:
                if same_start(found, station, connector, id_tag, timestamp, meter_start):
                    return found
        return None

    async def insert_start(self, document: Document) -> tuple[Document, bool]:
        """Insert a new transaction; if its start_key exists (a race), that one. True when
        this call inserted it. The insert goes in one bulk with concurrent starts' (each
        acknowledged as durably as a lone insert)."""
        result = await self.writes.write(TRANSACTIONS, [InsertOne(document)])
        if raise_unexpected(result)[0] is None:
            return document, True
        existing = await self.db[TRANSACTIONS].find_one({"start_key": document["start_key"]})
        if existing is None or existing["station"] != document["station"]:
            raise_unexpected(result, allowed=frozenset())  # the duplicate was on _id
        assert existing is not None
        return existing, False

    async def others_on_connector(self, document: Document) -> list[Document]:
        """The other active transactions on ``document``'s connector. Read after
        ``document`` was stored (a lookup shared with concurrent starts only ever goes
        after each of them asked), so of two concurrent starts on a connector at least one
        sees the other."""
        active = await self.reads.find(TRANSACTIONS, "station", document["station"],
                                       where={"active": True})
        return [found for found in active if found["connector"] == document["connector"]
                and found["_id"] != document["_id"]]

    async def supersede(self, old: Document, by: Document, now: datetime) -> bool:
        """Close ``old``, still active, because ``by`` started on its connector; False when
        it was closed already (stopped, or superseded by a concurrent delivery)."""
        energy = None
        reading = await self.last_register_reading(old["_id"], old["station"])
        if reading is not None:
            energy = checks.energy_wh(int(old["meter_start"]), reading)
        superseded = {"by": by["_id"], "at": by["start_time"], "received_at": now,
                      "energy_wh": energy}
        result = await self.db[TRANSACTIONS].update_one(
            {"_id": old["_id"], "active": True, "stop": None},
            {"$set": {"active": False, "superseded": superseded, "energy_wh": energy},
             "$addToSet": {"flags": checks.SUPERSEDED}})
        if result.modified_count == 1:
            old.update(active=False, superseded=superseded, energy_wh=energy)
            return True
        return False

    async def settle(self, document: Document, info: dict[str, Any]) -> Document:
        """Store the start's decided idTagInfo once; the transaction as stored after.

        The common case is one conditional update (still active, not settled yet). If it
        matches nothing, the transaction was superseded meanwhile (then it is settled
        anyway) or a concurrent delivery of the same start settled it first (its outcome
        stays): the stored document says which."""
        settled = {"id_tag_info": info, "settled": True}
        # in one bulk with concurrent messages' writes of the collection (inserts of
        # starts, other settles, stops); None: the bulk cannot say, the read below does
        if await self.writes.update(TRANSACTIONS, UpdateOne(
                {"_id": document["_id"], "settled": False, "active": True},
                {"$set": settled})) is True:
            return {**document, **settled, "active": True}
        await self.db[TRANSACTIONS].update_one(
            {"_id": document["_id"], "settled": False}, {"$set": settled})
        found = await self.find_transaction(document["_id"])
        assert found is not None, "a transaction is never deleted"
        return found

    async def holding_starts(self, keys: list[str]) -> set[str]:
        """Of these start keys, those whose transaction may hold a slot: active, and
        Accepted or not settled yet."""
        cursor = self.db[TRANSACTIONS].find(
            {"start_key": {"$in": keys}, "active": True},
            {"start_key": 1, "settled": 1, "id_tag_info.status": 1})
        return {found["start_key"] async for found in cursor
                if found.get("settled") is False
                or found["id_tag_info"]["status"] == "Accepted"}

    async def superseded_by(self, transaction_id: int) -> list[Document]:
        return await self.db[TRANSACTIONS].find({"superseded.by": transaction_id}).to_list()

    async def last_register_reading(self, transaction_id: int, station: str) -> float | None:
        """The transaction's latest energy register reading in Wh (unflagged, no phase, at
        the outlet), if its meter values had one."""
        cursor = self.db[METER_VALUES].find(
            {"transaction_id": transaction_id, "station": station,
             "measurand": checks.ENERGY_REGISTER, "value_num": {"$exists": True},
             "flags": {"$exists": False}, "phase": {"$exists": False},
             "location": {"$in": [None, "Outlet"]}},
            sort=[("timestamp", DESCENDING)])
        async for sample in cursor:
            reading = checks.register_wh(sample)
            if reading is not None:
                return reading
        return None

    # --- stops --------------------------------------------------------------------------

    async def find_transaction(self, transaction_id: int) -> Document | None:
        return await self.reads.find_one(TRANSACTIONS, "_id", transaction_id)

    async def transaction_station(self, transaction_id: int) -> str | None:
        """The station a transaction belongs to (None: unknown), remembered once found."""
        station = self._stations.get(transaction_id)
        if station is not None:
            self._stations.move_to_end(transaction_id)
            return station
        found = await self.reads.find_one(TRANSACTIONS, "_id", transaction_id,
                                          projection={"station": 1})
        if found is None:
            return None
        station = str(found["station"])
        self.remember_station(transaction_id, station)
        return station

    def remember_station(self, transaction_id: int, station: str) -> None:
        """Note a transaction's station (it never changes): its StartTransaction just
        stored it, so its MeterValues need not read it back."""
        self._stations[transaction_id] = station
        self._stations.move_to_end(transaction_id)
        if len(self._stations) > STATION_CACHE_SIZE:
            self._stations.popitem(last=False)

    async def record_stop(self, transaction_id: int, stop: dict[str, Any],
                          energy_wh: int | None, flags: list[str]) -> bool:
        """Set the stop once; False when it was already stopped (a repeated stop)."""
        update: dict[str, Any] = {"$set": {"stop": stop, "active": False,
                                           "energy_wh": energy_wh, "stop_time": stop["time"]}}
        if flags:
            update["$addToSet"] = {"flags": {"$each": flags}}
        # in one bulk with concurrent messages' writes of the collection
        matched = await self.writes.update(TRANSACTIONS, UpdateOne(
            {"_id": transaction_id, "stop": None}, update))
        if matched is not None:
            return matched
        # Some updates of the bulk matched, some not: whether this one did, the stored stop
        # says (each stop is received at its own moment; a redelivery of the same message
        # in such a bulk counts as that stop again: its flags may be counted twice, nothing
        # is stored twice).
        found = await self.db[TRANSACTIONS].find_one({"_id": transaction_id}, {"stop": 1})
        stored = (found or {}).get("stop") or {}
        return (stored.get("received_at") == to_millis(stop["received_at"])
                and stored.get("meter_stop") == stop["meter_stop"])

    async def record_orphan_stop(self, station: str, stop: dict[str, Any]) -> None:
        key = digest(station, stop["transaction_id"], stop["time"], stop["meter_stop"])
        await self.db[ORPHAN_STOPS].update_one(
            {"_id": key},
            {"$setOnInsert": {"station": station, **stop}},
            upsert=True,
        )

    # --- meter values and statuses ------------------------------------------------------

    async def insert_samples(self, documents: list[Document]) -> int:
        """Insert samples, ignoring ones already stored; returns how many were new."""
        return len(await self.insert_new_samples(documents))

    async def insert_new_samples(self, documents: list[Document]) -> list[Document]:
        """Insert samples, ignoring ones already stored; the ones that were new."""
        results = raise_unexpected(await self.writes.write(
            METER_VALUES, [InsertOne(document) for document in documents]))
        return [document for document, error in zip(documents, results, strict=True)
                if error is None]

    async def record_status(self, station: str, connector: int, status: dict[str, Any]) -> bool:
        """Keep the newest status per connector; False when an older one arrived late.

        Both writes go through the batcher, concurrently: the history entry is an
        idempotent upsert, the latest status is conditional on its timestamp."""
        timestamp: datetime = status["timestamp"]
        history = UpdateOne(
            {"_id": digest(station, connector, timestamp, status["status"],
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
