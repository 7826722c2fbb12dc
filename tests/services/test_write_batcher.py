"""The write batcher against the real MongoDB wire protocol: coalescing, per-caller results,
whole-bulk failures, and the transactions repository writing through it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, InsertOne, UpdateOne, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, InvalidOperation

from services.store import client_for
from services.write_batcher import DUPLICATE_KEY, WriteBatcher, raise_unexpected
from transactions.repository import CONNECTOR_STATUS, METER_VALUES, TransactionRepository
from transactions.transaction_ids import TransactionIds


async def test_concurrent_writes_share_bulks_and_all_land(
        db: AsyncDatabase[dict[str, Any]]) -> None:
    batcher = WriteBatcher(db)
    results = await asyncio.gather(*(
        batcher.write("samples", [InsertOne({"_id": n, "n": n})]) for n in range(200)))
    assert results == [[None]] * 200
    assert await db["samples"].count_documents({}) == 200
    assert batcher.ops == 200
    assert batcher.bulks < 200  # writes that arrived during a bulk went in the next one


async def test_a_lone_write_goes_at_once(db: AsyncDatabase[dict[str, Any]]) -> None:
    batcher = WriteBatcher(db)
    assert await batcher.write("samples", [InsertOne({"_id": "one"})]) == [None]
    assert batcher.bulks == 1
    assert await batcher.write("samples", []) == []
    assert batcher.bulks == 1


async def test_each_caller_gets_only_its_own_errors(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db["samples"].insert_one({"_id": "taken"})
    batcher = WriteBatcher(db)
    mine, theirs = await asyncio.gather(
        batcher.write("samples", [InsertOne({"_id": "a"}), InsertOne({"_id": "taken"})]),
        batcher.write("samples", [InsertOne({"_id": "b"})]))
    assert mine[0] is None
    assert mine[1] is not None and mine[1]["code"] == DUPLICATE_KEY
    assert theirs == [None]
    assert {d["_id"] async for d in db["samples"].find()} == {"a", "b", "taken"}
    assert raise_unexpected(mine) == mine  # a duplicate is an idempotent repeat
    with pytest.raises(BulkWriteError):
        raise_unexpected(mine, allowed=frozenset())


async def test_max_ops_splits_bulks(db: AsyncDatabase[dict[str, Any]]) -> None:
    batcher = WriteBatcher(db, max_ops=10)
    await asyncio.gather(*(
        batcher.write("samples", [InsertOne({"n": n}), InsertOne({"n": -n})])
        for n in range(50)))
    assert await db["samples"].count_documents({}) == 100
    assert batcher.bulks >= 10


async def test_a_failed_bulk_fails_every_caller_and_the_next_bulk_still_runs(
        mongo_url: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = client_for(mongo_url, app_name="test-closed")
    db = client[f"batcher_{uuid.uuid4().hex[:8]}"]
    await db["samples"].insert_one({"_id": 0})
    await client.close()  # every operation now fails as a whole
    batcher = WriteBatcher(db)
    outcomes = await asyncio.gather(*(
        batcher.write("samples", [InsertOne({"_id": n})]) for n in range(1, 5)),
        return_exceptions=True)
    assert all(isinstance(o, InvalidOperation) for o in outcomes)
    assert batcher.bulks >= 1


async def test_repository_statuses_keep_the_newest_through_the_batcher(
        db: AsyncDatabase[dict[str, Any]]) -> None:
    repo = TransactionRepository(db, TransactionIds(db, block=10))
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)

    def status(name: str, at: datetime) -> dict[str, Any]:
        return {"status": name, "error_code": "NoError", "info": None, "vendor_id": None,
                "vendor_error_code": None, "timestamp": at, "received_at": at}

    newer, older = await asyncio.gather(
        repo.record_status("CP1", 1, status("Charging", now)),
        repo.record_status("CP1", 1, status("Preparing", now - timedelta(seconds=5))))
    assert newer is True
    stored = await db[CONNECTOR_STATUS].find_one({"_id": "CP1/1"})
    assert stored is not None and stored["status"] == "Charging"
    assert older is False  # the late one did not win
    assert await db["status_events"].count_documents({"station": "CP1"}) == 2
    again = await repo.record_status("CP1", 1, status("Charging", now))
    assert again is True  # a repeated notification is idempotent
    assert await db["status_events"].count_documents({"station": "CP1"}) == 2


async def test_repository_samples_are_idempotent_through_the_batcher(
        db: AsyncDatabase[dict[str, Any]]) -> None:
    repo = TransactionRepository(db, TransactionIds(db, block=10))
    docs = [{"_id": f"s{n}", "station": "CP1", "value": str(n)} for n in range(5)]
    first, repeat = await asyncio.gather(repo.insert_samples(docs),
                                         repo.insert_samples(docs))
    assert sorted([first, repeat]) == [0, 5]
    assert await repo.insert_samples(docs) == 0
    assert await db[METER_VALUES].count_documents({}) == 5
    bad = await repo.writes.write(METER_VALUES, [UpdateOne({"_id": "s1"}, {"$bad": 1})])
    assert bad[0] is not None and bad[0]["code"] != DUPLICATE_KEY
    with pytest.raises(BulkWriteError):
        raise_unexpected(bad)  # not a repeat: the caller's call is answered InternalError


async def test_concurrent_lookups_share_one_query_and_each_gets_its_own(
        db: AsyncDatabase[dict[str, Any]]) -> None:
    from services.read_batcher import ReadBatcher

    await db["cmds"].insert_many(
        [{"_id": n, "station": f"CP{n % 5}", "status": "queued" if n % 2 else "done",
          "n": n} for n in range(40)])
    reads = ReadBatcher(db)
    stations = [f"CP{k}" for k in range(7)]  # CP5 and CP6 have nothing
    found = await asyncio.gather(*(
        reads.find("cmds", "station", s, where={"status": "queued"}) for s in stations * 3))
    for station, documents in zip(stations * 3, found, strict=True):
        expected = {n for n in range(40) if f"CP{n % 5}" == station and n % 2}
        assert {d["_id"] for d in documents} == expected
    assert reads.queries < len(found)
    one = await reads.find_one("cmds", "_id", 3, projection={"n": 1})
    assert one == {"_id": 3, "n": 3}
    assert await reads.find_one("cmds", "_id", 999) is None
    shown = await reads.find("cmds", "station", "CP1", projection={"n": 1})
    assert shown and all(set(d) == {"_id", "n", "station"} for d in shown)


class _WriteCommands(monitoring.CommandListener):
    """The write commands a client sent, as the server got them."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("insert", "update", "delete", "findAndModify"):
            self.sent.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_every_write_and_every_bulk_asks_the_durable_write_concern(
        mongo_url: str) -> None:
    """Answered means durable: the batch's one bulk write, as every single write, is
    acknowledged only from the journal of a majority (services/store.py's default)."""
    listener = _WriteCommands()
    client: AsyncMongoClient[dict[str, Any]] = client_for(
        mongo_url, app_name="test-wc", event_listeners=[listener])
    try:
        db = client[f"wc_{uuid.uuid4().hex[:8]}"]
        batcher = WriteBatcher(db)
        await asyncio.gather(*(batcher.write("samples", [
            InsertOne({"_id": n}), UpdateOne({"_id": f"u{n}"}, {"$set": {"n": n}}, upsert=True)])
            for n in range(20)))
        await db["one"].find_one_and_update({"_id": 1}, {"$inc": {"n": 1}}, upsert=True)
        assert len(listener.sent) >= 3
        assert all(dict(c["writeConcern"]) == {"w": "majority", "j": True}
                   for c in listener.sent), [c.get("writeConcern") for c in listener.sent]
    finally:
        await client.close()


