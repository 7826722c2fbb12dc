"""The systems a benchmark measures, each started by it and stopped afterwards: SecantusDB,
GridLink's four components, the single-process baseline CSMS, and a bare websockets server.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.processes import (
    AMQP_URL,
    REPO,
    Process,
    base_env,
    free_port,
    http_ok,
    port_open,
    start,
    wait_until,
)
from gridlink import components
from services.settings import embedded_mongo_url

IN_MEMORY = ("SecantusDB (MongoDB wire protocol, in-memory WiredTiger: no journal, so "
             "j:true costs nothing), one local process")
ON_DISK = ("SecantusDB (MongoDB wire protocol, on-disk WiredTiger with its journal: a j:true "
           "write waits for an fsync), one local process")


@dataclass
class Database:
    """A SecantusDB server started for this benchmark."""

    process: Process
    port: int
    on_disk: bool = False

    @property
    def url(self) -> str:
        return embedded_mongo_url(self.port)

    @property
    def description(self) -> str:
        return ON_DISK if self.on_disk else IN_MEMORY

    def opcounters(self) -> dict[str, int]:
        """The server's ``serverStatus.opcounters`` (insert, query, update, delete, command...)."""
        from pymongo import MongoClient

        client: MongoClient[dict[str, object]] = MongoClient(self.url)
        try:
            counters = client.admin.command("serverStatus").get("opcounters", {})
            return {str(k): int(v) for k, v in counters.items()}
        finally:
            client.close()


def secantus_path() -> str:
    beside = Path(sys.executable).with_name("secantusd-py")
    return str(beside) if beside.exists() else (shutil.which("secantusd-py") or "secantusd-py")


@contextlib.contextmanager
def database(logs: Path, *, on_disk: bool = False) -> Iterator[Database]:
    """A fresh SecantusDB on a free port, stopped afterwards: in memory (no journal: a
    ``j: true`` write is acknowledged as fast as any), or ``on_disk`` in the logs directory
    with its journal, as a production server keeps one (``j: true`` waits for an fsync)."""
    port = free_port()
    storage = str(logs / f"secantus-{port}") if on_disk else ":memory:"
    process = start(
        "secantusd",
        [
            secantus_path(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            storage,
            "--log-level",
            "WARNING",
        ],
        base_env(),
        logs,
    )
    try:
        wait_until(lambda: port_open(port), 60, "SecantusDB", process)
        yield Database(process, port, on_disk)
    finally:
        process.stop()


def gridlink_available() -> bool:
    """Whether GridLink's code is there to benchmark."""
    return (REPO / "gridlink" / "cli" / "__init__.py").exists() and \
        (REPO / "gateway" / "server.py").exists()


@dataclass
class GridLink:
    """The four GridLink components, each its own process, as ``gridlink run all`` runs them."""

    gateway_port: int
    namespace: str
    db_name: str
    processes: dict[str, Process] = field(default_factory=dict)
    #: component -> its /metrics URL (the services: the gateway sends no database command)
    metrics: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}/ocpp"

    @property
    def gateway(self) -> Process:
        return self.processes["gateway"]

    def all_pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items()}


@contextlib.contextmanager
def gridlink(
    db: Database,
    logs: Path,
    *,
    tags: tuple[str, ...] = ("SIMTAG0001",),
    extra_env: dict[str, str] | None = None,
) -> Iterator[GridLink]:
    """Start GridLink's components against ``db`` (unique namespace and database), stop after."""
    run_id = uuid.uuid4().hex[:8]
    stack = GridLink(free_port(), f"bench-{run_id}", f"bench_{run_id}")
    env = (
        base_env()
        | {
            "GRIDLINK_MONGO_URL": db.url,
            "GRIDLINK_MONGO_DB": stack.db_name,
            "GRIDLINK_NAMESPACE": stack.namespace,
            "GRIDLINK_AMQP_URL": AMQP_URL,
            "GRIDLINK_ACCEPT_UNKNOWN_STATIONS": "true",
            # the naive reference authenticates nobody either: the same work per message
            "GRIDLINK_ALLOW_SECURITY_PROFILE_0": "true",
            "GRIDLINK_GATEWAY_HOST": "127.0.0.1",
            "GRIDLINK_GATEWAY_PORT": str(stack.gateway_port),
            "GRIDLINK_LOG_LEVEL": "WARNING",
            # round trips per collection, command and action (bench/db_commands.py)
            "GRIDLINK_DB_COMMAND_STATS": "true",
            # the HTTP API runs as in a deployment (idle, its webhook worker consuming the
            # events); a development key for webhook secrets, as `make run` gives it
            "GRIDLINK_API_HOST": "127.0.0.1",
            "GRIDLINK_API_PORT": str(free_port()),
            "GRIDLINK_WEBHOOK_DEV_KEY": "true",
        }
        | (extra_env or {})
    )
    try:
        for tag in tags:
            subprocess.run(
                [sys.executable, "-m", "gridlink", "tags", "add", tag],
                env=env,
                cwd=REPO,
                check=True,
                capture_output=True,
                timeout=60,
            )
        for component in components.NAMES:
            port = free_port()
            stack.processes[component] = start(
                f"gridlink-{component}-{run_id}",
                [sys.executable, "-m", component],
                env
                | {
                    "GRIDLINK_HTTP_PORT": str(port),
                    "GRIDLINK_INSTANCE": f"bench-{component}-{run_id}",
                },
                logs,
            )
            if component != "gateway":
                stack.metrics[component] = f"http://127.0.0.1:{port}/metrics"
            probe = (
                f"http://127.0.0.1:{stack.gateway_port}/readyz"
                if component == "gateway"
                else f"http://127.0.0.1:{port}/readyz"
            )
            wait_until(
                lambda url=probe: http_ok(url),
                90,
                f"{component} /readyz",  # type: ignore[misc]
                stack.processes[component],
            )
        yield stack
    finally:
        for component in reversed(components.NAMES):
            if component in stack.processes:
                stack.processes[component].stop()
        delete_broker_objects(stack.namespace)


