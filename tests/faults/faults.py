"""The faults the scenarios inject (:mod:`tests.faults.scenarios`): each breaks something in
the cluster under the fleet's load and returns once the harness has undone it (the killed
process restarted, the broker started again, the partition healed), with what it saw itself
beyond the ledger (:class:`Outcome`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed

from gridlink.client import send_command
from services.envelope import FINAL_STATUSES
from services.settings import load_settings
from simulator import Fleet
from tests.charger import Charger
from tests.faults.cluster import Cluster
from tests.processes import wait_for


@dataclass
class Outcome:
    """What a fault saw itself, beyond the ledger: commands sent twice or never answered,
    sessions kept twice."""

    duplicated: int = 0
    unanswered: int = 0
    storm: bool = False  # the drain closed chargers faster than its batches
    notes: list[str] = field(default_factory=list)


#: A fault: break something in the cluster (under the load of ``fleet``); return once the
#: harness has undone it, with what it saw (or None).
Fault = Callable[[Cluster, Fleet], Awaitable[Outcome | None]]


def kill_replica(name: str) -> Fault:
    """``kill -9`` of one process (``transactions-1``); back once the supervisor restarted it."""

    async def fault(cluster: Cluster, fleet: Fleet) -> None:
        unit = cluster.unit(name)
        restarts = unit.restarts
        unit.signal(signal.SIGKILL)
        await cluster.supervisor.restart_of(unit, restarts + 1)

    fault.__name__ = f"kill -9 {name}"
    return fault


async def kill_database(cluster: Cluster, fleet: Fleet) -> None:
    """``kill -9`` of the embedded database; back once its keeper restarted it (same data)."""
    database = cluster.database
    assert database is not None and database.process is not None
    restarts = database.restarts
    os.kill(database.process.pid, signal.SIGKILL)
    await wait_for(lambda: database.restarts > restarts, timeout=60,
                   what="the database restarted")


async def restart_broker(cluster: Cluster, fleet: Fleet, outage_s: float = 3.0) -> None:
    """Stop RabbitMQ on the harness's own node, keep it down ``outage_s``, start it again."""
    broker = cluster.broker
    assert broker is not None
    await asyncio.to_thread(broker.stop_app)
    await asyncio.sleep(outage_s)  # the length of the outage, not a synchronisation
    await asyncio.to_thread(broker.start_app)


async def rolling_restart(cluster: Cluster, fleet: Fleet) -> Outcome:
    """SIGTERM each gateway in turn (it drains); the next once the last is back and ready.
    The drain must close chargers no faster than its batches (GRIDLINK_DRAIN_BATCH_SIZE per
    GRIDLINK_DRAIN_BATCH_INTERVAL_S): the fleet's 1012 closes are sampled meanwhile, and the
    most within one interval is reported."""
    batch = int(cluster.stack.env()["GRIDLINK_DRAIN_BATCH_SIZE"]) if cluster.stack else 0
    interval = float(cluster.stack.env()["GRIDLINK_DRAIN_BATCH_INTERVAL_S"]) \
        if cluster.stack else 1.0
    samples: list[tuple[float, int]] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append((time.monotonic(), fleet.stats.disconnects["closed by server 1012"]))
            await asyncio.sleep(0.02)  # sampling, not synchronisation

    sampler = asyncio.create_task(sample())
    try:
        for unit in cluster.gateways:
            restarts = unit.restarts
            unit.signal(signal.SIGTERM)
            await cluster.supervisor.restart_of(unit, restarts + 1)
            await cluster.wait_ready([unit])
    finally:
        done.set()
        await sampler
    # Closes within any window shorter than one interval (a batch may straddle the edge).
    peak = max((count - start for t0, start in samples for t, count in samples
                if 0 <= t - t0 < interval * 0.9), default=0)
    outcome = Outcome(notes=[f"drain: at most {peak} chargers closed within "
                             f"{interval * 0.9:.2f} s (batch {batch} per {interval} s)"])
    if peak > batch:
        outcome.notes.append(f"STORM: {peak} closes within one batch interval > {batch}")
        outcome.storm = True
    return outcome


