"""The transactions service: StartTransaction, StopTransaction, MeterValues,
StatusNotification."""

from __future__ import annotations

import asyncio
import contextlib

from services.errors import StoreUnavailable
from services.metrics import ACTIVE_TRANSACTIONS
from services.retention import Retention
from services.runtime import Service, ServiceRuntime, ServiceSpec, run_service
from services.settings import Settings
from services.store import guarded
from transactions.handlers import build_router
from transactions.repository import INDEXES, METER_VALUES, STATUS_EVENTS, TransactionRepository
from transactions.transaction_ids import TransactionIds

ACTIVE_GAUGE_INTERVAL_S = 15.0


def build(runtime: ServiceRuntime) -> Service:
    ids = TransactionIds(runtime.store.db, block=runtime.settings.transaction_id_block)
    repo = TransactionRepository(runtime.store.db, ids)

    async def count_active(_: ServiceRuntime) -> None:
        """Refresh the active-transactions gauge now and then (a cheap indexed count)."""
        while True:
            with contextlib.suppress(StoreUnavailable):
                ACTIVE_TRANSACTIONS.set(await guarded("transactions", repo.count_active))
            await asyncio.sleep(ACTIVE_GAUGE_INTERVAL_S)

    settings = runtime.settings
    retention = (  # the latest status per connector (connector_status) is always kept
        Retention(STATUS_EVENTS, "received_at", settings.retention_status_events_days),
        Retention(METER_VALUES, "received_at", settings.retention_meter_values_days),
    )
    return Service(router=build_router(repo), background=(count_active,), indexes=INDEXES,
                   retention=retention)


SPEC = ServiceSpec(name="transactions", build=build)


async def main(settings: Settings) -> None:
    """Run the transactions service until SIGTERM."""
    await run_service(SPEC, settings)
