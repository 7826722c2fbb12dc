"""The fault scenarios: each runs a fleet under load, injects its faults mid-load, lets the
fleet deliver what it still holds, and reconciles its ledger with the database.

A scenario is a name, what it proves, and a list of :data:`Fault` s (coroutines that break
something and return once the harness has undone it: the killed process restarted, the
broker started again). :func:`run_scenario` measures the time from each fault until every
component is ready again and the fleet is answered again (``recover_s``, the worst of its
faults), and gives a :class:`Row` of the table :func:`table` prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed

from gridlink.client import send_command
from services.envelope import FINAL_STATUSES
from services.settings import load_settings
from simulator import Fleet, FleetPlan
from simulator.ledger import Ledger
from tests.charger import Charger
from tests.faults.cluster import Cluster
from tests.faults.reconcile import Reconciliation, reconcile
from tests.helpers import add_station, add_tag
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


@dataclass(frozen=True)
class Load:
    """The fleet a scenario runs: its size, pace and length."""

    chargers: int = 20
    connectors: int = 2
    rate: float = 40.0  # charger-initiated messages per second across the fleet
    duration_s: float = 40.0
    meter_values: int = 3  # MeterValues per session
    fault_every: int = 150  # answered transaction messages before each fault (mid-load)
    settle_s: float = 120.0  # after the run: time to deliver what the chargers still hold


@dataclass(frozen=True)
class Scenario:
    name: str
    proves: str
    faults: tuple[Fault, ...]
    load: Load = Load()


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    proves: str
    result: Reconciliation
    recover_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.result.clean and not any("batch rate" in p for p in self.result.problems)


# --- faults ---------------------------------------------------------------------------------


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


# --- running one ----------------------------------------------------------------------------


async def _register(cluster: Cluster, plan: FleetPlan) -> list[str]:
    assert cluster.stack is not None
    stations = [plan.charger_id(i) for i in range(plan.chargers)]
    for index, station in enumerate(stations):
        await add_station(cluster.stack, station)
        await add_tag(cluster.stack, plan.id_tag_for(index))
    return stations


def plan_for(cluster: Cluster, load: Load) -> FleetPlan:
    """The fleet of one run: stations and tags no other run uses."""
    run = uuid.uuid4().hex[:5].upper()
    return FleetPlan(
        url=cluster.url, chargers=load.chargers, connectors=load.connectors,
        profile="realistic", duration_s=load.duration_s, rate=load.rate,
        id_prefix=f"FLT{run}-", id_tag=f"T{run}{{n}}", ramp_s=2.0,
        call_timeout_s=5.0, connect_timeout_s=5.0, close_grace_s=5.0,
        meter_values_per_session=load.meter_values, validate="first", fail_fast=False,
        # A charger that tries long enough to outlast any outage of these scenarios:
        transaction_message_attempts=30, transaction_message_retry_s=1,
        settle_s=load.settle_s)


async def _snapshot(fleet: Fleet, after_s: float, into: list[str]) -> None:
    """Note where each charger still holding transaction messages ``after_s`` into the
    run is (the run cleans that state up when it ends)."""
    await asyncio.sleep(after_s)
    now = time.monotonic()
    for link in fleet.links:
        charger = link.charger
        if charger.holds_transaction_messages:
            out = charger.outstanding
            into.append(
                f"state of {charger.id}: {charger.registration}, connected {link.ws is not None}"
                f", outstanding {out and (out.pending.action, round(out.deadline - now, 1))}"
                f", queue {[p.action for p in charger.queue]}, timer in "
                f"{link.timer_at - now:.1f}")


async def run_scenario(cluster: Cluster, scenario: Scenario) -> Row:
    """Run the fleet, inject the faults one after the other mid-load, reconcile."""
    load = scenario.load
    plan = plan_for(cluster, load)
    stations = await _register(cluster, plan)
    ledger = Ledger()
    fleet = Fleet(plan, ledger=ledger)
    run = asyncio.create_task(fleet.run())
    snapshot: list[str] = []
    watcher = asyncio.create_task(_snapshot(fleet, load.duration_s + 20, snapshot))
    recover = 0.0
    seen: list[Outcome] = []
    try:
        for number, fault in enumerate(scenario.faults, start=1):
            await wait_for(lambda n=number: ledger.answers >= n * load.fault_every or run.done(),
                           timeout=load.duration_s + 60, what="load before the fault")
            if run.done():
                raise AssertionError(f"the fleet ended before fault {number}: "
                                     f"{ledger.answers} answers")
            began = time.monotonic()
            outcome = await fault(cluster, fleet)
            if outcome is not None:
                seen.append(outcome)
            await cluster.wait_ready()
            restored = time.monotonic()
            await wait_for(lambda r=restored: ledger.answered_since(r) > 0 or run.done(),
                           timeout=120, what="an answer after the fault")
            recover = max(recover, time.monotonic() - began)
        stats = await run
    finally:
        watcher.cancel()
        if not run.done():
            fleet.stop()
            await asyncio.gather(run, return_exceptions=True)
    result = await reconcile(ledger, cluster.db(), stations)
    result.problems.extend(snapshot)
    notes = [f"{ledger.counts()}", f"fleet disconnects {dict(stats.disconnects)}",
             f"simulator errors {dict(stats.internal_errors)}"]
    for outcome in seen:
        if outcome.storm:
            result.problems.append("the drain closed chargers faster than its batch rate")
        result.duplicated += outcome.duplicated
        result.unanswered += outcome.unanswered
        notes.extend(outcome.notes)
    if stats.internal_errors:  # a simulator bug is a harness failure, never a pass
        result.problems.append(f"simulator errors: {dict(stats.internal_errors)}")
    return Row(scenario.name, scenario.proves, result, recover, notes)


# --- the suite ------------------------------------------------------------------------------


def all_scenarios(load: Load = Load()) -> list[Scenario]:
    """Every scenario ``make faults`` runs, in order."""
    services = ("authz", "transactions", "commands")
    return [
        Scenario("service kill -9", "a replica of each service killed in turn mid-load: "
                 "its unacknowledged work is redelivered to the other, nothing is answered "
                 "twice", tuple(kill_replica(f"{s}-1") for s in services), load),
        Scenario("gateway kill -9", "chargers of a killed gateway reconnect through HAProxy "
                 "to the other and resend what was unanswered",
                 (kill_replica("gateway-1"),), load),
        Scenario("gateway rolling restart", "SIGTERM drains each gateway in batches; "
                 "chargers move to the other and resend, nothing is lost",
                 (rolling_restart,), load),
        Scenario("broker restart", "RabbitMQ (the harness's own node) stopped and started: "
                 "every process reconnects, chargers resend", (restart_broker,), load),
        Scenario("database kill -9", "the embedded database killed and restarted with its "
                 "data: every answered write was journaled", (kill_database,), load),
        Scenario("network faults", "a service replica's links to RabbitMQ and MongoDB "
                 "reset, partitioned and slowed: nothing lost, nothing twice",
                 (network_faults,), load),
        Scenario("duplicate identity", "one station id connecting twice at once through "
                 "both gateways, repeatedly: one session survives, the charger's data is "
                 "kept once", (duplicate_identity,), load),
        Scenario("command storm", "50 concurrent commands to one charger during a rolling "
                 "gateway restart: each ends with a final status, none is sent twice",
                 (command_storm(),), load),
    ]


def short_scenario() -> Scenario:
    """The version in ``make test``: one kill -9 and one broker restart, a few hundred
    messages."""
    load = Load(chargers=10, rate=30.0, duration_s=14.0, fault_every=60, settle_s=60.0)
    return Scenario("short: kill -9 + broker restart", "a transactions replica killed, "
                    "then the broker restarted, under load",
                    (kill_replica("transactions-1"), restart_broker), load)


COLUMNS = ("scenario", "transactions", "messages", "lost", "duplicated", "unanswered",
           "time to recover (s)")


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table (the README's reliability section shows one)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        r = row.result
        lines.append(f"| {row.scenario} | {r.transactions} | {r.messages} | {r.lost} | "
                     f"{r.duplicated} | {r.unanswered} | {row.recover_s:.1f} |")
    return "\n".join(lines)
