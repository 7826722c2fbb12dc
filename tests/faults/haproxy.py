"""Debian's HAProxy in front of the harness's gateways, as in deploy/haproxy/haproxy.cfg
(leastconn, health checks on /readyz so a draining or dead gateway gets no new chargers,
a long tunnel timeout for WebSockets), on loopback ports of its own."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.processes import Process, free_port

CONFIG = """\
# The fault harness's load balancer (tests/faults/haproxy.py).
global
    maxconn 5000

defaults
    mode http
    timeout connect 2s
    timeout client 65s
    timeout server 65s
    timeout http-request 10s
    timeout tunnel 1h
    # A gateway killed between two health checks refuses the connection: try the other.
    retries 3
    option redispatch

frontend ocpp
    bind 127.0.0.1:{port}
    default_backend gateways

backend gateways
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    default-server check inter 250ms fall 1 rise 2
{servers}
"""


def write_config(path: Path, port: int, gateways: list[tuple[str, int, int]]) -> None:
    """HAProxy on ``port`` for ``gateways`` (name, OCPP port, probe port)."""
    servers = "\n".join(f"    server {name} 127.0.0.1:{ocpp} check port {probe}"
                        for name, ocpp, probe in gateways)
    path.write_text(CONFIG.format(port=port, servers=servers))


def check_config(path: Path) -> None:
    """``haproxy -c``: fails with HAProxy's own words."""
    result = subprocess.run([_haproxy(), "-c", "-f", str(path)], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"haproxy -c: {result.stdout}{result.stderr}")


def _haproxy() -> str:
    found = shutil.which("haproxy", path="/usr/sbin:/usr/bin:/sbin")
    if found is None:
        raise RuntimeError("haproxy is not installed: apt-get install haproxy (make test-tools)")
    return found


def start_haproxy(directory: Path, gateways: list[tuple[str, int, int]]) -> Process:
    """Start HAProxy in the foreground (``-db``) for ``gateways``; its port is the
    Process's."""
    port = free_port()
    config = directory / "haproxy.cfg"
    write_config(config, port, gateways)
    check_config(config)
    log = directory / "haproxy.log"
    popen = subprocess.Popen([_haproxy(), "-db", "-f", str(config)], stdout=log.open("ab"),
                             stderr=subprocess.STDOUT)
    return Process("haproxy", popen, port, log)
