"""The embedded MongoDB-compatible server for development and tests: SecantusDB.

SecantusDB is GPL-licensed, so GridLink never imports it: it runs as its own process
(``secantusd-py``) and the services reach it over the MongoDB wire protocol, exactly as they
reach a real MongoDB replica set in production.

Durability (measured with SecantusDB 0.7.0b3 on WiredTiger 11.2.0, docs/operations.md): by
default the server commits a write to WiredTiger's journal *buffer* and answers; a
``kill -9`` then loses writes it had acknowledged (w:1 and w:"majority" alike). A write
with ``j: true`` is fsynced to the journal before the answer, and so is every write when the
server runs with ``--sync-on-commit``. GridLink asks ``j: true`` of every write
(:mod:`services.store`) and starts an on-disk server with ``--sync-on-commit`` as well, so
that nothing written to it — by GridLink or by any other client — is acknowledged before it
is on disk.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
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


def command(port: int, storage: str, *, sync_on_commit: bool = True) -> list[str]:
    """The command line of the server on ``port`` keeping its files in ``storage``
    (``:memory:``: nothing kept). ``sync_on_commit``: every commit is fsynced to the journal
    before it is acknowledged, whatever the client's write concern (on-disk storage only)."""
    argv = [daemon_path(), "--host", "127.0.0.1", "--port", str(port), "--storage-path",
            storage, "--log-level", "WARNING"]
    if sync_on_commit and storage != ":memory:":
        argv.append("--sync-on-commit")
    return argv


def start(port: int, storage: str, *, log_file: Path | None = None, timeout_s: float = 30.0,
          sync_on_commit: bool = True, child_setup: Callable[[], None] | None = None,
          ) -> subprocess.Popen[bytes] | None:
    """Start SecantusDB on ``port`` (None if one already listens there) and wait for it."""
    if port_open(port):
        return None
    process = spawn(port, storage, log_file=log_file, sync_on_commit=sync_on_commit,
                    child_setup=child_setup)
    wait_listening(process, port, timeout_s=timeout_s)
    return process


def spawn(port: int, storage: str, *, log_file: Path | None = None, sync_on_commit: bool = True,
          child_setup: Callable[[], None] | None = None) -> subprocess.Popen[bytes]:
    """Start SecantusDB on ``port`` without waiting for it.

    ``child_setup`` runs in the child before the server starts; with it the server runs in a
    session of its own (a terminal's Ctrl-C does not reach it: whoever started it stops it
    when the components have drained)."""
    if storage != ":memory:":
        Path(storage).mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(
        command(port, storage, sync_on_commit=sync_on_commit),
        stdout=out, stderr=subprocess.STDOUT, env={**os.environ},
        start_new_session=child_setup is not None, preexec_fn=child_setup,
    )
    if log_file:
        out.close()  # the server has its own copy
    return process


def wait_listening(process: subprocess.Popen[bytes], port: int, *,
                   timeout_s: float = 30.0) -> None:
    """Until the server listens on ``port`` (ConfigurationError if it exits or takes longer
    than ``timeout_s``; it is stopped then)."""
    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        if process.poll() is not None:
            raise ConfigurationError(f"secantusd-py exited with code {process.returncode}")
        if time.monotonic() > deadline:
            process.terminate()
            raise ConfigurationError(f"secantusd-py did not listen on port {port} in time")
        time.sleep(0.1)


def url(port: int) -> str:
    """The URL the services use to reach the embedded server on ``port``."""
    return embedded_mongo_url(port)
