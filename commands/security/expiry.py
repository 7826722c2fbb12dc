"""Certificates about to expire, as a Prometheus gauge every commands replica refreshes:

``gridlink_commands_certificates_expiring{kind, days}`` — how many certificates expire
within ``days`` (7, 30; ``0``: expired already) of now: ``kind="charger"`` the stations'
current charger certificates GridLink sent (CertificateSigned, Accepted), ``"installed"``
the root certificates GridLink installed and still knows installed. No station id in the
labels: ``gridlink certificates expiring`` names them.
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import Gauge

from commands.security import repository
from services.ocpp16 import utcnow
from services.runtime import ServiceRuntime

REFRESH_INTERVAL_S = 60.0

EXPIRING = Gauge(
    "gridlink_commands_certificates_expiring",
    "Certificates that expire within `days` days (0: expired), by kind (charger, installed).",
    ["kind", "days"],
)


async def refresh(runtime: ServiceRuntime) -> None:
    """Set the gauge from the database once."""
    db = runtime.store.db
    counts = await runtime.with_store(lambda: repository.expiring_counts(db, utcnow()))
    for (kind, days), count in counts.items():
        EXPIRING.labels(kind, str(days)).set(count)


async def keep_fresh(runtime: ServiceRuntime) -> None:
    """Refresh the gauge every REFRESH_INTERVAL_S until the service stops."""
    while not runtime.stopping.is_set():
        await refresh(runtime)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), REFRESH_INTERVAL_S)
