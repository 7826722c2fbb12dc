"""Transaction ids unique across every replica, allocated in blocks.

A replica reserves ``block`` ids with one ``$inc`` of its counter (:mod:`services.counters`)
and hands them out from memory, so the hot path costs no extra round trip. Ids skipped when
a replica stops are never reused (gaps are harmless; duplicates would not be).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services import counters

COUNTER = "transaction_id"  # in services.counters
MAX_ID = 2**31 - 1  # chargers keep transactionId in a signed 32-bit integer


class TransactionIds:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, block: int) -> None:
        if block < 1:
            raise ValueError("block must be positive")
        self.db = db
        self.block = block
        self._next = 0
        self._end = 0  # exclusive
        self._lock = asyncio.Lock()

    async def next(self) -> int:
        async with self._lock:
            if self._next >= self._end:
                end = await counters.advance(self.db, COUNTER, self.block) + 1
                if end - 1 > MAX_ID:
                    raise OverflowError("transaction ids exhausted (int32)")
                self._next, self._end = end - self.block, end
            value = self._next
            self._next += 1
            return value
