"""The database's own ceiling: operations per second one client gets, with no CSMS in between.

Both GridLink and the baseline need at least one database write per charger message, so this
bounds what either can reach on the machine.  Measured with pymongo's AsyncMongoClient
(as both systems use it): ``find_one`` by ``_id`` and upserts by ``_id``, 1 and 16 in flight.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pymongo import AsyncMongoClient

from bench.systems import Database


async def _measure(url: str, operations: int) -> dict[str, float]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    collection = client["bench_ceiling"]["documents"]
    await collection.update_one({"_id": "probe"}, {"$set": {"v": 0}}, upsert=True)
    rates: dict[str, float] = {}
    try:
        for in_flight in (1, 16):
            per_worker = operations // in_flight

            async def read(worker: int, count: int = per_worker) -> None:
                for _ in range(count):
                    await collection.find_one({"_id": "probe"})

            async def write(worker: int, count: int = per_worker) -> None:
                for n in range(count):
                    await collection.update_one(
                        {"_id": f"{worker}-{n}"}, {"$set": {"v": n}}, upsert=True
                    )

            for name, work in (("find_one", read), ("upsert", write)):
                started = time.perf_counter()
                await asyncio.gather(*(work(w) for w in range(in_flight)))
                rates[f"{name}, {in_flight} in flight"] = (
                    per_worker * in_flight / (time.perf_counter() - started)
                )
    finally:
        await client.drop_database("bench_ceiling")
        await client.close()
    return rates


def measure(db: Database, operations: int = 800) -> dict[str, float]:
    """Operations per second, by kind and concurrency."""
    return asyncio.run(_measure(db.url, operations))
