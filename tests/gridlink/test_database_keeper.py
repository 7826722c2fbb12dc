"""The embedded database ``gridlink run all`` keeps: killed outright (``kill -9``), it is
started again with the same data directory and port, and every write it acknowledged is
still there; stopped, it stays stopped."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from gridlink.database_keeper import EmbeddedDatabase
from services.store import client_for
from tests.processes import free_port, wait_for


async def test_a_killed_database_is_restarted_with_its_data(tmp_path: Path) -> None:
    database = EmbeddedDatabase(free_port(), str(tmp_path / "db"),
                                log_file=tmp_path / "secantusd.log", first_backoff_s=0.1)
    database.start()
    keeper = asyncio.create_task(database.keep())
    client: AsyncMongoClient[dict[str, Any]] = client_for(database.url, app_name="keeper-test")
    try:
        samples = client["keeper"]["samples"]
        await samples.insert_many([{"_id": n} for n in range(100)])  # acknowledged: j:true
        first = database.process
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        await wait_for(lambda: database.restarts == 1, timeout=30, what="a restart")
        assert database.process is not None and database.process.pid != first.pid
        assert first.returncode == -signal.SIGKILL
        # The same client reconnects by itself and finds every acknowledged write.
        assert await samples.count_documents({}) == 100
        await samples.insert_one({"_id": "after"})
    finally:
        await client.close()
        await database.stop()
        await asyncio.wait_for(keeper, 30)
    assert database.process is not None and database.process.returncode == 0  # SIGTERM: clean
    assert database.restarts == 1  # stopping is not dying: no restart


async def test_an_on_disk_server_syncs_every_commit(tmp_path: Path) -> None:
    from gridlink import embedded_db

    assert "--sync-on-commit" in embedded_db.command(1, str(tmp_path))
    assert "--sync-on-commit" not in embedded_db.command(1, ":memory:")
    assert "--sync-on-commit" not in embedded_db.command(1, str(tmp_path), sync_on_commit=False)
