"""Answered means durable: a simulated fleet (GridLink's simulator, keeping a ledger of every
CALLRESULT it got: simulator/ledger.py) runs charging sessions; the database is killed
outright (``kill -9``) under that load and restarted with its data directory (by the keeper
``gridlink run all`` uses); the services recover by themselves, the chargers resend what was
never answered (OCPP 1.6 §3.7), and every answered StartTransaction, MeterValues sample and
StopTransaction is stored — once (tests/faults/reconcile.py).

The server runs *without* ``--sync-on-commit`` here, so nothing but GridLink's own write
concern (``j: true`` on every write and bulk write, services/store.py) keeps an answered write
on disk: with ``GRIDLINK_MONGO_JOURNAL=false`` this test loses answered messages.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import pytest

from gridlink.database_keeper import EmbeddedDatabase
from simulator import Fleet, FleetPlan
from simulator.ledger import Ledger
from tests.faults.reconcile import reconcile
from tests.helpers import add_station, add_tag, delete_namespace
from tests.processes import Stack, free_port, wait_for

pytestmark = pytest.mark.integration

STATIONS = 10
KILL_AFTER = 40  # transaction messages answered when the database is killed (mid-load)


async def test_every_answered_message_survives_a_database_crash(amqp_url: str,
                                                                tmp_path: Path) -> None:
    database = EmbeddedDatabase(free_port(), str(tmp_path / "db"),
                                log_file=tmp_path / "secantusd.log", sync_on_commit=False,
                                first_backoff_s=0.2)
    database.start()
    keeper = asyncio.create_task(database.keep())
    namespace = f"gldurable-{uuid.uuid4().hex[:8]}"
    stack = Stack(amqp_url=amqp_url, mongo_url=database.url, namespace=namespace,
                  database="durable", logs=tmp_path)
    try:
        await stack.start_services()
        await stack.start_gateway()
        run = uuid.uuid4().hex[:5].upper()
        plan = FleetPlan(url=stack.gateway_url, chargers=STATIONS, rate=25.0,
                         duration_s=12.0, ramp_s=1.0, id_prefix=f"DUR{run}-",
                         id_tag=f"D{run}{{n}}", meter_values_per_session=2, call_timeout_s=3.0,
                         connect_timeout_s=5.0, fail_fast=False, settle_s=90.0,
                         transaction_message_attempts=40, transaction_message_retry_s=1)
        stations = [plan.charger_id(i) for i in range(STATIONS)]
        for index, station in enumerate(stations):
            await add_station(stack, station)
            await add_tag(stack, plan.id_tag_for(index))
        victim = database.process
        assert victim is not None
        ledger = Ledger()
        fleet = asyncio.create_task(Fleet(plan, ledger=ledger).run())
        await wait_for(lambda: ledger.answers >= KILL_AFTER, timeout=60, what="load")
        killed_at = ledger.answers
        os.kill(victim.pid, signal.SIGKILL)  # the writes answered just now are at risk
        await asyncio.wait_for(fleet, 150)  # they finish by themselves
        assert database.restarts == 1 and victim.returncode == -signal.SIGKILL
        assert ledger.answers > killed_at
        assert ledger.of("StartTransaction", answered=True), "no session was answered"
        result = await reconcile(ledger, stack.db(), stations)
        assert result.problems == [], result.problems[:20]
        assert result.clean and result.transactions > 0
        print(f"{ledger.counts()}, {killed_at} answered before the kill")
    finally:
        await stack.stop()
        await database.stop()
        await asyncio.wait_for(keeper, 30)
        await delete_namespace(amqp_url, namespace)
