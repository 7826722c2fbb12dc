"""The throughput benchmark's report: the sustained rate of a ladder, and
bench/results/throughput.md with the figures side by side (:mod:`bench.bench_throughput`
measures them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import db_commands, processes, results

P99_LIMIT_MS = 50.0  # the sustained rate keeps p99 under this
LIGHT_RATE = 20.0  # Authorize alone at this rate: the pipeline's latency with no queueing
PACED_RATE = 500.0  # the paced target: p99 < 50 ms at this offered rate


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


def at_rate(ladder: list[dict[str, Any]], rate: float) -> dict[str, Any] | None:
    """The ladder's window at offered ``rate`` (None if the ladder stopped before it)."""
    return next((w for w in ladder if float(w["rate"]) == rate), None)


def _cpu_own(window: dict[str, Any]) -> float:
    """CPU ms per answered message of the system's own processes: GridLink's four and
    RabbitMQ, or the baseline's one (not the database, not the load generator)."""
    return sum(v for k, v in window["cpu_ms_per_msg"].items()
               if k != "database" and not k.startswith("simulator"))


def _action_p50(window: dict[str, Any], action: str) -> float | None:
    return window["actions"].get(action, {}).get("p50_ms")


def figures(data: dict[str, Any], fixed_rate: float) -> dict[str, Any]:
    """The figures of one system the targets table compares (bench/results/throughput.json)."""
    paced = at_rate(data["ladder"], PACED_RATE)
    out: dict[str, Any] = {
        "sustained": data["sustained"], "peak": data["peak"],
        "authorize_p99_ms": data["authorize"]["actions"].get("Authorize", {}).get("p99_ms"),
        "authorize_p50_ms": data["authorize"]["actions"].get("Authorize", {}).get("p50_ms"),
        "paced_rate": PACED_RATE,
        "paced_achieved": paced["achieved"] if paced else None,
        "paced_p99_ms": paced["overall"]["p99_ms"] if paced else None,
        "fixed_rate": fixed_rate,
        "cpu_ms_own": _cpu_own(data["fixed"]),
        "cpu_ms_by_process": data["fixed"]["cpu_ms_per_msg"],
        "db_cpu_ms_fixed": data["fixed"]["cpu_ms_per_msg"].get("database"),
    }
    for key in ("closed_own", "closed_fleet"):
        window = data.get(key)
        if window is None:
            continue
        stats = window.get("db_commands")
        out[key] = {
            "achieved": window["achieved"], "p50_ms": window["overall"]["p50_ms"],
            "p99_ms": window["overall"]["p99_ms"],
            "errors": window["overall"]["errors"] + window["overall"]["timeouts"],
            "start_p50_ms": _action_p50(window, "StartTransaction"),
            "db_ops_per_msg": window["db_ops_per_msg"],
            "db_cpu_ms_per_msg": window["cpu_ms_per_msg"].get("database"),
            "cpu_ms_own": _cpu_own(window),
            "round_trips_per_msg": (db_commands.totals(window, stats)["round_trips_per_msg"]
                                    if stats and stats["counts"] else None),
        }
    return out


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
        shown = "n/a (neither sustained a ladder step)" if ratio != ratio else f"{ratio:.2f}x"
        parts.append(
            f"GridLink / baseline: sustained throughput **{shown}** (target >= 1.0), peak "
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
    parts += _closed_loop_sections(measured)
    results.save_figures("throughput", {
        "chargers": chargers, "database": database,
        "systems": {name: figures(data, fixed_rate) for name, data in measured.items()}})
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
        rows = db_commands.per_action(window, stats)
        db_cpu_ms = (window["cpu_ms_per_msg"].get("database") or 0.0) * max(
            window["overall"]["answered"], 1)
        per_trip = db_cpu_ms / max(sum(stats["counts"].values()), 1.0)
        rows = [[*row[:3], float(row[2]) * per_trip, row[3]] for row in rows]  # type: ignore[arg-type]
        parts.append(results.table(
            ["action / work", "handled", "round trips per msg",
             "DB CPU ms per msg (est.)", "by collection.command"], rows))
        parts.append(results.table(
            ["component", "collection", "command", "count", "ms total", "ms per handled msg"],
            db_commands.slowest(window, stats)))
    return parts


def _closed_loop_sections(measured: dict[str, dict[str, Any]]) -> list[str]:
    """Closed loop, one tag per charger and one fleet tag: every system side by side."""
    rows = []
    for name, data in measured.items():
        for key, label in (("closed_own", "one tag per charger"),
                           ("closed_fleet", "one fleet tag for all")):
            window = data.get(key)
            if window is None:
                continue
            stats = window.get("db_commands")
            trips = (db_commands.totals(window, stats)["round_trips_per_msg"]
                     if stats and stats["counts"] else None)
            rows.append([
                name, label, window["achieved"], window["overall"]["p50_ms"],
                window["overall"]["p99_ms"],
                window["overall"]["errors"] + window["overall"]["timeouts"],
                _action_p50(window, "StartTransaction"), window["db_ops_per_msg"], trips,
                window["cpu_ms_per_msg"].get("database"), _cpu_own(window),
                f"{100 * window['machine_busy']:.0f}%",
            ])
    if not rows:
        return []
    return [
        "### Closed loop (every charger sends its next call once the last is answered)",
        results.table(
            ["system", "id tags", "achieved msg/s", "p50 ms", "p99 ms", "errors+timeouts",
             "StartTransaction p50 ms", "DB ops per msg (server)",
             "round trips per msg (services)", "DB CPU ms per msg", "own CPU ms per msg",
             "machine CPU busy"],
            rows,
        ),
        "'own CPU': GridLink's four processes and RabbitMQ, or the baseline's one process "
        "(neither the database nor the load generator).",
    ]
