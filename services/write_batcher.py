"""Coalesce small writes from concurrent handlers into one ``bulk_write`` per collection.

A service consumes up to ``prefetch`` messages at once; each MeterValues or
StatusNotification wants one or two tiny writes. Instead of one database round trip each,
handlers ``await batcher.write(collection, ops)``: the first write to a collection is sent at
once (no added latency when the load is light); writes that arrive while that bulk is in
flight wait for it and then go together in the next one (natural batching: the busier the
service, the bigger the batches, the fewer the round trips).

Every caller gets the outcome of its own operations: ``None`` for each one that succeeded,
or the server's write error (a dict with ``code`` and ``errmsg``). A failure of the whole
bulk (connection lost, timeout) is raised to every caller of that bulk, which retries as it
would a single write. Writes must be idempotent, as every GridLink write already is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from services.metrics import STORE_BULK_OPS

WriteOp = InsertOne[Any] | UpdateOne
WriteError = dict[str, Any]
DUPLICATE_KEY = 11000


@dataclass
class _Request:
    ops: list[WriteOp]
    done: asyncio.Future[list[WriteError | None]]


@dataclass
class _Queue:
    waiting: deque[_Request] = field(default_factory=deque)
    sender: asyncio.Task[None] | None = None


class WriteBatcher:
    """Per collection at most one bulk in flight; at most ``max_ops`` operations per bulk."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, component: str = "",
                 max_ops: int = 1000) -> None:
        self.db = db
        self.component = component
        self.max_ops = max_ops
        self._queues: dict[str, _Queue] = {}
        self.bulks = 0  # bulk writes sent (for tests and metrics)
        self.ops = 0  # operations they carried

    async def write(self, collection: str, ops: list[WriteOp]) -> list[WriteError | None]:
        """Run ``ops`` (unordered) in the next bulk of ``collection``; one result per op."""
        if not ops:
            return []
        done: asyncio.Future[list[WriteError | None]] = (
            asyncio.get_running_loop().create_future())
        queue = self._queues.setdefault(collection, _Queue())
        queue.waiting.append(_Request(ops, done))
        if queue.sender is None:
            queue.sender = asyncio.create_task(self._send(collection, queue))
        return await done

    async def _send(self, collection: str, queue: _Queue) -> None:
        try:
            while queue.waiting:
                batch = self._take(queue)
                await self._bulk(collection, batch)
        finally:
            queue.sender = None

    def _take(self, queue: _Queue) -> list[_Request]:
        """The oldest requests up to ``max_ops`` operations (always at least one)."""
        taken, count = [], 0
        while queue.waiting and (not taken or count + len(queue.waiting[0].ops) <= self.max_ops):
            request = queue.waiting.popleft()
            taken.append(request)
            count += len(request.ops)
        return taken

    async def _bulk(self, collection: str, batch: list[_Request]) -> None:
        ops = [op for request in batch for op in request.ops]
        errors: dict[int, WriteError] = {}
        try:
            await self.db[collection].bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            if exc.details.get("writeConcernErrors"):
                _fail(batch, exc)
                return
            errors = {int(e["index"]): e for e in exc.details.get("writeErrors", [])}
        except Exception as exc:  # connection lost, timeout: every caller retries
            _fail(batch, exc)
            return
        finally:
            self.bulks += 1
            self.ops += len(ops)
            STORE_BULK_OPS.labels(self.component or "unnamed").observe(len(ops))
        start = 0
        for request in batch:
            results = [errors.get(start + i) for i in range(len(request.ops))]
            start += len(request.ops)
            if not request.done.done():
                request.done.set_result(results)

    async def close(self) -> None:
        """Wait for bulks in flight (shutdown)."""
        senders = [q.sender for q in self._queues.values() if q.sender is not None]
        with contextlib.suppress(Exception):
            await asyncio.gather(*senders, return_exceptions=True)


def _fail(batch: list[_Request], exc: BaseException) -> None:
    for request in batch:
        if not request.done.done():
            request.done.set_exception(exc)


def raise_unexpected(results: list[WriteError | None], *, allowed: frozenset[int] = frozenset(
        {DUPLICATE_KEY})) -> list[WriteError | None]:
    """Raise the first write error whose code is not ``allowed``; else return ``results``."""
    for error in results:
        if error is not None and error.get("code") not in allowed:
            raise BulkWriteError({"writeErrors": [error], "nInserted": 0})
    return results
