"""Graceful shutdown, the same in every process (services, gateways, the launcher).

- :func:`install_signal_handlers`: the first SIGTERM/SIGINT asks for a graceful stop (it
  sets an event the process waits on); a second one forces it — by default the process
  exits at once; the launcher passes it on to its children instead.
- :class:`InFlight`: counts work in progress, so a stop can wait for it.
- :func:`drain`: the one stop sequence — stop taking new work, then wait for the work in
  flight within a grace period — with the counts logged on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Iterator

log = logging.getLogger("gridlink.shutdown")


class InFlight:
    """Work in progress: ``with in_flight.track(): ...``; ``await in_flight.wait_idle()``."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        self.count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def wait_idle(self, timeout_s: float | None = None) -> bool:
        """True once nothing is in flight; False if ``timeout_s`` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


def _exit_now(signum: int) -> None:
    log.warning("second signal: exiting now")
    os._exit(128 + signum)


def install_signal_handlers(stopping: asyncio.Event, *,
                            on_first: Callable[[int], None] | None = None,
                            on_second: Callable[[int], None] = _exit_now) -> None:
    """First SIGTERM/SIGINT: ``on_first`` (if given), then set ``stopping`` (a graceful
    stop); a signal after that: ``on_second``."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            on_second(signum)
            return
        log.info("signal received; shutting down", extra={"signal": signum})
        if on_first is not None:
            on_first(signum)
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


async def drain(*, stop_taking: Callable[[], Awaitable[None]], in_flight: InFlight,
                grace_s: float | None, what: str, logger: logging.Logger = log) -> bool:
    """Stop taking new work, then wait up to ``grace_s`` (None: as long as it takes) for the
    work in flight; True when all of it finished. ``what`` names the work in the log."""
    logger.info(f"stopping: no new {what}", extra={"in_flight": in_flight.count})
    await stop_taking()
    if await in_flight.wait_idle(grace_s):
        logger.info(f"drained: every {what.rstrip('s')} in flight finished")
        return True
    logger.warning(f"grace period over; {in_flight.count} {what} still in flight",
                   extra={"in_flight": in_flight.count})
    return False