async def test_a_bulk_holding_a_value_that_cannot_be_stored_costs_only_its_caller(
        db: AsyncDatabase[dict[str, Any]]) -> None:
    batcher = WriteBatcher(db)
    bad = [InsertOne({"_id": "bad", "transaction_id": 2**64})]  # beyond BSON's int64
    first = batcher.write("samples", [InsertOne({"_id": "first"})])  # goes at once, alone
    outcomes = await asyncio.gather(first, *(
        batcher.write("samples", bad if n == 7 else [InsertOne({"_id": n}), InsertOne(
            {"_id": -n - 1})]) for n in range(20)), return_exceptions=True)
    assert isinstance(outcomes[8], OverflowError)
    assert all(o in ([None], [None, None]) for k, o in enumerate(outcomes) if k != 8)
    assert await db["samples"].count_documents({}) == 1 + 19 * 2
    assert batcher.splits == 1  # the bulk that held it was retried caller by caller


async def test_a_lookup_of_a_value_that_cannot_be_encoded_costs_only_its_caller(
        db: AsyncDatabase[dict[str, Any]]) -> None:
    from services.read_batcher import ReadBatcher

    await db["tx"].insert_many([{"_id": n, "station": f"CP{n}"} for n in range(10)])
    reads = ReadBatcher(db)
    values: list[int] = [*range(10)]
    values.insert(5, 2**64)
    outcomes = await asyncio.gather(*(reads.find_one("tx", "_id", v) for v in values),
                                    return_exceptions=True)
    assert isinstance(outcomes[5], OverflowError)
    good = [o for k, o in enumerate(outcomes) if k != 5]
    assert [d["station"] for d in good if isinstance(d, dict)] == [f"CP{n}" for n in range(10)]
    assert reads.splits >= 1


async def test_conditional_updates_share_a_bulk_and_each_learns_whether_it_matched(
        db: AsyncDatabase[dict[str, Any]]) -> None:
    """A bulk reports matches in all: all matched (True for each), none (False for each),
    or some (None: the caller reads); a lone update is always told."""
    await db["tx"].insert_many([{"_id": n, "stop": None} for n in range(4)])
    batcher = WriteBatcher(db)

    def stop(n: int) -> UpdateOne:
        return UpdateOne({"_id": n, "stop": None}, {"$set": {"stop": "x"}})

    assert await asyncio.gather(*(batcher.update("tx", stop(n)) for n in range(3))) == [
        True, True, True]
    assert await batcher.update("tx", stop(0)) is False  # stopped already
    told = await asyncio.gather(*(batcher.update("tx", stop(n)) for n in (1, 3)))
    assert told in ([False, True], [None, None])  # alone in turn, or in one bulk
    assert await db["tx"].count_documents({"stop": "x"}) == 4
