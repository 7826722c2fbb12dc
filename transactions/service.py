"""The transactions service as a ServiceSpec for the shared runtime."""

from __future__ import annotations

import asyncio
import contextlib

from services.errors import StoreUnavailable
from services.metrics import ACTIVE_TRANSACTIONS
from services.router import Router
from services.runtime import ServiceRuntime, ServiceSpec
from services.store import guarded
from transactions.handlers import build_router
from transactions.repository import INDEXES, TransactionRepository
from transactions.transaction_ids import TransactionIds


def _build(runtime: ServiceRuntime) -> Router:
    ids = TransactionIds(runtime.store.db, block=runtime.settings.transaction_id_block)
    repo = TransactionRepository(runtime.store.db, ids)
    runtime.state["repo"] = repo
    return build_router(repo, runtime.publish_event)


async def _count_active(runtime: ServiceRuntime) -> None:
    """Refresh the active-transactions gauge now and then (a cheap indexed count)."""
    repo: TransactionRepository = runtime.state["repo"]
    while True:
        with contextlib.suppress(StoreUnavailable):
            ACTIVE_TRANSACTIONS.set(await guarded("transactions", repo.count_active))
        await asyncio.sleep(15)


SPEC = ServiceSpec(name="transactions", indexes=INDEXES, build=_build,
                   background=[_count_active])
