"""Benchmark 4: soak: a fleet for a long while; the gateway's memory and fds must not grow.

GridLink runs a realistic fleet at a moderate rate (heartbeats every 60 s on top) for
``duration_s``; every 5 s the gateway's (and the services') RSS and open fds are sampled.
Reported: start (after a warm-up), end, least-squares slope per minute, and the fleet's
latency and errors over the whole soak.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench import processes, results, systems
from bench.fleet_runner import FleetProcess
from simulator.plan import FleetPlan

MIB = 1024 * 1024


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 60.0


def run(
    duration_s: float = 300.0,
    chargers: int = 1000,
    rate: float = 50.0,
    warmup_s: float = 20.0,
    every_s: float = 5.0,
) -> Path:
    """Run the benchmark; write bench/results/soak.md."""
    logs = processes.logs_dir()
    if not systems.gridlink_available():
        return results.write("soak", "Soak", "GridLink is not there yet: skipped.", database="none")
    series: dict[str, list[tuple[float, int, int]]] = {}
    with systems.database(logs) as db, systems.gridlink(db, logs) as stack:
        plan = FleetPlan(
            fail_fast=False,
            url=stack.url,
            chargers=chargers,
            profile="realistic",
            duration_s=duration_s + warmup_s + 900,  # stopped explicitly below
            rate=rate,
            ramp_s=10,
            id_prefix="SOAK",
            id_tag="TAG{n}",
            call_timeout_s=30,
            heartbeat_interval_s=60,
            validate="first",
        )
        systems.seed_id_tags(db, stack.db_name, [plan.id_tag_for(i) for i in range(chargers)])
        with FleetProcess(plan) as fleet:
            fleet.wait_accepted(120)
            started = time.monotonic()
            end = started + warmup_s + duration_s
            fleet.mark()
            while time.monotonic() < end:
                at = time.monotonic() - started
                for name, process in stack.processes.items():
                    sample = process.sample()
                    series.setdefault(name, []).append((at, sample.rss_bytes, sample.fds))
                time.sleep(every_s)
            window = fleet.window()
        database = db.description
    rows = []
    for name, points in series.items():
        steady = [(t, rss, fds) for t, rss, fds in points if t >= warmup_s] or points
        rss_slope = slope_per_minute([(t, rss / MIB) for t, rss, _ in steady])
        fd_slope = slope_per_minute([(t, float(fds)) for t, _, fds in steady])
        rows.append(
            [
                name,
                steady[0][1] / MIB,
                steady[-1][1] / MIB,
                rss_slope,
                steady[0][2],
                steady[-1][2],
                fd_slope,
            ]
        )
    body = results.table(
        [
            "process",
            "RSS start MiB",
            "RSS end MiB",
            "RSS slope MiB/min",
            "fds start",
            "fds end",
            "fds slope /min",
        ],
        rows,
    )
    overall = window["overall"]
    gateway = next((r for r in rows if r[0] == "gateway"), None)
    verdict = ""
    if gateway is not None:
        grows = gateway[3] > 0.5 or gateway[6] > 1.0
        results.save_figures("soak", {
            "duration_s": duration_s, "chargers": chargers, "grows": grows,
            "rss_start_mib": gateway[1], "rss_end_mib": gateway[2],
            "rss_slope_mib_per_min": gateway[3], "fds_start": gateway[4],
            "fds_end": gateway[5], "fds_slope_per_min": gateway[6],
            "answered": window["overall"]["answered"],
            "errors": window["overall"]["errors"] + window["overall"]["timeouts"]})
        verdict = (
            f"\n\nGateway verdict: **{'GROWS' if grows else 'flat'}** (RSS slope "
            f"{gateway[3]:.2f} MiB/min, fds slope {gateway[6]:.2f}/min; flat means <= 0.5 "
            "MiB/min and <= 1 fd/min after the warm-up)."
        )
    body += verdict + (
        f"\n\nFleet over the soak: {overall['answered']:,} calls answered, "
        f"{overall['errors']} errors, {overall['timeouts']} timeouts, p50 "
        f"{overall['p50_ms']} ms, p99 {overall['p99_ms']} ms."
    )
    body += "\n\n" + results.table(
        ["action", "answered", "errors", "timeouts", "p50 ms", "p99 ms", "max ms"],
        [
            [a, r["answered"], r["errors"], r["timeouts"], r["p50_ms"], r["p99_ms"], r["max_ms"]]
            for a, r in window["actions"].items()
            if r["answered"] or r["timeouts"]
        ],
    )
    notes = (
        f"{chargers} chargers, realistic mix at {rate:.0f} msg/s plus heartbeats every 60 s, "
        f"{duration_s:.0f} s measured after a {warmup_s:.0f} s warm-up (the full benchmark "
        "default is 600 s; `make bench` uses 80 s to stay under 15 minutes). Samples every "
        f"{every_s:.0f} s from /proc. Logs: {logs}"
    )
    notes += " " + processes.disturbances(logs)
    return results.write(
        "soak", f"Soak ({duration_s / 60:.0f} min)", body, database=database, notes=notes
    )
