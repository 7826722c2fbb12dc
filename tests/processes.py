"""Real processes for the integration and deployment tests: start them, probe them over HTTP
(asyncio, never blocking the event loop), stop them — and a whole GridLink :class:`Stack`.

An HTTP probe has no event to await, so :func:`wait_until` and :func:`wait_for` poll it, with
a deadline and a failure that says what did not happen (and the process's output).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gridlink import components
from services.store import client_for

_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- HTTP probes ----------------------------------------------------------------------------


async def http_status(url: str, *, method: str = "GET") -> int | None:
    """The HTTP status ``url`` answers with, or None when nothing answers."""
    try:  # https: a probe checks the server answers, not whose certificate it shows
        async with aiohttp.ClientSession(timeout=_PROBE_TIMEOUT) as session, \
                session.request(method, url, allow_redirects=False, ssl=False) as response:
            return response.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None


async def http_text(url: str) -> str:
    """The body ``url`` answers with (any status); fails the test when nothing answers."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session, \
            session.get(url) as response:
        return await response.text()


async def answers(url: str, status: int, *, method: str = "GET") -> bool:
    """Does ``url`` answer ``status`` (a predicate for :func:`wait_for`)?"""
    return await http_status(url, method=method) == status


async def metric_value(url: str, sample: str) -> float | None:
    """One unlabelled Prometheus sample of a /metrics page: 0 if the page lacks it, None if
    nothing answers."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session, \
                session.get(url) as response:
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == sample:
            return float(value)
    return 0.0


async def wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0,
                   what: str = "condition") -> None:
    """Poll ``predicate()`` (sync or async) until true; the polled thing has no event to await."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# --- processes ------------------------------------------------------------------------------


@dataclass
class Process:
    """A started component: its probe port, metrics port, file server port and log."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int  # /healthz, /readyz (a gateway's OCPP port too)
    log: Path
    metrics_port: int | None = None  # /metrics when it has a port of its own
    files_port: int | None = None  # the commands service's file server
    tls: bool = False  # its main port speaks TLS (a gateway with a certificate)

    def url(self, path: str, port: int | None = None) -> str:
        port = port or self.port
        scheme = "https" if self.tls and port == self.port else "http"
        return f"{scheme}://127.0.0.1:{port}{path}"

    async def status(self, path: str, port: int | None = None, method: str = "GET"
                     ) -> int | None:
        return await http_status(self.url(path, port), method=method)

    async def ready(self) -> bool:
        return await self.status("/readyz") == 200

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    async def exit_code(self, timeout: float) -> int:
        code = await asyncio.get_running_loop().run_in_executor(None, self.popen.wait, timeout)
        return int(code)


def start(name: str, argv: list[str], env: dict[str, str], log: Path, *, port: int,
          metrics_port: int | None = None, files_port: int | None = None) -> Process:
    """Start ``argv`` with exactly ``env``, its output appended to ``log``."""
    popen = subprocess.Popen(argv, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    tls = name == "gateway" and bool(env.get("GRIDLINK_TLS_CERT_FILE"))
    return Process(name, popen, port, log, metrics_port or port, files_port, tls)


async def wait_until(processes: list[Process], path: str, *, timeout: float = 45.0,
                     port: Callable[[Process], int | None] = lambda p: p.port,
                     method: str = "GET", status: int = 200) -> None:
    """Poll ``path`` until every process answers ``status``; ``port`` picks the port asked
    (the probe port by default). A process that exits fails at once, with its output."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = list(processes)
    while pending:
        for process in list(pending):
            if process.popen.poll() is not None:
                raise AssertionError(f"{process.name} exited with {process.popen.returncode}:"
                                     f"\n{process.output()}")
            if await process.status(path, port(process), method) == status:
                pending.remove(process)
        if pending and loop.time() > deadline:
            raise AssertionError(
                f"{[p.name for p in pending]} did not answer {status} on {method} {path}:\n"
                + "\n".join(p.output() for p in pending))
        if pending:
            await asyncio.sleep(0.1)


async def wait_for_metric(process: Process, name: str, value: float,
                          timeout: float = 10.0) -> None:
    """Poll the process's /metrics until sample ``name`` equals ``value``."""
    last: list[float | None] = [None]

    async def reached() -> bool:
        last[0] = await metric_value(process.url("/metrics", process.metrics_port), name)
        return last[0] == value

    try:
        await wait_for(reached, timeout=timeout, what=f"{name} == {value}")
    except AssertionError:
        raise AssertionError(f"{name} is {last[0]}, expected {value}") from None


async def stop_all(processes: list[Process], timeout: float = 60.0) -> dict[str, int]:
    """SIGTERM every process, then their exit codes (-9: killed after ``timeout``)."""
    for process in processes:
        process.terminate()
    codes = {}
    for process in processes:
        try:
            codes[process.name] = await process.exit_code(timeout)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            codes[process.name] = -9
    return codes


# --- a GridLink stack -----------------------------------------------------------------------


