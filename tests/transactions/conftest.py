"""A transactions service over the in-memory store, reachable below the router: the
repository (to break a step on purpose), the database, and calls as a gateway sends them.

The store hands control to the event loop before each operation, as a real database does,
so deliveries started together with ``asyncio.gather`` interleave at every step.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from services import id_tags
from services.envelope import ChargerCall
from services.memory import memory_store
from services.router import Dispatched, Router
from transactions.handlers import build_router
from transactions.repository import INDEXES, TransactionRepository
from transactions.transaction_ids import TransactionIds

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@dataclass
class Transactions:
    repo: TransactionRepository
    router: Router
    calls: int = 0

    @property
    def db(self) -> Any:
        return self.repo.db

    async def tag(self, tag: str, *, status: str = "Accepted",
                  max_concurrent: int | None = None) -> None:
        await id_tags.upsert_tag(self.db, tag, status=status, expiry=None, parent=None,
                                 max_concurrent=max_concurrent)

    async def call(self, action: str, payload: dict[str, Any], *, station: str = "CP-1",
                   received_at: datetime = NOW) -> Dispatched:
        self.calls += 1
        return await self.router.dispatch(ChargerCall(
            station=station, session="s", unique_id=f"u{self.calls}", action=action,
            payload=payload, received_at=received_at))

    async def answer(self, action: str, payload: dict[str, Any], **kwargs: Any
                     ) -> dict[str, Any]:
        """The CALLRESULT payload (a CALLERROR fails the test)."""
        dispatched = await self.call(action, payload, **kwargs)
        assert dispatched.reply is not None and dispatched.reply.error_code is None, \
            dispatched.reply
        assert dispatched.reply.payload is not None
        return dispatched.reply.payload

    @staticmethod
    def start_payload(tag: str = "TAG", *, connector: int = 1, meter: int = 1000,
                      at: str = "2026-06-01T11:00:00.000Z") -> dict[str, Any]:
        return {"connectorId": connector, "idTag": tag, "meterStart": meter, "timestamp": at}

    async def start(self, tag: str = "TAG", *, connector: int = 1, meter: int = 1000,
                    at: str = "2026-06-01T11:00:00.000Z", **call: Any) -> dict[str, Any]:
        """A StartTransaction's answer: {transactionId, idTagInfo}."""
        return await self.answer("StartTransaction", self.start_payload(
            tag, connector=connector, meter=meter, at=at), **call)

    async def stop(self, transaction_id: int, meter: int, *,
                   at: str = "2026-06-01T11:30:00.000Z", **call: Any) -> dict[str, Any]:
        return await self.answer("StopTransaction", {
            "transactionId": transaction_id, "meterStop": meter, "timestamp": at,
            "reason": "Local"}, **call)

    async def transaction(self, transaction_id: int) -> dict[str, Any]:
        found = await self.db["transactions"].find_one({"_id": transaction_id})
        assert found is not None, transaction_id
        return found

    async def slot_holders(self, tag: str) -> list[str]:
        """The start keys holding the tag's slots."""
        return [h["_id"] for h in await self.repo.sessions.holders(tag)]


class _Yielding:
    """A database (or collection, or cursor) that yields before each operation."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getitem__(self, name: str) -> _Yielding:
        return _Yielding(self._target[name])

    def find(self, *args: Any, **kwargs: Any) -> _Yielding:
        return _Yielding(self._target.find(*args, **kwargs))

    def __aiter__(self) -> Any:
        return self._iterate()

    async def _iterate(self) -> Any:
        await asyncio.sleep(0)
        async for document in self._target:
            yield document

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)  # another delivery may run here
            return await method(*args, **kwargs)

        return call


@pytest.fixture
async def tx() -> Transactions:
    store = memory_store()
    await store.ensure_indexes(INDEXES)
    db: Any = _Yielding(store.db)
    repo = TransactionRepository(db, TransactionIds(db, block=10))
    return Transactions(repo, build_router(repo))
