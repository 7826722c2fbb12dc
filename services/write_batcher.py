"""Coalesce small writes from concurrent handlers into one ``bulk_write`` per collection.

Each MeterValues, StatusNotification or BootNotification wants one or two tiny writes.
Handlers ``await batcher.write(collection, ops)`` instead of one round trip each; the
writes of concurrent handlers go together (natural batching, :mod:`services.coalesce`).

Every caller gets the outcome of its own operations: ``None`` for each one that succeeded,
or the server's write error (a dict with ``code`` and ``errmsg``). A transient failure of
the whole bulk (connection lost, timeout) is raised to every caller of that bulk, which
retries as it would a single write. Any other failure of the whole bulk (a document pymongo
cannot encode, such as an integer beyond 64 bits) is one caller's: the bulk is retried one
caller at a time, so only that caller gets the exception. Writes must be idempotent, as
every GridLink write already is (a retried bulk may repeat what a failed one wrote).

The bulk write carries the client's write concern (journaled, on a majority:
:mod:`services.store`), and every caller's outcome is handed out only after the bulk was
acknowledged: each message of a batch is as durable when answered as a lone write.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from pymongo import DeleteOne, InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from services.coalesce import Coalescer
from services.failures import is_transient
from services.metrics import STORE_BATCH_SPLITS, STORE_BULK_OPS

WriteOp = InsertOne[Any] | UpdateOne | DeleteOne
WriteError = dict[str, Any]
DUPLICATE_KEY = 11000
#: A request of a bulk: its operations, and whether they are conditional updates whose
#: matches the caller wants to know (:meth:`WriteBatcher.update`).
_Request = tuple[list[WriteOp], bool]
#: What a request gets back: its write errors, and whether the counted updates of its bulk
#: all matched a document (True), none did (False), or it cannot be told (None).
_Outcome = tuple[list[WriteError | None], bool | None]


class WriteBatcher:
    """Per collection at most one bulk in flight; at most ``max_ops`` operations per bulk."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, component: str = "",
                 max_ops: int = 1000) -> None:
        self.db = db
        self.component = component or "unnamed"
        self._bulks: Coalescer[_Request, _Outcome] = Coalescer(
            self._bulk, max_size=max_ops, isolate=lambda exc: not is_transient(exc),
            on_split=lambda *_: STORE_BATCH_SPLITS.labels(self.component, "write").inc())
        self.ops = 0  # operations sent (for tests and metrics)

    @property
    def bulks(self) -> int:
        return self._bulks.trips

    @property
    def splits(self) -> int:
        """Bulks that failed for a non-transient reason and were retried caller by caller."""
        return self._bulks.splits

    async def write(self, collection: str, ops: list[WriteOp]) -> list[WriteError | None]:
        """Run ``ops`` (unordered) in the next bulk of ``collection``; one result per op."""
        if not ops:
            return []
        return (await self._bulks.submit(collection, (ops, False), size=len(ops)))[0]

    async def update(self, collection: str, op: UpdateOne) -> bool | None:
        """Run one conditional update (never an upsert) in the next bulk of ``collection``:
        True when it matched a document (every update of its bulk matched one), False
        when it did not (none did), None when the bulk cannot tell (some of its updates
        matched: the caller reads to know). Raises its write error.

        A bulk reports how many documents its updates matched in all, not which: when all
        did, each did, the common case of updates such as "stop this transaction unless it
        was stopped"; a lone update is always told."""
        errors, matched = await self._bulks.submit(collection, ([op], True), size=1)
        raise_unexpected(errors, allowed=frozenset())
        return matched

    async def _bulk(self, collection: Hashable, requests: list[_Request]) -> list[_Outcome]:
        ops = [op for request, _ in requests for op in request]
        self.ops += len(ops)
        STORE_BULK_OPS.labels(self.component).observe(len(ops))
        counted = sum(len(request) for request, count in requests if count)
        # other updates (upserts among them) would add to the matches: then nobody knows
        uncounted = any(isinstance(op, UpdateOne) for request, count in requests
                        if not count for op in request)
        errors: dict[int, WriteError] = {}
        try:
            result = await self.db[str(collection)].bulk_write(ops, ordered=False)
            matched = int(getattr(result, "matched_count", -1))
        except BulkWriteError as exc:
            if exc.details.get("writeConcernErrors"):
                raise
            errors = {int(e["index"]): e for e in exc.details.get("writeErrors", [])}
            matched = int(exc.details.get("nMatched", -1))
        told: bool | None = None
        if matched == 0:
            told = False
        elif counted > 0 and not uncounted and matched == counted:
            told = True
        results, start = [], 0
        for request, _ in requests:
            results.append(([errors.get(start + i) for i in range(len(request))], told))
            start += len(request)
        return results


def raise_unexpected(results: list[WriteError | None], *, allowed: frozenset[int] = frozenset(
        {DUPLICATE_KEY})) -> list[WriteError | None]:
    """Raise the first write error whose code is not ``allowed``; else return ``results``."""
    for error in results:
        if error is not None and error.get("code") not in allowed:
            raise BulkWriteError({"writeErrors": [error], "nInserted": 0})
    return results
