"""Natural batching: concurrent requests of one kind share one round trip.

The first request of a kind is sent at once (no added latency when the load is light);
requests that arrive while it is in flight wait and then go together in the next round trip
(the busier the service, the bigger the batches, the fewer the round trips). A service
consumes up to ``prefetch`` messages at once, so under load there is always company.

:class:`Coalescer` holds the queueing; what a round trip does is the ``send`` function given
to it: it receives the requests of one kind, in order, and returns one result per request,
or raises. A transient failure (the database away) fails every request of that batch with
the same exception: the callers retry as they would a single operation. A failure the
``isolate`` predicate names (a deterministic one, :func:`services.failures.is_transient`
false: one request holds a value that can never be stored) must not cost the others their
work: each request of the batch is then sent alone, so only the bad one fails.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass
class _Waiting(Generic[Req, Res]):
    request: Req
    size: int
    done: asyncio.Future[Res]


@dataclass
class _Kind(Generic[Req, Res]):
    waiting: deque[_Waiting[Req, Res]] = field(default_factory=deque)
    sender: asyncio.Task[None] | None = None


class Coalescer(Generic[Req, Res]):
    """At most one round trip in flight per kind; at most ``max_size`` units per trip."""

    def __init__(self, send: Callable[[Hashable, list[Req]], Awaitable[list[Res]]], *,
                 max_size: int = 1000,
                 isolate: Callable[[Exception], bool] | None = None,
                 on_split: Callable[[Hashable, Exception], None] | None = None) -> None:
        self._send = send
        self.max_size = max_size
        self._isolate = isolate
        self._on_split = on_split
        self._kinds: dict[Hashable, _Kind[Req, Res]] = {}
        self.trips = 0  # round trips made (for tests and metrics)
        self.splits = 0  # batches retried one request at a time

    async def submit(self, kind: Hashable, request: Req, *, size: int = 1) -> Res:
        """Queue ``request`` (worth ``size`` units) with others of ``kind``; its result."""
        done: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        queue = self._kinds.setdefault(kind, _Kind())
        queue.waiting.append(_Waiting(request, size, done))
        if queue.sender is None:
            queue.sender = asyncio.create_task(self._drain(kind, queue))
        return await done

    async def _drain(self, kind: Hashable, queue: _Kind[Req, Res]) -> None:
        try:
            while queue.waiting:
                batch = self._take(queue)
                await self._trip(kind, batch)
        finally:
            queue.sender = None

    def _take(self, queue: _Kind[Req, Res]) -> list[_Waiting[Req, Res]]:
        """The oldest requests up to ``max_size`` units (always at least one)."""
        taken: list[_Waiting[Req, Res]] = []
        units = 0
        while queue.waiting and (not taken or units + queue.waiting[0].size <= self.max_size):
            waiting = queue.waiting.popleft()
            taken.append(waiting)
            units += waiting.size
        return taken

    async def _trip(self, kind: Hashable, batch: list[_Waiting[Req, Res]]) -> None:
        self.trips += 1
        try:
            results = await self._send(kind, [w.request for w in batch])
        except asyncio.CancelledError:
            for waiting in batch:
                waiting.done.cancel()
            raise
        except Exception as exc:
            if len(batch) > 1 and self._isolate is not None and self._isolate(exc):
                self.splits += 1
                if self._on_split is not None:
                    self._on_split(kind, exc)
                await self._one_by_one(kind, batch)
                return
            for waiting in batch:
                if not waiting.done.done():
                    waiting.done.set_exception(exc)
            return
        for waiting, result in zip(batch, results, strict=True):
            if not waiting.done.done():
                waiting.done.set_result(result)

    async def _one_by_one(self, kind: Hashable, batch: list[_Waiting[Req, Res]]) -> None:
        """Send each request of a failed batch alone: each gets its own outcome."""
        for position, waiting in enumerate(batch):
            self.trips += 1
            try:
                results = await self._send(kind, [waiting.request])
            except asyncio.CancelledError:
                for rest in batch[position:]:
                    rest.done.cancel()
                raise
            except Exception as exc:
                if not waiting.done.done():
                    waiting.done.set_exception(exc)
                continue
            if not waiting.done.done():
                waiting.done.set_result(results[0])
