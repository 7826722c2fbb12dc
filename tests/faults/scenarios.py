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
import time
import uuid
from dataclasses import dataclass, field

from simulator import Fleet, FleetPlan
from simulator.ledger import Ledger
from tests.faults.cluster import Cluster
from tests.faults.faults import (
    Fault,
    Outcome,
    command_storm,
    duplicate_identity,
    kill_database,
    kill_replica,
    network_faults,
    restart_broker,
    rolling_restart,
)
from tests.faults.reconcile import Reconciliation, reconcile
from tests.helpers import add_station, add_tag
from tests.processes import wait_for


@dataclass(frozen=True)
class Load:
    """The fleet a scenario runs: its size, pace and length."""

    chargers: int = 20
    connectors: int = 2
    rate: float = 40.0  # charger-initiated messages per second across the fleet
    duration_s: float = 40.0
    meter_values: int = 3  # MeterValues per session
    fault_every: int = 150  # answered transaction messages before each fault (mid-load)
    # (or, if the fleet is slower, fault k of n at duration_s * k / (n + 1))
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
        started = time.monotonic()
        for number, fault in enumerate(scenario.faults, start=1):
            # Mid-load: after this many answers, or (a slow machine) this far into the run,
            # but never before the fleet is answered at all.
            due = started + load.duration_s * number / (len(scenario.faults) + 1)
            await wait_for(lambda n=number, due=due: run.done() or (
                ledger.answers >= n * load.fault_every
                or (time.monotonic() >= due and ledger.answers > 0)),
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
    load = Load(chargers=10, rate=30.0, duration_s=20.0, fault_every=60, settle_s=60.0)
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
