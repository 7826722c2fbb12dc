"""Benchmark 1: idle OCPP connections one gateway process holds, and memory per connection.

Same run, same client fleet (idle profile: connect, boot, no heartbeats), two servers:

- the floor: a bare ``websockets`` server with canned answers (bench/bare_server.py);
- GridLink's gateway (``gridlink run gateway`` with authz, transactions, commands running).

Per-connection memory = (server RSS with N chargers Accepted - RSS before) / N.
The clients are split over worker processes (each under the 20,000 file limit).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import processes, results, systems
from bench.fleet_runner import FleetProcess
from simulator.plan import FleetPlan

MIB = 1024 * 1024
GENTLE_CHARGERS = 1500
GENTLE_RATE = 25.0


def _hold(
    server: processes.Process,
    url: str,
    chargers: int,
    workers: int,
    ramp_s: float,
    timeout_s: float,
) -> dict[str, Any]:
    time.sleep(1.0)
    before = server.sample()
    plan = FleetPlan(
        fail_fast=False,
        url=url,
        chargers=chargers,
        profile="idle",
        duration_s=timeout_s + 120,
        ramp_s=ramp_s,
        id_prefix="CONN",
        call_timeout_s=60,
        connect_timeout_s=60,
        validate="first",
    )
    peak = before.rss_bytes
    row: dict[str, Any] = {"before": before}
    with FleetProcess(plan, workers=workers) as fleet:
        started = time.monotonic()
        try:
            fleet.wait_accepted(timeout_s)
            row["accepted_s"] = time.monotonic() - started
        except TimeoutError:
            row["accepted_s"] = None
        time.sleep(3.0)  # let the server settle
        after = server.sample()
        peak = max(peak, after.rss_bytes)
        row["after"] = after
    report = fleet.report or {}
    row["connected"] = report.get("connections", {}).get("peak_open", 0)
    row["accepted"] = report.get("boot", {}).get("chargers_accepted", 0)
    row["failure_reasons"] = report.get("connections", {}).get("connect_failures", {})
    row["failures"] = sum(row["failure_reasons"].values())
    row["errors"] = report.get("overall", {}).get("errors", 0) + report.get("overall", {}).get(
        "timeouts", 0
    )
    row["chargers"] = chargers
    row["ramp_s"] = ramp_s
    row["per_connection"] = (after.rss_bytes - before.rss_bytes) / max(row["accepted"], 1)
    return row


def _held(row: dict[str, Any]) -> bool:
    return bool(row["accepted"] >= 0.9 * row["chargers"])


def run(
    chargers: int = 15000, workers: int = 2, ramp_s: float = 60.0, timeout_s: float = 300.0
) -> Path:
    """Run the benchmark; write bench/results/connections.md."""
    logs = processes.logs_dir()
    rows: dict[str, dict[str, Any]] = {}
    with systems.bare_server(logs) as bare:
        rows["bare websockets"] = _hold(
            bare.process, bare.url, chargers, workers, ramp_s, timeout_s
        )
    database = "none (bare server)"
    if systems.gridlink_available():
        with systems.database(logs) as db, systems.gridlink(db, logs) as stack:
            database = db.description
            rows["GridLink gateway"] = _hold(
                stack.gateway, stack.url, chargers, workers, ramp_s, timeout_s
            )
        if not _held(rows["GridLink gateway"]):
            # It could not take the connects that fast: measure memory per connection at a
            # connect rate it can take, on a fresh gateway (no leftovers of failed handshakes).
            gentle = min(chargers, GENTLE_CHARGERS)
            with systems.database(logs) as db, systems.gridlink(db, logs) as stack:
                rows[f"GridLink gateway, {GENTLE_RATE:.0f} connects/s"] = _hold(
                    stack.gateway,
                    stack.url,
                    gentle,
                    1,
                    gentle / GENTLE_RATE,
                    gentle / GENTLE_RATE + 60,
                )
    table_rows = []
    for name, row in rows.items():
        table_rows.append(
            [
                name,
                row["chargers"],
                row["chargers"] / row["ramp_s"],
                row["accepted"],
                row["failures"],
                row["errors"],
                None if row["accepted_s"] is None else round(row["accepted_s"], 1),
                row["before"].rss_bytes / MIB,
                row["after"].rss_bytes / MIB,
                row["per_connection"] / 1024,
                row["after"].fds,
            ]
        )
    body = results.table(
        [
            "server",
            "chargers",
            "connects/s offered",
            "Accepted",
            "connect failures",
            "call errors+timeouts",
            "all Accepted after s",
            "RSS before MiB",
            "RSS with N MiB",
            "KiB per connection",
            "open fds",
        ],
        table_rows,
    )
    if "GridLink gateway" in rows:
        measured = next(
            (row for name, row in rows.items() if name.startswith("GridLink") and _held(row)),
            rows["GridLink gateway"],
        )
        ratio = measured["per_connection"] / max(rows["bare websockets"]["per_connection"], 1)
        results.save_figures("connections", {
            "chargers": chargers, "held": rows["GridLink gateway"]["accepted"],
            "kib_per_connection": measured["per_connection"] / 1024,
            "bare_kib_per_connection": rows["bare websockets"]["per_connection"] / 1024,
            "ratio": ratio})
        body += (
            f"\n\nGridLink / bare websockets memory per connection: **{ratio:.2f}x** "
            f"(target <= 1.3x; GridLink measured with {measured['accepted']:,} connections "
            f"held); connections held at {chargers / ramp_s:.0f} connects/s: "
            f"{rows['GridLink gateway']['accepted']:,} of {chargers:,} (target >= 15,000)."
        )
    for name, row in rows.items():
        if row["failure_reasons"]:
            body += f"\n\n{name} connect failures by reason: {row['failure_reasons']}"
    notes = (
        f"Client: the GridLink simulator (profile idle, heartbeats off by the 300 s interval) in "
        f"{workers} processes, connects spread over {ramp_s:.0f} s. Process file limit raised "
        "to the hard limit in every process. Logs of this run: " + str(logs)
    )
    notes += " " + processes.disturbances(logs)
    return results.write(
        "connections", "Idle connections per gateway process", body, database=database, notes=notes
    )
