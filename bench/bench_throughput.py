"""Benchmark 2: end-to-end throughput and latency, GridLink vs the single-process baseline.

Path measured: charger -> gateway -> RabbitMQ -> service -> MongoDB -> back (GridLink) and
charger -> ocpp ChargePoint handler -> MongoDB -> back (baseline, bench/baseline_csms.py),
both against the same database server, with the same simulated fleet (realistic mix:
Authorize, StatusNotification, StartTransaction, MeterValues, StopTransaction; each charger
its own id tag so no session is refused as ConcurrentTx).

1. a fixed moderate rate (realistic mix at 200 msg/s): p50/p99 per action;
2. Authorize only at 200 msg/s (the latency target);
3. a rate ladder: the highest offered rate at which the fleet achieved >= 95 % of it with
   p99 < 50 ms and no error or timeout is the "sustained" rate;
4. closed loop (the issue's first target): every charger sends its next call as soon as the
   last is answered (offered :data:`CLOSED_LOOP_RATE`, far above what either system
   answers), once with one tag per charger and once with one fleet tag shared by all
   chargers (``max_concurrent`` high enough for every charger).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import database_ceiling, db_commands, processes, results, systems, throughput_report
from bench.fleet_runner import FleetProcess
from simulator.plan import FleetPlan

LADDER = (100, 200, 300, 400, 500, 600, 800, 1000, 1250, 1500, 2000)
#: offered msg/s of a closed-loop window: tokens for every charger that is free, so each
#: sends its next call once the last is answered
CLOSED_LOOP_RATE = 4000.0
FLEET_TAG = "FLEETTAG"
P99_LIMIT_MS = throughput_report.P99_LIMIT_MS
LIGHT_RATE = throughput_report.LIGHT_RATE


#: component -> /metrics URL of the system being measured (GridLink's services; none for
#: the baseline, whose one process reports no command statistics)
_METRICS: dict[str, str] = {}


@contextlib.contextmanager
def _system(
    name: str, db: systems.Database, logs: Path, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, list[processes.Process], str]]:
    """Start GridLink or the baseline; yield (url, processes to sample, database name)."""
    _METRICS.clear()
    if name.startswith("GridLink"):
        with systems.gridlink(db, logs, extra_env=extra_env) as stack:
            _METRICS.update(stack.metrics)
            yield stack.url, list(stack.processes.values()), stack.db_name
    else:
        with systems.baseline(db, logs) as server:
            yield server.url, [server.process], server.db_name


def _cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            seconds[name] = processes.sample(pid).cpu_s
        except OSError:
            seconds[name] = 0.0
    return seconds


def _window(
    fleet: FleetProcess, seconds: float, procs: list[processes.Process], db: systems.Database
) -> dict[str, Any]:
    """Measure ``seconds`` of the running load: latencies, CPU per component, DB operations."""
    pids = {
        p.name.split("-")[1] if p.name.startswith("gridlink-") else "baseline": p.pid for p in procs
    }
    pids["database"] = db.process.pid
    rabbit = processes.rabbitmq_pid()
    if rabbit is not None and len(procs) > 1:
        pids["rabbitmq"] = rabbit
    for n, pid in enumerate(fleet.pids):
        pids[f"simulator{n or ''}"] = pid
    fleet.mark()
    cpu_before, machine_before = _cpu_seconds(pids), processes.machine_cpu()
    ops_before = db.opcounters()
    commands_before = db_commands.scrape(_METRICS)
    time.sleep(seconds)
    window = fleet.window()
    cpu_after, machine_after = _cpu_seconds(pids), processes.machine_cpu()
    ops_after = db.opcounters()
    window["db_commands"] = db_commands.delta(commands_before, db_commands.scrape(_METRICS))
    ops = {k: ops_after.get(k, 0) - ops_before.get(k, 0) for k in ops_after}
    answered = max(window["overall"]["answered"], 1)
    window["db_ops_per_msg"] = sum(ops.values()) / answered
    window["db_writes_per_msg"] = sum(ops.get(k, 0) for k in ("insert", "update", "delete")) / (
        answered
    )
    window["seconds"] = seconds
    used = {name: cpu_after[name] - cpu_before[name] for name in pids}
    window["cpu_ms_per_msg"] = {name: 1000 * v / answered for name, v in used.items()}
    system = [n for n in pids if n not in ("database", "rabbitmq") and not n.startswith("sim")]
    window["cpu_cores_system"] = sum(used[n] for n in system) / seconds
    window["cpu_cores_db"] = used["database"] / seconds
    busy = machine_after[0] - machine_before[0]
    window["machine_busy"] = busy / max(machine_after[1] - machine_before[1], 1e-9)
    window["achieved"] = window["overall"]["answered"] / seconds
    return window


def _closed_loop(
    fleet: FleetProcess,
    seconds: float,
    procs: list[processes.Process],
    db: systems.Database,
    warm_s: float = 3.0,
) -> dict[str, Any]:
    """A closed-loop window: every charger sends its next call once the last is answered."""
    fleet.set_rate(CLOSED_LOOP_RATE)
    time.sleep(warm_s)
    window = _window(fleet, seconds, procs, db)
    fleet.set_rate(0)
    time.sleep(3)  # drain: what follows starts without a backlog
    return window


def _profiled_window(
    fleet: FleetProcess,
    seconds: float,
    procs: list[processes.Process],
    db: systems.Database,
    profile_into: dict[str, str] | None,
) -> dict[str, Any]:
    """A window; with ``profile_into``, py-spy samples every process meanwhile."""
    if profile_into is None:
        return _window(fleet, seconds, procs, db)
    import threading

    from bench import profiling

    pids = {
        p.name.split("-")[1] if p.name.startswith("gridlink-") else p.name: p.pid for p in procs
    }
    pids["secantusd"] = db.process.pid
    files: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: files.update(profiling.record(pids, seconds)), daemon=True
    )
    thread.start()
    window = _window(fleet, seconds, procs, db)
    thread.join(seconds + 60)
    for name, path in files.items():
        profile_into[name] = profiling.summarise(path)
    return window


def _measure(
    name: str,
    db: systems.Database,
    logs: Path,
    chargers: int,
    step_s: float,
    fixed_s: float,
    fixed_rate: float,
    ladder: tuple[int, ...],
    profile: bool = False,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"ladder": [], "profile": {} if profile else None}
    with _system(name, db, logs, extra_env) as (url, procs, db_name):
        plan = FleetPlan(
            fail_fast=False,
            url=url,
            chargers=chargers,
            profile="realistic",
            duration_s=3600,
            rate=20,
            ramp_s=5,
            id_prefix="TPUT",
            id_tag="TAG{n}",
            call_timeout_s=10,
            heartbeat_interval_s=0,
            meter_values_per_session=8,
            validate="first",
        )
        systems.seed_id_tags(db, db_name, [plan.id_tag_for(i) for i in range(chargers)])
        with FleetProcess(plan) as fleet:
            fleet.wait_accepted(120)
            fleet.set_rate(ladder[0])
            time.sleep(5)  # warm up: sessions under way, caches and connections warm
            for rate in ladder:  # ascending, so no step inherits a backlog from a faster one
                fleet.set_rate(rate)
                time.sleep(2)
                window = _window(fleet, step_s, procs, db)
                window["rate"] = rate
                out["ladder"].append(window)
                p99 = window["overall"]["p99_ms"] or 0
                if p99 > 20 * P99_LIMIT_MS or window["achieved"] < 0.8 * rate:
                    break  # well past saturation
            fleet.set_rate(0)
            time.sleep(8)  # drain what a saturated step left queued
            fleet.set_rate(fixed_rate)
            time.sleep(3)
            out["fixed"] = _profiled_window(fleet, fixed_s, procs, db, out["profile"])
            out["closed_own"] = _closed_loop(fleet, step_s, procs, db)
        out["report"] = fleet.report
        # Closed loop again, every charger with the same fleet tag (fresh fleet, same server).
        fleet_plan = dataclasses.replace(plan, id_prefix="FLEET", id_tag=FLEET_TAG)
        systems.seed_id_tags(db, db_name, [FLEET_TAG], max_concurrent=chargers)
        with FleetProcess(fleet_plan) as fleet:
            fleet.wait_accepted(120)
            fleet.set_rate(CLOSED_LOOP_RATE)
            time.sleep(5)  # sessions under way on every charger
            out["closed_fleet"] = _closed_loop(fleet, step_s, procs, db, warm_s=0)
        # Authorize only, on a fleet of its own (fresh connections, same server).
        auth_plan = FleetPlan(
            fail_fast=False,
            url=url,
            chargers=100,
            profile="realistic",
            duration_s=3600,
            rate=20,
            ramp_s=2,
            id_prefix="AUTH",
            id_tag="TAG{n}",
            script="authorize",
            call_timeout_s=10,
            heartbeat_interval_s=0,
            validate="first",
        )
        with FleetProcess(auth_plan) as fleet:
            fleet.wait_accepted(60)
            fleet.set_rate(LIGHT_RATE)
            time.sleep(3)
            out["authorize_light"] = _window(fleet, fixed_s, procs, db)
            fleet.set_rate(fixed_rate)
            time.sleep(3)
            out["authorize"] = _window(fleet, fixed_s, procs, db)
    return out


def run(
    chargers: int = 500,
    step_s: float = 4.0,
    fixed_s: float = 10.0,
    fixed_rate: float = 200.0,
    ladder: tuple[int, ...] = LADDER,
    profile: bool = False,
    on_disk: bool = False,
    classic: bool = False,
) -> Path:
    """Run the benchmark; write bench/results/throughput.md (and profile.md with ``profile``).
    ``on_disk``: the database keeps a journal on disk, as in production (both systems).
    ``classic``: also measure GridLink with classic instead of quorum service queues."""
    logs = processes.logs_dir()
    measured: dict[str, dict[str, Any]] = {}
    variants: dict[str, dict[str, str] | None] = {"GridLink": None}
    if classic:
        variants["GridLink (classic queues)"] = {"GRIDLINK_QUORUM_QUEUES": "false"}
    names = [*variants, "baseline"] if systems.gridlink_available() else ["baseline"]
    with systems.database(logs, on_disk=on_disk) as db:
        ceiling = database_ceiling.measure(db)
        for name in names:
            measured[name] = _measure(
                name, db, logs, chargers, step_s, fixed_s, fixed_rate, ladder,
                profile and name in ("GridLink", "baseline"),
                variants.get(name),
            )
        database = db.description
    if profile:
        sections = [
            f"### {name} at {fixed_rate:.0f} msg/s (realistic mix)\n\n```\n"
            + "\n\n".join(data["profile"].values())
            + "\n```"
            for name, data in measured.items()
            if data["profile"]
        ]
        results.write(
            "profile",
            "Where the time goes (py-spy, throughput benchmark's fixed-rate window)",
            "\n\n".join(sections),
            database=database,
            notes="py-spy record --format raw at 100 Hz on every process during the window; "
            "'busy' excludes samples waiting in the event loop's selector. 'incl' = share of "
            "busy samples with the frame on the stack, 'self' = at the top.",
        )
    return throughput_report.write(measured, chargers, fixed_rate, database, logs, ceiling)
