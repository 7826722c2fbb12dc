"""Starting and watching the processes a benchmark measures: GridLink, the baseline, SecantusDB.

Every process is started here, by this benchmark, and stopped by its own pid (SIGTERM, then
SIGKILL after a grace period).  Resource samples come from ``/proc/<pid>``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class Sample:
    """One look at a process: resident memory, open descriptors, CPU seconds used."""

    at: float
    rss_bytes: int
    fds: int
    cpu_s: float


def sample(pid: int) -> Sample:
    """Read RSS, fd count and CPU time of ``pid`` from /proc."""
    with open(f"/proc/{pid}/statm") as statm:
        rss = int(statm.read().split()[1]) * PAGE
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return Sample(time.monotonic(), rss, fds, cpu)


@dataclass
class Process:
    """A child process this benchmark started, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def sample(self) -> Sample:
        return sample(self.pid)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM, wait up to ``grace_s``, then SIGKILL."""
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def tail(self, lines: int = 15) -> str:
        """The last lines of its log (for error messages)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start(name: str, argv: list[str], env: dict[str, str], logs: Path) -> Process:
    """Start ``argv`` with its output in ``logs/<name>.log``."""
    log = logs / f"{name}.log"
    out = open(log, "wb")
    popen = subprocess.Popen(
        argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
    )
    out.close()
    return Process(name, popen, log)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def rabbitmq_pid() -> int | None:
    """The local RabbitMQ node's pid (beam.smp), to read its CPU time; None if not found."""
    try:
        out = subprocess.run(
            ["pgrep", "-f", "beam.smp"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return int(out[0]) if out else None


def wait_until(check: object, timeout_s: float, what: str, process: Process | None = None) -> None:
    """Poll ``check()`` every 0.1 s until true; raise with the process log tail on timeout."""
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if process is not None and not process.alive():
            raise RuntimeError(f"{process.name} exited early:\n{process.tail()}")
        if time.monotonic() > deadline:
            tail = process.tail() if process is not None else ""
            raise RuntimeError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.1)


def http_ok(url: str) -> bool:
    """Whether GET ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def base_env() -> dict[str, str]:
    """The environment for children: this one, with the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@dataclass
class Database:
    """A SecantusDB server started for this benchmark."""

    process: Process
    port: int

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?retryWrites=false&directConnection=true"

    description = "SecantusDB (MongoDB wire protocol, in-memory WiredTiger), one local process"

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
def database(logs: Path) -> Iterator[Database]:
    """A fresh in-memory SecantusDB on a free port, stopped afterwards."""
    port = free_port()
    process = start(
        "secantusd",
        [
            secantus_path(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            ":memory:",
            "--log-level",
            "WARNING",
        ],
        base_env(),
        logs,
    )
    try:
        wait_until(lambda: port_open(port), 60, "SecantusDB", process)
        yield Database(process, port)
    finally:
        process.stop()


def gridlink_available() -> bool:
    """Whether GridLink's code is there to benchmark."""
    return (REPO / "services" / "cli.py").exists() and (REPO / "gateway" / "server.py").exists()


@dataclass
class GridLink:
    """The four GridLink components, each its own process, as ``gridlink run all`` runs them."""

    gateway_port: int
    namespace: str
    db_name: str
    processes: dict[str, Process] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}/ocpp"

    @property
    def gateway(self) -> Process:
        return self.processes["gateway"]

    def all_pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items()}


COMPONENTS = ("authz", "transactions", "commands", "gateway")


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
            "GRIDLINK_GATEWAY_HOST": "127.0.0.1",
            "GRIDLINK_GATEWAY_PORT": str(stack.gateway_port),
            "GRIDLINK_LOG_LEVEL": "WARNING",
        }
        | (extra_env or {})
    )
    try:
        for tag in tags:
            subprocess.run(
                [sys.executable, "-m", "services.cli", "tags", "add", tag],
                env=env,
                cwd=REPO,
                check=True,
                capture_output=True,
                timeout=60,
            )
        for component in COMPONENTS:
            port = free_port()
            stack.processes[component] = start(
                f"gridlink-{component}-{run_id}",
                [sys.executable, "-m", "services.cli", "run", component],
                env
                | {
                    "GRIDLINK_HTTP_PORT": str(port),
                    "GRIDLINK_INSTANCE": f"bench-{component}-{run_id}",
                },
                logs,
            )
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
        for component in reversed(COMPONENTS):
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


def seed_id_tags(db: Database, db_name: str, tags: list[str]) -> None:
    """Insert Accepted id tags (the ``id_tags`` document shape of services/id_tags.py)."""
    if not tags:
        return
    from pymongo import MongoClient
    from pymongo.errors import BulkWriteError

    client: MongoClient[dict[str, object]] = MongoClient(db.url)
    try:
        collection = client[db_name]["id_tags"]
        for start in range(0, len(tags), 1000):
            documents = [
                {"_id": tag, "status": "Accepted", "expiry": None, "parent": None}
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


def disturbances(logs: Path) -> str:
    """Outages GridLink noticed during a run (e.g. another job restarting RabbitMQ), as text."""
    counts: dict[str, int] = {}
    for log in logs.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            for what in ("rabbitmq unreachable", "mongodb unreachable"):
                if what in line:
                    counts[what] = counts.get(what, 0) + 1
    if not counts:
        return "GridLink logged no broker or database outage during the run."
    return (
        "GridLink logged "
        + ", ".join(f"{what} x{n}" for what, n in counts.items())
        + (
            ": either another job restarted the shared broker/database during the run (then the "
            "run is invalid) or GridLink's own probes timed out under the load (a finding)."
        )
    )


def logs_dir() -> Path:
    """A fresh directory for this run's process logs."""
    return Path(tempfile.mkdtemp(prefix="gridlink-bench-"))
