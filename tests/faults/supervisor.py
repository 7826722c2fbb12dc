"""Keep processes running the way Kubernetes keeps a pod's container running.

A :class:`Unit` is one process the harness owns (``authz-1``, ``gateway-2``): its command,
environment, ports and log. The :class:`Supervisor` starts it and, whenever it ends — killed
(``kill -9``), crashed, or drained by SIGTERM — starts it again with the same command and
ports after a backoff that doubles up to a cap (CrashLoopBackOff, shortened for tests; the first
again once it ran ``stable_s``), as
``restartPolicy: Always`` does. Every restart is counted on the unit and logged.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.processes import Process

PR_SET_PDEATHSIG = 1  # prctl(2)

log = logging.getLogger("faults.supervisor")


@dataclass(eq=False)
class Unit:
    """One supervised process and what it takes to start it again."""

    name: str
    component: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int
    metrics_port: int | None = None
    process: Process | None = None
    restarts: int = 0
    restarted: asyncio.Event = field(default_factory=asyncio.Event)  # set on each restart

    def start(self) -> Process:
        """Start it; it is killed if the harness dies (no process outlives a broken run)."""
        popen = subprocess.Popen(self.argv, env=self.env, stdout=self.log.open("ab"),
                                 stderr=subprocess.STDOUT, preexec_fn=_killed_with_parent)
        self.process = Process(self.component, popen, self.port, self.log,
                               self.metrics_port or self.port)
        return self.process

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.popen.pid

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the running process (kill -9: ``signal.SIGKILL``)."""
        assert self.process is not None
        self.process.signal(signum)


async def exited(popen: subprocess.Popen[bytes]) -> int:
    """Its exit code, once it has ended: awaited on a pidfd (Linux), so that no thread of
    the loop's executor blocks in ``wait()`` per process (pymongo needs them)."""
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    fd = os.pidfd_open(popen.pid)
    loop.add_reader(fd, lambda: ended.done() or ended.set_result(None))
    try:
        if popen.poll() is None:
            await ended
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return popen.wait()


def _killed_with_parent() -> None:
    """In the child, before exec: SIGKILL when the harness dies (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Supervisor:
    """Starts units and restarts each one that ends, until :meth:`stop`."""

    def __init__(self, *, first_backoff_s: float = 0.5, max_backoff_s: float = 5.0,
                 stable_s: float = 10.0) -> None:
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_s = stable_s  # up this long: the next restart waits the first backoff
        self.units: dict[str, Unit] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def add(self, unit: Unit) -> Unit:
        """Start ``unit`` and keep it running."""
        unit.start()
        self.units[unit.name] = unit
        self._watchers.append(asyncio.create_task(self._keep(unit), name=f"keep-{unit.name}"))
        return unit

    async def _keep(self, unit: Unit) -> None:
        backoff = self.first_backoff_s
        loop = asyncio.get_running_loop()
        while True:
            assert unit.process is not None
            since = loop.time()
            code = await exited(unit.process.popen)
            if self._stopping.is_set():
                return
            if loop.time() - since >= self.stable_s:
                backoff = self.first_backoff_s
            log.warning("%s exited with %s; restarting it in %.1f s", unit.name, code, backoff)
            try:
                await asyncio.wait_for(self._stopping.wait(), backoff)
                return
            except TimeoutError:
                pass
            backoff = min(backoff * 2, self.max_backoff_s)
            unit.start()
            unit.restarts += 1
            unit.restarted.set()

    async def restart_of(self, unit: Unit, restarts: int, timeout: float = 60.0) -> None:
        """Until ``unit`` has been restarted ``restarts`` times in all."""
        async with asyncio.timeout(timeout):
            while unit.restarts < restarts:
                unit.restarted.clear()
                await unit.restarted.wait()

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop restarting, SIGTERM every unit, SIGKILL what has not ended after ``timeout``."""
        self._stopping.set()
        processes = [u.process for u in self.units.values() if u.process is not None]
        for process in processes:
            process.signal(signal.SIGTERM)
        for process in processes:
            try:
                await process.exit_code(timeout)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                await process.exit_code(10)
        await asyncio.gather(*self._watchers, return_exceptions=True)
