"""In-process stand-ins for the broker and the database, for unit tests (a swappable
transport, as httpx's ``MockTransport``): :class:`MemoryBus` and :func:`memory_store`.

:class:`MemoryBus` keeps RabbitMQ's semantics that GridLink relies on: topic, direct and
fanout exchanges with AMQP binding keys, the default exchange (routing key = queue name),
``mandatory`` publishes that reach no queue raising :class:`Unroutable`, consumers that
settle each message with :func:`services.bus.acknowledged` (ack, requeue as ``redelivered``,
or dead-letter — also after ``DELIVERY_LIMIT`` deliveries), prefetch as the number of
messages a consumer handles at once, and cancelling a consumer. ``await bus.settled()``
waits until every queue is empty and no message is being handled: a test's "and then".

:func:`memory_store` is a :class:`services.store.Store` over ``mongomock`` (a test
dependency, imported only here) behind pymongo's async API, with ``bulk_write`` done one
operation at a time (mongomock's own does not take current pymongo operations).

Integration tests still run against a real RabbitMQ and the MongoDB wire protocol; these are
for handlers, the command lifecycle and the runtime, in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from services.bus import acknowledged
from services.errors import Unroutable
from services.store import Store
from services.topology import DELIVERY_LIMIT, ServiceQueue, Topology, topic_matches

Handler = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class _BulkResult:
    matched_count: int


@dataclass
class MemoryMessage:
    """A delivered message, with the attributes of aio-pika's that GridLink reads."""

    body: bytes
    exchange: str
    routing_key: str
    reply_to: str | None = None
    correlation_id: str | None = None
    message_id: str | None = None
    persistent: bool = True
    user_id: str | None = None
    redelivered: bool = False
    deliveries: int = 0
    _queue: MemoryQueue | None = field(default=None, repr=False)
    _settled: str | None = field(default=None, repr=False)

    async def ack(self) -> None:
        self._settled = "ack"

    async def nack(self, requeue: bool = True) -> None:
        self._settled = "requeue" if requeue else "dead"

    async def reject(self, requeue: bool = False) -> None:
        self._settled = "requeue" if requeue else "dead"


@dataclass(eq=False)
class MemoryQueue:
    name: str
    durable: bool = True
    messages: deque[MemoryMessage] = field(default_factory=deque)
    consumers: dict[str, tuple[Handler, bool]] = field(default_factory=dict)


