"""The throughput benchmark's report: the sustained rate of a ladder, and
bench/results/throughput.md with the figures side by side (:mod:`bench.bench_throughput`
measures them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import db_commands, processes, results

P99_LIMIT_MS = 50.0  # the sustained rate keeps p99 under this
LIGHT_RATE = 20.0  # Authorize alone at this rate: the pipeline's latency with no queueing


def sustained(ladder: list[dict[str, Any]]) -> float:
    """The highest offered rate met with p99 < 50 ms, >= 95 % achieved, no errors/timeouts."""
    best = 0.0
    for window in ladder:
        overall = window["overall"]
        if (
            overall["p99_ms"] is not None
            and overall["p99_ms"] < P99_LIMIT_MS
            and window["achieved"] >= 0.95 * window["rate"]
            and overall["errors"] == 0
            and overall["timeouts"] == 0
        ):
            best = max(best, float(window["rate"]))
    return best


def write(
    measured: dict[str, dict[str, Any]],
    chargers: int,
    fixed_rate: float,
    database: str,
    logs: Path,
    ceiling: dict[str, float] | None = None,
) -> Path:
    parts: list[str] = []
    summary_rows = []
    for name, data in measured.items():
        best = sustained(data["ladder"])
        peak = max((w["achieved"] for w in data["ladder"]), default=0.0)
        auth = data["authorize"]["actions"].get("Authorize", {})
        summary_rows.append(
            [
                name,
                best,
                peak,
                data["fixed"]["overall"]["p50_ms"],
                data["fixed"]["overall"]["p99_ms"],
                auth.get("p50_ms"),
                auth.get("p99_ms"),
                data["fixed"]["cpu_cores_system"],
                data["fixed"]["cpu_cores_db"],
                data["fixed"]["db_ops_per_msg"],
                data["fixed"]["db_writes_per_msg"],
            ]
        )
        data["sustained"], data["peak"] = best, peak
    parts.append(
        results.table(
            [
                "system",
                "sustained msg/s (p99<50ms)",
                "peak achieved msg/s",
                f"mix p50 ms @{fixed_rate:.0f}/s",
                f"mix p99 ms @{fixed_rate:.0f}/s",
                f"Authorize p50 ms @{fixed_rate:.0f}/s",
                f"Authorize p99 ms @{fixed_rate:.0f}/s",
                "system CPU cores @fixed",
                "DB CPU cores @fixed",
                "DB ops per msg @fixed",
                "DB writes per msg @fixed",
            ],
            summary_rows,
        )
    )
    if "GridLink" in measured and "baseline" in measured:
        gl, base = measured["GridLink"], measured["baseline"]
        ratio = gl["sustained"] / base["sustained"] if base["sustained"] else float("nan")
        peak_ratio = gl["peak"] / base["peak"] if base["peak"] else float("nan")
        parts.append(
            f"GridLink / baseline: sustained throughput **{ratio:.2f}x** (target >= 1.0), peak "
            f"achieved {peak_ratio:.2f}x. Targets: >= 1,000 msg/s with p99 < 50 ms; Authorize "
            f"p50 <= 3 ms, p99 <= 10 ms at {fixed_rate:.0f} msg/s."
        )
    if ceiling:
        parts.append(
            "Database ceiling (pymongo straight to the database, no CSMS): "
            + ", ".join(f"{kind} {rate:,.0f}/s" for kind, rate in ceiling.items())
            + ". Every charger message costs at least one write in both systems."
        )
    for name, data in measured.items():
        for key, rate in (("authorize_light", LIGHT_RATE), ("authorize", fixed_rate)):
            auth = data[key]
            parts.append(
                f"### {name}: Authorize only at {rate:.0f} msg/s: achieved "
                f"{auth['achieved']:.0f} msg/s, p50 {auth['overall']['p50_ms']} ms, p99 "
                f"{auth['overall']['p99_ms']} ms, DB ops per msg {auth['db_ops_per_msg']:.2f}"
            )
        cpu = data["fixed"]["cpu_ms_per_msg"]
        parts.append(
            f"### {name}: CPU milliseconds per answered message at {fixed_rate:.0f} msg/s "
            f"(machine {100 * data['fixed']['machine_busy']:.0f}% busy)"
        )
        parts.append(results.table([*cpu, "total"], [[*cpu.values(), sum(cpu.values())]]))
        parts.append(f"### {name}: realistic mix at {fixed_rate:.0f} msg/s, per action")
        parts.append(
            results.table(
                [
                    "action",
                    "answered",
                    "errors",
                    "timeouts",
                    "p50 ms",
                    "p90 ms",
                    "p99 ms",
                    "max ms",
                ],
                [
                    [
                        a,
                        r["answered"],
                        r["errors"],
                        r["timeouts"],
                        r["p50_ms"],
                        r["p90_ms"],
                        r["p99_ms"],
                        r["max_ms"],
                    ]
                    for a, r in data["fixed"]["actions"].items()
                    if r["answered"]
                ],
            )
        )
        parts += _db_command_sections(name, data, fixed_rate)
        parts.append(f"### {name}: rate ladder")
        parts.append(
            results.table(
                [
                    "offered msg/s",
                    "achieved msg/s",
                    "p50 ms",
                    "p99 ms",
                    "max ms",
                    "errors",
                    "timeouts",
                    "system CPU cores",
                    "DB CPU cores",
                    "DB ops per msg",
                    "machine CPU busy",
                ],
                [
                    [
                        w["rate"],
                        w["achieved"],
                        w["overall"]["p50_ms"],
                        w["overall"]["p99_ms"],
                        w["overall"]["max_ms"],
                        w["overall"]["errors"],
                        w["overall"]["timeouts"],
                        w["cpu_cores_system"],
                        w["cpu_cores_db"],
                        w["db_ops_per_msg"],
                        f"{100 * w['machine_busy']:.0f}%",
                    ]
                    for w in data["ladder"]
                ],
            )
        )
    notes = (
        f"{chargers} simulated chargers (one process, uvloop), realistic session mix paced at "
        "the offered rate across the fleet; each ladder step is measured for a fixed window "
        "after 2 s at the new rate. Everything (simulator, GridLink's 4 processes or the "
        "baseline, RabbitMQ, the database) shares the machine's cores. 'system CPU' is the "
        "GridLink processes (or the baseline process); RabbitMQ is not included. "
        "Logs: " + str(logs)
    )
    notes += " " + processes.disturbances(logs)
    return results.write(
        "throughput",
        "End-to-end throughput and latency",
        "\n\n".join(parts),
        database=database,
        notes=notes,
    )



def _db_command_sections(name: str, data: dict[str, Any], fixed_rate: float) -> list[str]:
    """Round trips per answered message per action, and the costliest query shapes, at the
    fixed rate and at the ladder's last (highest) step (GRIDLINK_DB_COMMAND_STATS)."""
    parts: list[str] = []
    windows = [(f"{fixed_rate:.0f} msg/s", data["fixed"])]
    if data["ladder"]:
        windows.append((f"ladder step {data['ladder'][-1]['rate']} msg/s", data["ladder"][-1]))
    for label, window in windows:
        stats = window.get("db_commands")
        if not stats or not stats["counts"]:
            continue
        total = db_commands.totals(window, stats)
        parts.append(
            f"### {name}: database round trips per answered message at {label} (pymongo "
            f"command monitoring, per message the services handled in the window): "
            f"{total['round_trips_per_msg']:.2f} in all, {total['db_ms_per_msg']:.2f} ms of "
            "database time (as the client waited for it) per message")
        parts.append(results.table(
            ["action / work", "handled", "round trips per msg", "by collection.command"],
            db_commands.per_action(window, stats)))
        parts.append(results.table(
            ["component", "collection", "command", "count", "ms total", "ms per handled msg"],
            db_commands.slowest(window, stats)))
    return parts
