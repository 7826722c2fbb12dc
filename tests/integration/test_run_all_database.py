"""``gridlink run all`` keeps its embedded database: killed outright (``kill -9``), it is
started again with the same data directory and port, the components recover by themselves
(no restart of theirs), what was answered before is still there, and a SIGTERM still ends
everything cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from services.store import client_for
from tests.charger import Charger, now
from tests.helpers import delete_namespace
from tests.processes import answers, free_port, wait_for

pytestmark = pytest.mark.integration


def free_ports(count: int) -> int:
    """A port ``p`` such that p .. p+count-1 are free (run all numbers its components' probe
    ports from GRIDLINK_HTTP_PORT on)."""
    while True:
        base = free_port()
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()


def children_of(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def database_of(launcher: int) -> int | None:
    """The pid of the launcher's secantusd-py, if it has one running."""
    for child in children_of(launcher):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state != "Z" and any(arg.endswith(b"secantusd-py") for arg in argv):
            return child
    return None


async def test_run_all_restarts_a_killed_database_and_recovers(amqp_url: str,
                                                               tmp_path: Path) -> None:
    namespace = f"glrunall-{uuid.uuid4().hex[:8]}"
    db_port, gateway_port, http_port = free_port(), free_port(), free_ports(6)
    env = {**os.environ, "GRIDLINK_AMQP_URL": amqp_url, "GRIDLINK_NAMESPACE": namespace,
           "GRIDLINK_DATA_DIR": str(tmp_path / "data"),
           "GRIDLINK_EMBEDDED_MONGO_PORT": str(db_port),
           "GRIDLINK_GATEWAY_PORT": str(gateway_port), "GRIDLINK_HTTP_PORT": str(http_port),
           "GRIDLINK_API_PORT": str(free_port()),
           "GRIDLINK_FILES_PORT": "0", "GRIDLINK_ALLOW_SECURITY_PROFILE_0": "true",
           "GRIDLINK_ACCEPT_UNKNOWN_STATIONS": "true",
           "GRIDLINK_HEALTH_REPORT_INTERVAL_S": "0.5", "GRIDLINK_BACKEND_HEALTH_TTL_S": "3"}
    env.pop("GRIDLINK_MONGO_URL", None)
    log = (tmp_path / "run-all.log").open("ab")
    launcher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gridlink", "run", "all", env=env, stdout=log, stderr=log)
    readyz = f"http://127.0.0.1:{gateway_port}/readyz"
    # each component's probes: GRIDLINK_HTTP_PORT + 1, 2, ... (gridlink/launcher.py)
    probes = [f"http://127.0.0.1:{http_port + n}/readyz" for n in range(1, 6)]

    async def all_ready() -> bool:
        return all([await answers(probe, 200) for probe in probes])

    url = f"ws://127.0.0.1:{gateway_port}/ocpp"
    second: int | None = None
    client: Any = client_for(f"mongodb://127.0.0.1:{db_port}/?directConnection=true",
                             app_name="run-all-test")
    try:
        await wait_for(all_ready, timeout=60, what="every component ready")
        components = set(children_of(launcher.pid))
        async with Charger.connect(url, "RUNALL-1") as charger:
            await charger.boot()
            before = await charger.result("StartTransaction", {
                "connectorId": 1, "idTag": "RA1", "meterStart": 0, "timestamp": now()})

        first = database_of(launcher.pid)
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await wait_for(lambda: database_of(launcher.pid) not in (None, first), timeout=30,
                       what="the database restarted")
        second = database_of(launcher.pid)
        await wait_for(all_ready, timeout=60, what="every component ready again")
        assert await answers(readyz, 200)
        assert launcher.returncode is None
        # The components were not restarted: they recovered by themselves.
        assert components - {first} <= set(children_of(launcher.pid))

        async with Charger.connect(url, "RUNALL-1") as charger:
            stop = await charger.result("StopTransaction", {
                "transactionId": before["transactionId"], "meterStop": 700,
                "timestamp": now(), "reason": "Local"})
            assert "idTagInfo" in stop or stop == {}
        stored = await client["gridlink"]["transactions"].find_one(
            {"_id": before["transactionId"]})
        assert stored is not None and stored["stop"]["meter_stop"] == 700
        assert "embedded database restarted" in (tmp_path / "run-all.log").read_text()
    finally:
        await client.close()
        if launcher.returncode is None:
            launcher.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(launcher.wait(), 60)
        except TimeoutError:  # a second signal ends every child at once: leave nothing behind
            launcher.send_signal(signal.SIGTERM)
            await asyncio.wait_for(launcher.wait(), 30)
            raise
        finally:
            log.close()
        await delete_namespace(amqp_url, namespace)
    assert code == 0, (tmp_path / "run-all.log").read_text()[-3000:]
    assert second is not None and not alive(second)  # the restarted database ended with it
