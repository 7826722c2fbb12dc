"""The in-memory bus and store behave like RabbitMQ and MongoDB where GridLink relies on it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.errors import Reject, Unroutable
from services.memory import MemoryBus, MemoryMessage, memory_store
from services.topology import DELIVERY_LIMIT, ServiceQueue, Topology

T = Topology("m", quorum=False)


async def queue(bus: MemoryBus, name: str, *bindings: tuple[str, str]) -> Any:
    return await bus.declare_queue(ServiceQueue(name, tuple(bindings)))


async def test_topic_direct_fanout_and_default_exchange_route_like_rabbitmq() -> None:
    bus = MemoryBus(T)
    work = await queue(bus, "work", (T.calls, "call.*"), (T.events, "transaction.#"))
    station = await queue(bus, "gw", (T.stations, "CP-1"))
    dead = await queue(bus, "dead", (T.dead_letter, "ignored"))
    await bus.publish(T.calls, "call.Heartbeat", b"1")
    await bus.publish(T.calls, "outcome.Reset", b"2")  # matches nothing
    await bus.publish(T.events, "transaction.started", b"3")
    await bus.publish(T.stations, "CP-1", b"4")
    await bus.publish(T.stations, "CP-2", b"5")  # direct: no such key
    await bus.publish(T.dead_letter, "anything", b"6")  # fanout ignores the key
    await bus.publish("", "gw", b"7")  # the default exchange: a queue by name
    assert [m.body for m in work.messages] == [b"1", b"3"]
    assert [m.body for m in station.messages] == [b"4", b"7"]
    assert [m.body for m in dead.messages] == [b"6"]
    with pytest.raises(Unroutable):
        await bus.publish(T.stations, "CP-2", b"8", mandatory=True)


async def test_retired_bindings_are_removed() -> None:
    bus = MemoryBus(T)
    await queue(bus, "q", (T.calls, "call.Authorize"))
    await bus.declare_queue(ServiceQueue("q", ((T.calls, "call.Boot"),),
                                         retired=((T.calls, "call.Authorize"),)))
    assert bus.bound_keys("q") == {(T.calls, "call.Boot")}


async def test_failures_requeue_as_redelivered_until_the_delivery_limit() -> None:
    bus = MemoryBus(T)
    q = await queue(bus, "q", (T.calls, "call.#"))
    seen: list[tuple[bytes, bool]] = []

    async def flaky(message: MemoryMessage) -> None:
        seen.append((message.body, message.redelivered))
        raise RuntimeError("boom")

    await bus.consume(q, flaky)
    await bus.publish(T.calls, "call.X", b"x")
    await bus.settled()
    assert len(seen) == DELIVERY_LIMIT
    assert seen[0] == (b"x", False) and all(redelivered for _, redelivered in seen[1:])
    assert [m.body for m in bus.dead_letters] == [b"x"]


async def test_a_rejected_message_is_dead_lettered_at_once_and_acked_ones_are_gone() -> None:
    bus = MemoryBus(T)
    q = await queue(bus, "q", (T.calls, "call.#"))

    async def handler(message: MemoryMessage) -> None:
        if message.body == b"bad":
            raise Reject("malformed")

    await bus.consume(q, handler)
    await bus.publish(T.calls, "call.A", b"bad")
    await bus.publish(T.calls, "call.B", b"good")
    await bus.settled()
    assert [m.body for m in bus.dead_letters] == [b"bad"]
    assert bus.waiting("q") == []


async def test_prefetch_bounds_the_messages_handled_at_once_and_cancel_stops() -> None:
    bus = MemoryBus(T, prefetch=3)
    q = await queue(bus, "q", (T.calls, "call.#"))
    running, most = 0, 0
    release = asyncio.Event()

    async def slow(message: MemoryMessage) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1

    tag = await bus.consume(q, slow)
    for n in range(10):
        await bus.publish(T.calls, "call.A", str(n).encode())
    await asyncio.sleep(0)
    assert most == 3 and len(bus.waiting("q")) == 7
    release.set()
    await bus.settled()
    assert most == 3
    await bus.cancel(q, tag)
    await bus.publish(T.calls, "call.A", b"after")
    await bus.settled()
    assert [m.body for m in bus.waiting("q")] == [b"after"]


async def test_memory_store_speaks_pymongo_async() -> None:
    store = memory_store()
    db = store.db
    assert await store.ping()
    await db["t"].insert_one({"_id": 1, "n": 1})
    with pytest.raises(DuplicateKeyError):
        await db["t"].insert_one({"_id": 1})
    assert [d async for d in db["t"].find({"n": {"$gte": 1}})] == [{"_id": 1, "n": 1}]
    assert await db["t"].find({}).to_list() == [{"_id": 1, "n": 1}]
    with pytest.raises(BulkWriteError) as failed:
        await db["t"].bulk_write([InsertOne({"_id": 1}), InsertOne({"_id": 2}),
                                  UpdateOne({"_id": 1}, {"$inc": {"n": 1}})], ordered=False)
    assert [e["index"] for e in failed.value.details["writeErrors"]] == [0]
    assert await db["t"].find_one({"_id": 1}) == {"_id": 1, "n": 2}
    assert await db["t"].count_documents({}) == 2
    await store.close()
