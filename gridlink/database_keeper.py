"""The embedded database kept alive by ``gridlink run all``: if it dies, it is started again
with the same data directory and port (after a backoff), and the components recover by
themselves (pymongo reconnects; a service reports the database unreachable meanwhile, and
the gateways close chargers with 1013 if the outage lasts, as for any database outage).

Acknowledged writes survive the crash: they were journaled (``j: true``, and the server
runs with ``--sync-on-commit``); the restarted server replays its journal.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from gridlink import embedded_db
from services.errors import ConfigurationError

log = logging.getLogger("gridlink.database")


class EmbeddedDatabase:
    """One embedded server: :meth:`start` it, :meth:`keep` it running, :meth:`stop` it."""

    def __init__(self, port: int, storage: str, *, log_file: Path | None = None,
                 child_setup: Callable[[], None] | None = None, sync_on_commit: bool = True,
                 first_backoff_s: float = 0.5, max_backoff_s: float = 10.0,
                 stable_s: float = 30.0) -> None:
        self.port = port
        self.storage = storage
        self.log_file = log_file
        self.child_setup = child_setup
        self.sync_on_commit = sync_on_commit  # off: only writes asking j:true are synced
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_s = stable_s  # up this long: the next restart waits the first backoff again
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stopping = asyncio.Event()
        self._started_at = 0.0

    @property
    def url(self) -> str:
        return embedded_db.url(self.port)

    def start(self) -> None:
        """Start the server and wait until it listens (ConfigurationError if it cannot;
        a server already listening on the port is used as it is, and not kept)."""
        self.process = embedded_db.start(self.port, self.storage, log_file=self.log_file,
                                         child_setup=self.child_setup,
                                         sync_on_commit=self.sync_on_commit)
        self._started_at = time.monotonic()

    async def keep(self) -> None:
        """Until :meth:`stop`: wait for the server to die, then start it again."""
        backoff = self.first_backoff_s
        while self.process is not None and not self._stopping.is_set():
            process = self.process
            code = await asyncio.to_thread(process.wait)
            if self._stopping.is_set():
                return
            if time.monotonic() - self._started_at >= self.stable_s:
                backoff = self.first_backoff_s
            log.error("embedded database exited; restarting it with the same data",
                      extra={"code": code, "data": self.storage, "in_s": backoff})
            while not self._stopping.is_set():
                if await self._stopped_within(backoff):
                    return
                backoff = min(backoff * 2, self.max_backoff_s)
                if embedded_db.port_open(self.port):  # something else took the port
                    log.error("the embedded database's port is taken; retrying",
                              extra={"port": self.port, "in_s": backoff})
                    continue
                # Started from the loop's thread: PR_SET_PDEATHSIG (``child_setup``) fires
                # when the thread that started the child ends, and this one ends last.
                restarted = embedded_db.spawn(self.port, self.storage, log_file=self.log_file,
                                              child_setup=self.child_setup,
                                              sync_on_commit=self.sync_on_commit)
                try:
                    await asyncio.to_thread(embedded_db.wait_listening, restarted, self.port)
                except ConfigurationError as exc:
                    _end(restarted)
                    log.error("embedded database did not start; retrying",
                              extra={"error": str(exc), "in_s": backoff})
                    continue
                if self._stopping.is_set():  # stop() came while it was starting
                    _end(restarted)
                    return
                self.process, self._started_at = restarted, time.monotonic()
                self.restarts += 1
                log.warning("embedded database restarted",
                            extra={"url": self.url, "restarts": self.restarts})
                break

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop keeping it, then stop the server (SIGTERM; SIGKILL after 10 s)."""
        self._stopping.set()
        if self.process is not None:
            await asyncio.to_thread(_end, self.process)

    def stop_now(self) -> None:
        """The same, without an event loop (the launcher's last resort)."""
        self._stopping.set()
        if self.process is not None:
            _end(self.process)


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