def delete_broker_objects(prefix: str) -> None:
    """Delete the queues and exchanges a benchmark's GridLink declared (names start with prefix)."""
    names: dict[str, list[str]] = {}
    for kind in ("queues", "exchanges"):
        try:
            listing = subprocess.run(
                ["rabbitmqctl", "-q", f"list_{kind}", "name"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout.split()
        except (OSError, subprocess.TimeoutExpired):
            return
        names[kind] = [name for name in listing if name.startswith(prefix)]
    if not any(names.values()):
        return

    async def delete() -> None:
        import aio_pika

        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            for queue in names["queues"]:
                with contextlib.suppress(Exception):
                    await channel.queue_delete(queue)
            for exchange in names["exchanges"]:
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(exchange)

    import asyncio

    with contextlib.suppress(Exception):
        asyncio.run(delete())


def seed_id_tags(db: Database, db_name: str, tags: list[str], *, max_concurrent: int = 1
                 ) -> None:
    """Insert Accepted id tags (the ``id_tags`` document shape of services/id_tags.py), each
    allowed ``max_concurrent`` transactions at once (a fleet tag: many)."""
    if not tags:
        return
    from pymongo import MongoClient
    from pymongo.errors import BulkWriteError

    client: MongoClient[dict[str, object]] = MongoClient(db.url)
    try:
        collection = client[db_name]["id_tags"]
        for start in range(0, len(tags), 1000):
            documents = [
                {"_id": tag, "status": "Accepted", "expiry": None, "parent": None,
                 "max_concurrent": max_concurrent}
                for tag in tags[start : start + 1000]
            ]
            with contextlib.suppress(BulkWriteError):  # already there
                collection.insert_many(documents, ordered=False)
    finally:
        client.close()


@dataclass
class Server:
    """A running single-process server (the baseline CSMS or the bare websockets server)."""

    process: Process
    url: str
    db_name: str = ""


@contextlib.contextmanager
def baseline(db: Database, logs: Path) -> Iterator[Server]:
    """The baseline CSMS (bench/baseline_csms.py) against ``db``."""
    port = free_port()
    db_name = f"baseline_{uuid.uuid4().hex[:8]}"
    process = start(
        f"baseline-{db_name}",
        [
            sys.executable,
            "-m",
            "bench.baseline_csms",
            "--port",
            str(port),
            "--mongo-url",
            db.url,
            "--db",
            db_name,
        ],
        base_env(),
        logs,
    )
    try:
        wait_until(lambda: port_open(port), 60, "baseline CSMS", process)
        yield Server(process, f"ws://127.0.0.1:{port}/ocpp", db_name)
    finally:
        process.stop()


@contextlib.contextmanager
def bare_server(logs: Path) -> Iterator[Server]:
    """The bare websockets server (bench/bare_server.py)."""
    port = free_port()
    process = start(
        f"bare-{port}",
        [sys.executable, "-m", "bench.bare_server", "--port", str(port)],
        base_env(),
        logs,
    )
    try:
        wait_until(lambda: port_open(port), 30, "bare websockets server", process)
        yield Server(process, f"ws://127.0.0.1:{port}/ocpp")
    finally:
        process.stop()

