"""Start GridLink components as real processes for integration tests, and wait for them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

SERVICES = ("authz", "transactions", "commands")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def metric_value(url: str, sample: str) -> float:
    """The value of one unlabelled Prometheus sample on a /metrics page (0 if absent)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            name, _, value = line.partition(" ")
            if name == sample:
                return float(value)
    return 0.0


async def wait_for(predicate: Any, *, timeout: float = 30.0, what: str = "condition") -> None:
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


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    probe_port: int
    log: Path

    def ready(self) -> bool:
        return http_status(f"http://127.0.0.1:{self.probe_port}/readyz") == 200

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)


@dataclass
class Stack:
    amqp_url: str
    mongo_url: str
    namespace: str
    database: str
    logs: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    files_port: int = field(default_factory=free_port)  # the first commands replica's
    processes: list[Process] = field(default_factory=list)
    gateways: list[Process] = field(default_factory=list)

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
            "GRIDLINK_FILES_PUBLIC_URL": f"http://127.0.0.1:{self.files_port}",
        })
        env.update(self.extra_env)
        env.update({f"GRIDLINK_{k.upper()}": str(v) for k, v in changes.items()})
        return env

    def spawn(self, component: str, **changes: object) -> Process:
        port_key = "gateway_port" if component == "gateway" else "http_port"
        port = int(changes.pop(port_key, 0) or free_port())  # type: ignore[call-overload]
        if component == "commands":  # the first serves the public file URL; no collisions
            first = not any(p.name == "commands" for p in self.processes)
            changes.setdefault("files_port", self.files_port if first else free_port())
        log = self.logs / f"{component}-{port}.log"
        popen = subprocess.Popen(
            [sys.executable, "-m", component],
            env=self.env(**{port_key: port, "instance": f"{component}-{port}"}, **changes),
            stdout=open(log, "ab"), stderr=subprocess.STDOUT,
        )
        process = Process(component, popen, port, log)
        self.processes.append(process)
        return process

    async def start_services(self, **changes: object) -> list[Process]:
        started = [self.spawn(name, **changes) for name in SERVICES]
        for process in started:
            await self.wait_ready(process)
        return started

    async def start_gateway(self, **changes: object) -> Process:
        gateway = self.spawn("gateway", **changes)
        await self.wait_ready(gateway)
        self.gateways.append(gateway)
        return gateway

    async def wait_ready(self, process: Process, timeout: float = 30.0) -> None:
        def check() -> bool:
            if process.popen.poll() is not None:
                raise AssertionError(f"{process.name} exited: {process.log.read_text()[-2000:]}")
            return process.ready()

        await wait_for(check, timeout=timeout, what=f"{process.name} ready")

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateways[0].probe_port}/ocpp"

    def db(self) -> Any:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.mongo_url, tz_aware=True)
        return client[self.database]

    def cli_command(self, *args: str) -> list[str]:
        """The command line of ``gridlink ARGS`` (run with ``env=self.env()``)."""
        return [sys.executable, "-m", "gridlink", *args]

    async def cli(self, *args: str, timeout: float = 60) -> tuple[int, str, str]:
        """Run ``gridlink ARGS`` with this stack's environment; (exit code, stdout, stderr)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gridlink", *args, env=self.env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def stop_process(self, process: Process, timeout: float = 30) -> int:
        process.signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        code = await loop.run_in_executor(None, process.popen.wait, timeout)
        return int(code)

    async def stop(self) -> None:
        for process in self.processes:
            process.signal(signal.SIGTERM)
        for process in self.processes:
            try:
                await asyncio.get_running_loop().run_in_executor(None, process.popen.wait, 30)
            except subprocess.TimeoutExpired:
                process.popen.kill()
