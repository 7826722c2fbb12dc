"""Answered means durable: a fleet keeps a ledger of every CALLRESULT it got; the database is
killed outright (``kill -9``) under that load and restarted with its data directory (by the
keeper ``gridlink run all`` uses); the services recover by themselves, the chargers resend
what was never answered (OCPP 1.6 §3.7), and every answered StartTransaction, MeterValues
sample and StopTransaction is stored — once.

The server runs *without* ``--sync-on-commit`` here, so nothing but GridLink's own write
concern (``j: true`` on every write and bulk write, services/store.py) keeps an answered write
on disk: with ``GRIDLINK_MONGO_JOURNAL=false`` this test loses answered messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from gridlink.database_keeper import EmbeddedDatabase
from tests.charger import Charger, now
from tests.helpers import add_station, add_tag, delete_namespace, new_id, new_tag
from tests.processes import Stack, free_port

pytestmark = pytest.mark.integration

STATIONS = 10
SESSIONS = 6  # per station: StartTransaction, 2 MeterValues, StopTransaction each
SAMPLES = 2
KILL_AFTER = 40  # answers in the ledger when the database is killed (mid-load)
ANSWER_WAIT_S = 3.0  # a charger's wait for an answer before it resends (on a new connection)


@dataclass
class Ledger:
    """Every answer the fleet got, as the chargers would keep it."""

    starts: dict[tuple[str, int], int] = field(default_factory=dict)  # (station, n) -> tx
    samples: list[tuple[str, int, str]] = field(default_factory=list)  # station, tx, value
    stops: dict[int, int] = field(default_factory=dict)  # tx -> meterStop
    refused: list[tuple[str, str, Any]] = field(default_factory=list)  # not Accepted/errors
    answered: int = 0
    resent: int = 0
    killed_at: int | None = None  # answers before the kill
    kill: Callable[[], None] | None = None  # the database's kill -9
    killed: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self) -> None:
        """One more answer; the KILL_AFTER-th kills the database at once (the writes
        answered just now are the ones a crash would lose)."""
        self.answered += 1
        if self.answered == KILL_AFTER and self.kill is not None:
            self.kill()
            self.killed_at = self.answered
            self.killed.set()


class LedgerCharger:
    """One station: reconnects when its connection is closed and resends a transaction
    message until it gets its CALLRESULT (a new unique id each time, as chargers do)."""

    def __init__(self, url: str, station: str, ledger: Ledger) -> None:
        self.url, self.station, self.ledger = url, station, ledger
        self._exit = contextlib.AsyncExitStack()
        self.charger: Charger | None = None

    async def _connected(self) -> Charger:
        while self.charger is None:
            try:
                self.charger = await self._exit.enter_async_context(
                    Charger.connect(self.url, self.station, open_timeout=5))
            except (OSError, InvalidHandshake, TimeoutError):
                await asyncio.sleep(0.2)  # the gateway refuses handshakes during an outage
        return self.charger

    async def _drop(self) -> None:
        self.charger = None
        await self._exit.aclose()
        self._exit = contextlib.AsyncExitStack()

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send until answered; a CALLERROR is kept in the ledger and fails the test."""
        first = True
        while True:
            charger = await self._connected()
            if not first:
                self.ledger.resent += 1
            first = False
            unique_id = uuid.uuid4().hex
            try:
                frame = await charger.send_raw(json.dumps([2, unique_id, action, payload]),
                                               unique_id, timeout=ANSWER_WAIT_S)
            except (TimeoutError, ConnectionClosed):
                await self._drop()
                continue
            assert frame is not None
            if frame[0] != 3:
                self.ledger.refused.append((self.station, action, frame))
                raise AssertionError(f"{self.station}: {action} answered {frame}")
            self.ledger.note()
            return frame[2]  # type: ignore[no-any-return]

    async def run(self, tag: str) -> None:
        try:
            await self.call("BootNotification", {"chargePointVendor": "Ledger",
                                                 "chargePointModel": "L1"})
            for n in range(SESSIONS):
                meter = n * 1000
                answer = await self.call("StartTransaction", {
                    "connectorId": 1, "idTag": tag, "meterStart": meter, "timestamp": now()})
                tx = int(answer["transactionId"])
                self.ledger.starts[(self.station, n)] = tx
                if answer["idTagInfo"]["status"] != "Accepted":
                    self.ledger.refused.append((self.station, "StartTransaction", answer))
                for k in range(1, SAMPLES + 1):
                    value = str(meter + k * 10)
                    await self.call("MeterValues", {
                        "connectorId": 1, "transactionId": tx, "meterValue": [{
                            "timestamp": now(), "sampledValue": [{
                                "value": value, "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh"}]}]})
                    self.ledger.samples.append((self.station, tx, value))
                stop = meter + 500
                await self.call("StopTransaction", {
                    "transactionId": tx, "meterStop": stop, "timestamp": now(),
                    "reason": "Local"})
                self.ledger.stops[tx] = stop
        finally:
            await self._drop()


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
        stations = [new_id("DUR") for _ in range(STATIONS)]
        tags = [new_tag("D") for _ in stations]
        for station, tag in zip(stations, tags, strict=True):
            await add_station(stack, station)
            await add_tag(stack, tag)
        victim = database.process
        assert victim is not None
        ledger = Ledger(kill=lambda: os.kill(victim.pid, signal.SIGKILL))
        fleet = [asyncio.create_task(LedgerCharger(stack.gateway_url, station, ledger)
                                     .run(tag)) for station, tag in zip(stations, tags,
                                                                        strict=True)]
        await asyncio.wait_for(ledger.killed.wait(), 30)  # mid-load
        await asyncio.wait_for(asyncio.gather(*fleet), 90)  # they finish by themselves
        assert database.restarts == 1 and victim.returncode == -signal.SIGKILL
        assert ledger.killed_at is not None and ledger.answered > ledger.killed_at
        assert ledger.refused == []

        db = stack.db()
        assert len(ledger.starts) == STATIONS * SESSIONS
        for (station, n), tx in ledger.starts.items():
            stored = await db.transactions.find_one({"_id": tx})
            assert stored is not None, f"answered StartTransaction {tx} is not stored"
            assert (stored["station"], stored["meter_start"]) == (station, n * 1000)
            assert stored.get("stop") is not None, f"answered StopTransaction {tx} lost"
            assert stored["stop"]["meter_stop"] == ledger.stops[tx]
        for station in stations:  # once: a resent start found the one its first made
            assert await db.transactions.count_documents({"station": station}) == SESSIONS
        assert await db.orphan_stops.count_documents({"station": {"$in": stations}}) == 0
        assert len(ledger.samples) == STATIONS * SESSIONS * SAMPLES
        for station, tx, value in ledger.samples:
            assert await db.meter_values.count_documents(
                {"station": station, "transaction_id": tx, "value": value}) == 1, \
                f"answered MeterValues sample {value} of {tx} is not stored once"
        print(f"answered {ledger.answered} ({ledger.killed_at} before the kill), "
              f"resent {ledger.resent}")
    finally:
        await stack.stop()
        await database.stop()
        await asyncio.wait_for(keeper, 30)
        await delete_namespace(amqp_url, namespace)