@dataclass
class Stack:
    """GridLink's components as real processes against one broker and one database."""

    amqp_url: str
    mongo_url: str
    namespace: str
    database: str
    logs: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    files_port: int = field(default_factory=free_port)  # the first commands replica's
    processes: list[Process] = field(default_factory=list)
    gateways: list[Process] = field(default_factory=list)
    _client: AsyncMongoClient[dict[str, Any]] | None = field(default=None, repr=False)

    def env(self, **changes: object) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "GRIDLINK_AMQP_URL": self.amqp_url,
            "GRIDLINK_MONGO_URL": self.mongo_url,
            "GRIDLINK_MONGO_DB": self.database,
            "GRIDLINK_NAMESPACE": self.namespace,
            "GRIDLINK_HEALTH_REPORT_INTERVAL_S": "0.5",
            "GRIDLINK_BACKEND_HEALTH_TTL_S": "3",
            "GRIDLINK_LOG_LEVEL": "INFO",
            # most tests use passwordless stations; tests of authentication turn this off
            "GRIDLINK_ALLOW_SECURITY_PROFILE_0": "true",
            # the API's webhooks: a development key, receivers on this machine, quick retries
            "GRIDLINK_WEBHOOK_DEV_KEY": "true",
            "GRIDLINK_WEBHOOK_ALLOW_PRIVATE_URLS": "true",
            "GRIDLINK_WEBHOOK_BACKOFF_BASE_S": "0.2",
            "GRIDLINK_WEBHOOK_BACKOFF_MAX_S": "0.4",
            "GRIDLINK_WEBHOOK_TIMEOUT_S": "1",
            "GRIDLINK_WEBHOOK_POLL_INTERVAL_S": "0.1",
            "GRIDLINK_FILES_PUBLIC_URL": f"http://127.0.0.1:{self.files_port}",
        })
        env.update(self.extra_env)
        env.update({f"GRIDLINK_{k.upper()}": str(v) for k, v in changes.items()})
        return env

    def spawn(self, component: str, **changes: object) -> Process:
        """Start ``python -m <component>`` (as its container does) with this stack's settings."""
        port_key = "gateway_port" if component == "gateway" else "http_port"
        port = int(changes.pop(port_key, 0) or free_port())  # type: ignore[call-overload]
        if component == "commands":  # the first serves the public file URL; no collisions
            first = not any(p.name == "commands" for p in self.processes)
            changes.setdefault("files_port", self.files_port if first else free_port())
        metrics_port = None
        if component == "gateway":  # /metrics on a port of its own, as by default
            changes.setdefault("http_port", free_port())
            metrics_port = int(changes.get("gateway_metrics_port")  # type: ignore[call-overload]
                               or changes["http_port"])
        log = self.logs / f"{component}-{port}.log"
        process = start(component, [sys.executable, "-m", component],
                        self.env(**{port_key: port, "instance": f"{component}-{port}"},
                                 **changes), log, port=port, metrics_port=metrics_port)
        self.processes.append(process)
        return process

    async def start_services(self, **changes: object) -> list[Process]:
        started = [self.spawn(name, **changes) for name in components.SERVICES]
        for process in started:
            await self.wait_ready(process)
        return started

    async def start_gateway(self, **changes: object) -> Process:
        gateway = self.spawn("gateway", **changes)
        await self.wait_ready(gateway)
        self.gateways.append(gateway)
        return gateway

    async def wait_ready(self, process: Process, timeout: float = 30.0) -> None:
        """Until /readyz answers 200 (a gateway's on its metrics port: its OCPP port may be
        TLS)."""
        await wait_until([process], "/readyz", timeout=timeout,
                         port=lambda p: p.metrics_port or p.port)

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateways[0].port}/ocpp"

    def db(self) -> AsyncDatabase[dict[str, Any]]:
        """The stack's database, through one client for the whole stack."""
        if self._client is None:
            self._client = client_for(self.mongo_url, app_name="gridlink-tests")
        return self._client[self.database]

    def cli_command(self, *args: str) -> list[str]:
        """The command line of ``gridlink ARGS`` (run with ``env=self.env()``)."""
        return [sys.executable, "-m", "gridlink", *args]

    async def start_cli(self, *args: str, **env: object) -> asyncio.subprocess.Process:
        """Start ``gridlink ARGS`` without waiting (a charger answers meanwhile)."""
        return await asyncio.create_subprocess_exec(
            *self.cli_command(*args), env=self.env(**env),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

    async def cli(self, *args: str, timeout: float = 60, **env: object) -> tuple[int, str, str]:
        """Run ``gridlink ARGS`` with this stack's environment; (exit code, stdout, stderr)."""
        return await finish(await self.start_cli(*args, **env), timeout)

    async def stop_process(self, process: Process, timeout: float = 30) -> int:
        process.signal(signal.SIGTERM)
        return await process.exit_code(timeout)

    async def stop(self) -> None:
        for process in self.processes:
            process.signal(signal.SIGTERM)
        for process in self.processes:
            try:
                await process.exit_code(30)
            except subprocess.TimeoutExpired:
                process.popen.kill()
        if self._client is not None:
            await self._client.close()


async def finish(process: asyncio.subprocess.Process, timeout: float = 60
                 ) -> tuple[int, str, str]:
    """Wait for a started command; (exit code, stdout, stderr). Killed after ``timeout``."""
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()

