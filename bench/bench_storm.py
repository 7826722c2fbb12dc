"""Benchmark 3: reconnect storm: N chargers connect at the same moment and boot.

Measured per system: time until every charger is Accepted, connect failures, boot errors and
timeouts, peak memory (sampled every 0.25 s), and the kernel's listen-queue overflows (SYNs
dropped because the server's accept backlog was full).

GridLink is stormed twice: cold (every station unknown, registered on first connect because
GRIDLINK_ACCEPT_UNKNOWN_STATIONS=true) and warm (the same ids again: a real reconnect storm
after a gateway restart).  The baseline is stormed once in the same run for comparison.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import processes, results, systems
from bench.fleet_runner import FleetProcess
from simulator.plan import FleetPlan

MIB = 1024 * 1024


def _netstat() -> dict[str, int]:
    with open("/proc/net/netstat") as netstat:
        lines = netstat.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
    return {}


def _storm(
    url: str,
    procs: dict[str, processes.Process],
    chargers: int,
    workers: int,
    timeout_s: float,
    prefix: str,
) -> dict[str, Any]:
    plan = FleetPlan(
        fail_fast=False,
        url=url,
        chargers=chargers,
        profile="storm",
        duration_s=timeout_s,
        id_prefix=prefix,
        call_timeout_s=30,
        connect_timeout_s=30,
        validate="first",
        start_at=time.monotonic() + 3.0,  # every worker imported and waiting: start together
    )
    base = {name: p.sample().rss_bytes for name, p in procs.items()}
    peak = dict(base)
    net_before = _netstat()
    with FleetProcess(plan, workers=workers) as fleet:
        deadline = time.monotonic() + timeout_s + 10
        while time.monotonic() < deadline and any(p.is_alive() for p in fleet._processes):
            for name, process in procs.items():
                peak[name] = max(peak[name], process.sample().rss_bytes)
            time.sleep(0.25)
    net_after = _netstat()
    report = fleet.report or {}
    stats = fleet.stats
    assert stats is not None
    all_accepted = None
    if stats.all_accepted_at is not None and len(stats.accepted) >= chargers:
        all_accepted = stats.all_accepted_at - plan.start_at  # type: ignore[operator]
    boot = stats.actions.get("BootNotification")
    return {
        "accepted": len(stats.accepted),
        "all_accepted_s": all_accepted,
        "connect_failures": dict(stats.connect_failures),
        "boot_errors": (sum(boot.errors.values()) + boot.invalid) if boot else 0,
        "boot_timeouts": boot.timeouts if boot else 0,
        "boot_answers": dict(stats.boots),
        "errors": report.get("overall", {}).get("errors", 0),
        "peak_rss": peak,
        "base_rss": base,
        "listen_overflows": net_after.get("ListenOverflows", 0)
        - net_before.get("ListenOverflows", 0),
        "boot_p50_ms": report.get("actions", {}).get("BootNotification", {}).get("p50_ms"),
        "boot_p99_ms": report.get("actions", {}).get("BootNotification", {}).get("p99_ms"),
    }


def run(chargers: int = 10000, workers: int = 2, timeout_s: float = 60.0) -> Path:
    """Run the benchmark; write bench/results/storm.md."""
    logs = processes.logs_dir()
    rows: list[tuple[str, dict[str, Any]]] = []
    with systems.database(logs) as db:
        if systems.gridlink_available():
            with systems.gridlink(db, logs) as stack:
                procs = dict(stack.processes)
                rows.append(
                    (
                        "GridLink, cold (stations unknown)",
                        _storm(stack.url, procs, chargers, workers, timeout_s, "STORM"),
                    )
                )
                time.sleep(2)
                rows.append(
                    (
                        "GridLink, reconnect (stations known)",
                        _storm(stack.url, procs, chargers, workers, timeout_s, "STORM"),
                    )
                )
        with systems.baseline(db, logs) as server:
            rows.append(
                (
                    "baseline",
                    _storm(
                        server.url,
                        {"baseline": server.process},
                        chargers,
                        workers,
                        timeout_s,
                        "STORM",
                    ),
                )
            )
        database = db.description
    table_rows = []
    for name, row in rows:
        failures = sum(row["connect_failures"].values())
        table_rows.append(
            [
                name,
                chargers,
                row["accepted"],
                None if row["all_accepted_s"] is None else round(row["all_accepted_s"], 2),
                failures,
                row["boot_errors"],
                row["boot_timeouts"],
                row["boot_p50_ms"],
                row["boot_p99_ms"],
                row["listen_overflows"],
                sum(row["peak_rss"].values()) / MIB,
                max(row["peak_rss"].get("gateway", 0), row["peak_rss"].get("baseline", 0)) / MIB,
            ]
        )
    body = results.table(
        [
            "system",
            "chargers",
            "Accepted",
            "all Accepted after s",
            "connect failures",
            "boot CALLERRORs",
            "boot timeouts",
            "boot p50 ms",
            "boot p99 ms",
            "listen overflows",
            "peak RSS all procs MiB",
            "peak RSS gateway MiB",
        ],
        table_rows,
    )
    details = []
    for name, row in rows:
        details.append(
            f"- {name}: connect failures {row['connect_failures'] or 'none'}; "
            f"boot answers {row['boot_answers']}; peak RSS by process (MiB) "
            + ", ".join(f"{k} {v / MIB:.0f}" for k, v in row["peak_rss"].items())
        )
    body += "\n\n" + "\n".join(details)
    ratios = {name: row["all_accepted_s"] for name, row in rows}
    if rows and ratios.get("baseline") and rows[0][1]["all_accepted_s"]:
        body += (
            f"\n\nTime to all Accepted, GridLink reconnect / baseline: "
            f"{(rows[1][1]['all_accepted_s'] or float('nan')) / ratios['baseline']:.2f}x. "
            "Target: 10,000 all Accepted within 30 s, zero errors."
        )
    notes = (
        f"Client: the simulator's storm profile in {workers} processes that start at the same "
        "monotonic instant; each charger opens its WebSocket and sends BootNotification at "
        "once, retrying refused/timed-out connects with backoff. Listen overflows are the "
        "machine-wide TcpExt ListenOverflows delta during the storm. Logs: " + str(logs)
    )
    notes += " " + processes.disturbances(logs)
    results.save_figures("storm", {"chargers": chargers, "rows": {
        name: {"all_accepted_s": row["all_accepted_s"], "accepted": row["accepted"],
               "boot_errors": row["boot_errors"], "boot_timeouts": row["boot_timeouts"],
               "connect_failures": sum(row["connect_failures"].values())}
        for name, row in rows}})
    return results.write("storm", "Reconnect storm", body, database=database, notes=notes)