class MemoryBus:
    """RabbitMQ in one process (see the module docstring)."""

    def __init__(self, topology: Topology | None = None, *, prefetch: int = 64) -> None:
        self.topology = topology or Topology("memory", quorum=False)
        self.on_lost: list[Callable[[], None]] = []
        self.on_restored: list[Callable[[], None]] = []
        self.prefetch = prefetch
        self.queues: dict[str, MemoryQueue] = {}
        self.bindings: list[tuple[str, str, MemoryQueue]] = []  # exchange, key, queue
        self.published: list[MemoryMessage] = []  # everything published, in order
        self.dead_letters: list[MemoryMessage] = []
        t = self.topology
        self._kinds = {t.calls: "topic", t.events: "topic", t.stations: "direct",
                       t.commands_in: "direct", t.dead_letter: "fanout"}
        self._up = False
        self._tags = 0
        self._busy = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------

    async def connect(self, *, prefetch: int = 64, attempts: int | None = None) -> None:
        self.prefetch = prefetch
        self._up = True

    async def close(self) -> None:
        self._up = False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def connected(self) -> bool:
        return self._up

    # --- topology -------------------------------------------------------------------------

    async def declare_queue(self, spec: ServiceQueue, *, durable: bool = True) -> MemoryQueue:
        queue = self._queue(spec.name, durable)
        for exchange, key in spec.bindings:
            self.bind(queue, exchange, key)
        for exchange, key in spec.retired:
            self.unbind(queue, exchange, key)
        return queue

    async def declare_private_queue(self, name: str) -> MemoryQueue:
        return self._queue(name, durable=False)

    def _queue(self, name: str, durable: bool) -> MemoryQueue:
        return self.queues.setdefault(name, MemoryQueue(name, durable))

    def bind(self, queue: MemoryQueue, exchange: str, key: str) -> None:
        if (exchange, key, queue) not in self.bindings:
            self.bindings.append((exchange, key, queue))

    def unbind(self, queue: MemoryQueue, exchange: str, key: str) -> None:
        with contextlib.suppress(ValueError):
            self.bindings.remove((exchange, key, queue))

    def bound_keys(self, queue_name: str) -> set[tuple[str, str]]:
        """The (exchange, key) bindings of a queue."""
        return {(e, k) for e, k, q in self.bindings if q.name == queue_name}

    # --- publishing -----------------------------------------------------------------------

    async def publish(self, exchange: str, routing_key: str, body: bytes, *,
                      mandatory: bool = False, reply_to: str | None = None,
                      correlation_id: str | None = None, message_id: str | None = None,
                      persistent: bool = True, expiration: float | None = None,
                      user_id: str | None = None) -> None:
        targets = self._route(exchange, routing_key)
        if not targets and mandatory:
            raise Unroutable(f"no queue for routing key {routing_key!r}")
        message = MemoryMessage(body, exchange, routing_key, reply_to, correlation_id,
                                message_id, persistent, user_id)
        self.published.append(message)
        for queue in targets:
            copy = MemoryMessage(body, exchange, routing_key, reply_to, correlation_id,
                                 message_id, persistent, user_id)
            self._enqueue(queue, copy)

    def _route(self, exchange: str, key: str) -> list[MemoryQueue]:
        if exchange == "":
            queue = self.queues.get(key)
            return [queue] if queue is not None else []
        kind = self._kinds.get(exchange, "topic")
        found: list[MemoryQueue] = []
        for bound_exchange, pattern, queue in self.bindings:
            if bound_exchange != exchange or queue in found:
                continue
            if kind == "fanout" or (kind == "direct" and pattern == key) or (
                    kind == "topic" and topic_matches(pattern, key)):
                found.append(queue)
        return found

    def _enqueue(self, queue: MemoryQueue, message: MemoryMessage) -> None:
        message._queue = queue
        queue.messages.append(message)
        self._pump(queue)

    # --- consuming ------------------------------------------------------------------------

    async def consume(self, queue: MemoryQueue, handler: Handler, *, ack: bool = True) -> str:
        self._tags += 1
        tag = f"memory-{self._tags}"
        queue.consumers[tag] = (handler, ack)
        self._pump(queue)
        return tag

    async def cancel(self, queue: MemoryQueue, tag: str) -> None:
        queue.consumers.pop(tag, None)

    def _pump(self, queue: MemoryQueue) -> None:
        while queue.messages and queue.consumers and self._busy < self.prefetch:
            handler, ack = next(iter(queue.consumers.values()))
            message = queue.messages.popleft()
            message.deliveries += 1
            self._busy += 1
            task = asyncio.get_running_loop().create_task(self._deliver(handler, ack, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, handler: Handler, ack: bool, message: MemoryMessage) -> None:
        try:
            if ack:
                await acknowledged(handler, message)
            else:
                await handler(message)
                message._settled = "ack"
        finally:
            self._busy -= 1
            self._settle(message)
            self._changed.set()
            for queue in self.queues.values():
                self._pump(queue)

    def _settle(self, message: MemoryMessage) -> None:
        queue = message._queue
        outcome, message._settled = message._settled, None
        if outcome == "requeue" and queue is not None:
            if message.deliveries >= DELIVERY_LIMIT and queue.durable:
                outcome = "dead"
            else:
                message.redelivered = True
                queue.messages.appendleft(message)
        if outcome == "dead" or outcome is None:
            self.dead_letters.append(message)

    # --- for tests ------------------------------------------------------------------------

    async def settled(self, timeout_s: float = 5.0) -> None:
        """Wait until no message waits in a consumed queue and none is being handled."""
        async with asyncio.timeout(timeout_s):
            while self._busy or any(q.messages and q.consumers for q in self.queues.values()):
                self._changed.clear()
                await self._changed.wait()

    def waiting(self, queue_name: str) -> list[MemoryMessage]:
        """Messages in a queue that nobody consumed yet (a reply queue, a gateway's)."""
        queue = self.queues.get(queue_name)
        return list(queue.messages) if queue is not None else []

    def sent(self, exchange: str, key_pattern: str = "#") -> Iterator[MemoryMessage]:
        """What was published to ``exchange`` with a key matching ``key_pattern``."""
        return (m for m in self.published
                if m.exchange == exchange and topic_matches(key_pattern, m.routing_key))


# --- the database ---------------------------------------------------------------------------


def memory_store(database: str = "gridlink", *, component: str = "test") -> Store:
    """A :class:`Store` over an in-memory mongomock database (fresh for each call)."""
    try:
        import mongomock
    except ImportError:  # pragma: no cover - the test extra installs it
        raise RuntimeError("memory_store needs mongomock: pip install -e '.[test]'") from None
    client = _AsyncClient(mongomock.MongoClient(tz_aware=True))
    return Store.over(client, database, component=component)


class _AsyncClient:
    """pymongo's ``AsyncMongoClient`` surface that GridLink uses, over a sync client."""

    def __init__(self, sync: Any) -> None:
        self._sync = sync
        self.admin = _AsyncDatabase(sync.admin)

    def __getitem__(self, name: str) -> _AsyncDatabase:
        return _AsyncDatabase(self._sync[name])

    async def close(self) -> None:
        self._sync.close()


class _AsyncDatabase:
    def __init__(self, sync: Any) -> None:
        self._sync = sync

    def __getitem__(self, name: str) -> _AsyncCollection:
        return _AsyncCollection(self._sync[name])

    def __getattr__(self, name: str) -> _AsyncCollection:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    async def list_collection_names(self) -> list[str]:
        return list(self._sync.list_collection_names())

    async def command(self, name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if name == "ping":
            return {"ok": 1.0}
        return dict(self._sync.command(name, *args, **kwargs))


class _AsyncCursor:
    def __init__(self, sync: Any) -> None:
        self._sync = sync

    def __aiter__(self) -> _AsyncCursor:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return dict(next(self._sync))
        except StopIteration:
            raise StopAsyncIteration from None

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        documents = [dict(d) for d in self._sync]
        return documents if length is None else documents[:length]


_PASSED_THROUGH = (
    "find_one", "insert_one", "insert_many", "update_one", "update_many", "replace_one",
    "delete_one", "delete_many", "find_one_and_update", "find_one_and_replace",
    "find_one_and_delete", "count_documents", "create_indexes", "create_index", "drop_index",
    "index_information", "drop", "distinct",
)


class _AsyncCollection:
    def __init__(self, sync: Any) -> None:
        self._sync = sync

    def __getattr__(self, name: str) -> Any:
        if name not in _PASSED_THROUGH:
            raise AttributeError(f"the memory store does not offer {name!r}")
        method = getattr(self._sync, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call

    def find(self, *args: Any, **kwargs: Any) -> _AsyncCursor:
        return _AsyncCursor(self._sync.find(*args, **kwargs))

    async def bulk_write(self, requests: list[Any], ordered: bool = True) -> Any:
        """One operation at a time, with the server's error report on duplicates and the
        count of documents the updates matched (``matched_count``, ``nMatched``)."""
        from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne
        from pymongo.errors import BulkWriteError, DuplicateKeyError

        errors: list[dict[str, Any]] = []
        matched = 0
        for index, op in enumerate(requests):
            try:
                if isinstance(op, InsertOne):
                    self._sync.insert_one(dict(op._doc))
                elif isinstance(op, UpdateOne):
                    matched += self._sync.update_one(op._filter, op._doc,
                                                     upsert=bool(op._upsert)).matched_count
                elif isinstance(op, UpdateMany):
                    self._sync.update_many(op._filter, op._doc, upsert=bool(op._upsert))
                elif isinstance(op, ReplaceOne):
                    self._sync.replace_one(op._filter, op._doc, upsert=bool(op._upsert))
                elif isinstance(op, DeleteOne):
                    self._sync.delete_one(op._filter)
                else:
                    raise TypeError(f"the memory store cannot bulk-write {op!r}")
            except DuplicateKeyError as exc:
                errors.append({"index": index, "code": 11000, "errmsg": str(exc)})
                if ordered:
                    break
        if errors:
            raise BulkWriteError({"writeErrors": errors, "writeConcernErrors": [],
                                  "nInserted": 0, "nMatched": matched})
        return _BulkResult(matched)