async def duplicate_identity(cluster: Cluster, fleet: Fleet, rounds: int = 8) -> Outcome:
    """A fleet station's id connects twice at once, straight to each gateway (as a cloned
    or misconfigured charger would), boots on both, repeatedly. The real charger is pushed
    off each time and comes back; GridLink must not keep both sessions of one id open."""
    outcome = Outcome()
    gateways = cluster.gateways[:2]
    for number in range(rounds):
        station = fleet.links[number % len(fleet.links)].charger.id
        urls = [f"ws://127.0.0.1:{unit.port}/ocpp/{station}" for unit in gateways]
        async with contextlib.AsyncExitStack() as stack:
            twins = await asyncio.gather(*(stack.enter_async_context(
                Charger.connect(url.rsplit("/", 1)[0], station, open_timeout=10))
                for url in urls), return_exceptions=True)
            open_ = [t for t in twins if not isinstance(t, BaseException)]
            await asyncio.gather(*(_boot_quietly(t) for t in open_))
            # The server must close all but one: wait (bounded) for the others to close.
            try:
                async with asyncio.timeout(10):
                    while sum(1 for t in open_ if t.ws.close_code is None) > 1:
                        await asyncio.wait([asyncio.create_task(t.ws.wait_closed())
                                            for t in open_ if t.ws.close_code is None],
                                           return_when=asyncio.FIRST_COMPLETED)
            except TimeoutError:
                outcome.duplicated += 1
                outcome.notes.append(f"{station}: two sessions of one id stayed open 10 s")
        outcome.notes.append(f"round {number}: {station} opened {len(open_)} of 2")
    return outcome


async def _boot_quietly(charger: Charger) -> None:
    with contextlib.suppress(ConnectionClosed, TimeoutError, AssertionError):
        await charger.boot()


def command_storm(commands: int = 50) -> Fault:
    """``commands`` concurrent commands (DataTransfer, each with its own messageId) to one
    charger of the fleet while both gateways restart in turn: each must end with a final
    status, and the charger must receive none twice."""

    async def fault(cluster: Cluster, fleet: Fleet) -> Outcome:
        assert cluster.stack is not None and cluster.broker is not None
        charger = fleet.links[0].charger
        received: Counter[str] = Counter()
        answer = charger._answer

        def recording(frame: list[Any], now: float, out: list[str]) -> None:
            if frame[2] == "DataTransfer":
                received[str(frame[3].get("messageId"))] += 1
            answer(frame, now, out)

        charger._answer = recording  # type: ignore[method-assign]
        settings = load_settings(amqp_url=cluster.broker.amqp_url,
                                 namespace=cluster.stack.namespace)
        sends = [asyncio.create_task(send_command(
            settings, charger.id, "DataTransfer",
            {"vendorId": charger.config.vendor, "messageId": str(n), "data": "storm"},
            timeout_s=20)) for n in range(commands)]
        await rolling_restart(cluster, fleet)
        results = await asyncio.gather(*sends, return_exceptions=True)
        charger._answer = answer  # type: ignore[method-assign]
        outcome = Outcome()
        statuses: Counter[str] = Counter()
        for n, result in enumerate(results):
            if isinstance(result, BaseException) or result is None:
                outcome.unanswered += 1
                statuses[f"no result ({type(result).__name__})"] += 1
            else:
                statuses[result.status] += 1
                if result.status not in FINAL_STATUSES:
                    outcome.unanswered += 1
                if result.status == "accepted" and received[str(n)] != 1:
                    outcome.duplicated += 1  # accepted, but not received exactly once
        twice = {m: k for m, k in received.items() if k > 1}
        outcome.duplicated += len(twice)
        outcome.notes.append(f"command results {dict(statuses)}; received twice {twice}")
        return outcome

    fault.__name__ = "command storm"
    return fault


async def network_faults(cluster: Cluster, fleet: Fleet, hold_s: float = 5.0) -> Outcome:
    """Between the second replica of each service and its backends (TCP proxies): every
    RabbitMQ connection reset; RabbitMQ, then MongoDB, partitioned for ``hold_s`` (nothing
    flows, connections stay open); MongoDB slowed by 300 ms per chunk for ``hold_s``. The
    other replica carries on; the chargers resend what timed out meanwhile."""
    amqp, mongo = cluster.amqp_proxy, cluster.mongo_proxy
    assert amqp is not None and mongo is not None
    steps = []
    amqp.drop()
    steps.append("amqp reset")
    for name, proxy in (("amqp", amqp), ("mongo", mongo)):
        proxy.pause()
        await asyncio.sleep(hold_s)  # the partition's length, not a synchronisation
        proxy.resume()
        steps.append(f"{name} paused {hold_s} s")
    mongo.delay_s = 0.3
    await asyncio.sleep(hold_s)  # how long the link stays slow
    mongo.delay_s = 0.0
    steps.append(f"mongo delayed 0.3 s for {hold_s} s")
    return Outcome(notes=[f"network: {', '.join(steps)}; proxied connections "
                          f"amqp {amqp.connections}, mongo {mongo.connections}"])


