"""Starting and watching the processes a benchmark measures (the systems themselves are in
:mod:`bench.systems`).

Every process is started here, by this benchmark, and stopped by its own pid (SIGTERM, then
SIGKILL after a grace period).  Resource samples come from ``/proc/<pid>``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
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
