"""Background jobs that outlive their own crashes: :func:`supervised`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("gridlink.supervision")

#: Pause before a crashed job starts again (a job that fails at once must not spin).
RESTART_DELAY_S = 1.0


def supervised(job: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
    """Run ``job()`` in a task until it returns; if it raises, log it and start it again.
    Cancelling the task ends it."""

    async def run() -> None:
        while True:
            try:
                await job()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background job failed; restarting it")
                await asyncio.sleep(RESTART_DELAY_S)

    return asyncio.create_task(run())
