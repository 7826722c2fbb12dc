"""The embedded MongoDB-compatible server for development and tests: SecantusDB.

SecantusDB is GPL-licensed, so GridLink never imports it: it runs as its own process
(``secantusd-py``) and the services reach it over the MongoDB wire protocol, exactly as they
reach a real MongoDB replica set in production.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from services.errors import ConfigurationError
from services.settings import embedded_mongo_url


def daemon_path() -> str:
    """Where ``secantusd-py`` is: next to this Python, or on PATH."""
    beside = Path(sys.executable).with_name("secantusd-py")
    if beside.exists():
        return str(beside)
    found = shutil.which("secantusd-py")
    if found is None:
        raise ConfigurationError(
            "secantusd-py not found: install the embedded extra (pip install -e '.[embedded]')"
            " or set GRIDLINK_MONGO_URL"
        )
    return found


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def start(port: int, storage: str, *, log_file: Path | None = None,
          timeout_s: float = 30.0) -> subprocess.Popen[bytes] | None:
    """Start SecantusDB on ``port`` (None if one already listens there) and wait for it."""
    if port_open(port):
        return None
    if storage != ":memory:":
        Path(storage).mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(
        [daemon_path(), "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage,
         "--log-level", "WARNING"],
        stdout=out, stderr=subprocess.STDOUT, env={**os.environ},
    )
    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        if process.poll() is not None:
            raise ConfigurationError(f"secantusd-py exited with code {process.returncode}")
        if time.monotonic() > deadline:
            process.terminate()
            raise ConfigurationError(f"secantusd-py did not listen on port {port} in time")
        time.sleep(0.1)
    return process


def url(port: int) -> str:
    """The URL the services use to reach the embedded server on ``port``."""
    return embedded_mongo_url(port)
