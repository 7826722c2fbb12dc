"""The simulated charger's ledger and its transaction-message retries (OCPP 1.6 §3.7)."""

from __future__ import annotations

import argparse
import itertools
import json
from typing import Any

from sim_helpers import ANSWERS, Bench
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from simulator import cli
from simulator.charger import Charger
from simulator.fleet import Fleet
from simulator.ledger import Ledger
from simulator.plan import FleetPlan


def _bench(**config: Any) -> tuple[Bench, Ledger]:
    bench = Bench(meter_values_per_session=2, call_timeout_s=5.0, **config)
    ledger = Ledger(clock=lambda: bench.now)
    bench.charger.ledger = ledger
    bench.boot()
    return bench, ledger


def _to_start(bench: Bench) -> list[Any]:
    """Step the script (answering Authorize and the statuses) up to its StartTransaction."""
    while True:
        frame = bench.step()
        assert frame is not None
        if frame[2] == "StartTransaction":
            return frame
        bench.reply(frame)


def test_answered_transaction_messages_are_in_the_ledger_with_their_result() -> None:
    bench, ledger = _bench()
    start = _to_start(bench)
    bench.reply(start)
    (entry,) = ledger.of("StartTransaction", answered=True)
    assert entry.station == "CP-1" and entry.payload == start[3]
    assert entry.result == {"transactionId": 42, "idTagInfo": {"status": "Accepted"}}
    assert ledger.counts() == {"messages": 1, "answered": 1, "resends": 0, "gave_up": 0}


def test_a_timed_out_start_is_resent_unchanged_after_the_retry_interval() -> None:
    bench, ledger = _bench(transaction_message_attempts=3, transaction_message_retry_s=7)
    start = _to_start(bench)
    bench.now += 5.0
    assert bench.charger.timer(bench.now) == []  # timed out: waits the retry interval
    assert bench.charger.deadline() == bench.now + 7
    assert bench.charger.step(bench.now) == []  # nothing overtakes it
    bench.now += 7
    (again,) = [json.loads(f) for f in bench.charger.timer(bench.now)]
    assert again[2] == "StartTransaction" and again[1] != start[1]
    assert again[3] == start[3]  # the same message: same timestamp, meterStart
    bench.reply(again)
    (entry,) = ledger.of("StartTransaction")
    assert (entry.sends, entry.errors, entry.answered) == (2, ["timeout"], True)


def test_a_callerror_is_retried_then_the_message_is_discarded_after_its_attempts() -> None:
    bench, ledger = _bench(transaction_message_attempts=2, transaction_message_retry_s=1)
    start = _to_start(bench)
    assert bench.error(start, "InternalError") == []
    bench.now += 1
    (again,) = [json.loads(f) for f in bench.charger.timer(bench.now)]
    assert again[2] == "StartTransaction" and again[3] == start[3]
    bench.error(again, "InternalError")  # the second of two attempts: given up
    (entry,) = ledger.of("StartTransaction")
    assert entry.gave_up and not entry.answered and entry.errors == ["InternalError"] * 2
    assert ledger.unanswered() == [entry]
    assert not bench.charger.holds_transaction_messages


def test_a_resent_meter_values_repeats_its_reading() -> None:
    bench, ledger = _bench()
    bench.reply(_to_start(bench))
    while True:
        frame = bench.step()
        assert frame is not None
        if frame[2] == "MeterValues":
            break
        bench.reply(frame)
    bench.charger.disconnected(bench.tick())
    assert bench.charger.holds_transaction_messages
    calls = bench.boot()
    assert calls[0][2] == "MeterValues" and calls[0][3] == frame[3]
    (entry,) = ledger.of("MeterValues")
    assert entry.sends == 2 and entry.answered


async def test_a_connection_lost_without_a_close_frame_is_reconnected_and_resent() -> None:
    """Regression: the reason of a connection lost without a close frame (a gateway killed)
    was read from an attribute the asyncio connection lacks; the AttributeError ended the
    charger's driver, and the charger never reconnected nor resent its queued messages."""
    dropped: set[str] = set()
    ids = itertools.count(1)

    async def handle(ws: ServerConnection) -> None:
        station = ws.request.path.rsplit("/", 1)[-1] if ws.request else "?"
        async for text in ws:
            frame = json.loads(text)
            if frame[2] == "StartTransaction" and station not in dropped:
                dropped.add(station)
                ws.transport.abort()  # gone, unanswered: as a process killed outright
                return
            answer = dict(ANSWERS[frame[2]])
            if frame[2] == "StartTransaction":
                answer["transactionId"] = next(ids)
            await ws.send(json.dumps([3, frame[1], answer]))

    async with serve(handle, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp1.6")]) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        plan = FleetPlan(url=f"ws://127.0.0.1:{port}/ocpp", chargers=2, rate=40, duration_s=2.0,
                         ramp_s=0.1, meter_values_per_session=1, fail_fast=False,
                         settle_s=10.0, jitter=False)
        ledger = Ledger()
        fleet = Fleet(plan, ledger=ledger)
        stats = await fleet.run()
    assert dropped == {"SIM1", "SIM2"}
    assert stats.disconnects["connection lost"] == 2 and not stats.internal_errors
    starts = list(ledger.of("StartTransaction"))
    assert starts and all(entry.answered for entry in starts)
    assert sorted(entry.sends for entry in starts)[-2:] == [2, 2]  # the dropped ones, resent


def test_the_command_line_sets_the_transaction_message_keys() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--url", "ws://x/ocpp", "--chargers", "1",
                              "--transaction-attempts", "5", "--transaction-retry", "2"])
    config = cli.plan_from_args(args).charger_config(0)
    charger = Charger(config)
    assert charger.configuration.get_int("TransactionMessageAttempts") == 5
    assert charger.configuration.get_int("TransactionMessageRetryInterval") == 2
