"""Every target of issue 12 with GridLink's figure, the baseline's from the same run, the ratio
and whether it is met: ``bench/results/targets.md``, printed, and the README's performance
table (between the ``bench:targets`` markers) regenerated from it.

Reads the figures each benchmark saved (``bench/results/<name>.json``, written by
:func:`bench.results.save_figures`); ``python -m bench`` runs it at the end, and
``python -m bench.targets`` alone rebuilds the table from the last results.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench import results

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- bench:targets begin -->", "<!-- bench:targets end -->"
Row = list[object]


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return str(value)


def _ratio(ours: Any, theirs: Any) -> str:
    if not ours or not theirs:
        return "-"
    return f"{ours / theirs:.2f}x"


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("**yes**" if ok else "no")


def _throughput_rows(data: dict[str, Any]) -> list[Row]:
    systems: dict[str, dict[str, Any]] = data["systems"]  # type: ignore[assignment]
    gl, base = systems.get("GridLink"), systems.get("baseline")
    if gl is None or base is None:
        return []
    rows: list[Row] = []
    for key, label in (("closed_own", "one tag per charger"),
                       ("closed_fleet", "one fleet tag for all chargers")):
        ours, theirs = gl.get(key), base.get(key)
        if not ours or not theirs:
            continue
        ok = ours["achieved"] >= theirs["achieved"] and not ours["errors"]
        rows.append([
            f"closed-loop throughput, {label} ({data['chargers']} chargers)",
            f"{_num(ours['achieved'])} msg/s, p50 {_num(ours['p50_ms'], 1)} ms, "
            f"StartTransaction p50 {_num(ours['start_p50_ms'], 1)} ms, "
            f"{ours['errors']} errors",
            f"{_num(theirs['achieved'])} msg/s, p50 {_num(theirs['p50_ms'], 1)} ms",
            _ratio(ours["achieved"], theirs["achieved"]), "≥ 1.0x baseline", _met(ok)])
    paced = gl.get("paced_p99_ms")
    rows.append([
        f"p99 at {_num(gl['paced_rate'])} msg/s offered (realistic mix)",
        f"p99 {_num(paced, 1)} ms, achieved {_num(gl.get('paced_achieved'))} msg/s",
        f"p99 {_num(base.get('paced_p99_ms'), 1)} ms, achieved "
        f"{_num(base.get('paced_achieved'))} msg/s",
        _ratio(paced, base.get("paced_p99_ms")), "p99 < 50 ms",
        _met(paced is not None and paced < 50 and (gl.get("paced_achieved") or 0)
             >= 0.95 * gl["paced_rate"])])
    rows.append([
        f"Authorize alone at {_num(gl['fixed_rate'])} msg/s",
        f"p50 {_num(gl['authorize_p50_ms'], 2)} ms, p99 {_num(gl['authorize_p99_ms'], 2)} ms",
        f"p50 {_num(base['authorize_p50_ms'], 2)} ms, p99 {_num(base['authorize_p99_ms'], 2)} ms",
        _ratio(gl["authorize_p99_ms"], base["authorize_p99_ms"]), "p99 ≤ 10 ms",
        _met(gl["authorize_p99_ms"] is not None and gl["authorize_p99_ms"] <= 10)])
    ours, theirs = gl.get("closed_own"), base.get("closed_own")
    if ours and theirs:
        trips = ours["round_trips_per_msg"]
        rows.append([
            "database round trips per answered message at saturation (closed loop, own tags)",
            f"{_num(trips, 2)} (services' command monitoring); "
            f"{_num(ours['db_ops_per_msg'], 2)} server operations",
            f"{_num(theirs['db_ops_per_msg'], 2)} server operations",
            _ratio(ours["db_ops_per_msg"], theirs["db_ops_per_msg"]),
            "≤ 1.0 and ≤ baseline",
            _met(trips is not None and trips <= 1.0
                 and ours["db_ops_per_msg"] <= theirs["db_ops_per_msg"])])
        rows.append([
            "database CPU ms per answered message at saturation (closed loop, own tags)",
            _num(ours["db_cpu_ms_per_msg"], 2), _num(theirs["db_cpu_ms_per_msg"], 2),
            _ratio(ours["db_cpu_ms_per_msg"], theirs["db_cpu_ms_per_msg"]), "≤ baseline",
            _met(ours["db_cpu_ms_per_msg"] <= theirs["db_cpu_ms_per_msg"])])
    by_process = ", ".join(f"{k} {v:.2f}" for k, v in gl["cpu_ms_by_process"].items()
                           if k != "database" and not k.startswith("simulator"))
    rows.append([
        f"CPU ms per answered message, own processes, at {_num(gl['fixed_rate'])} msg/s",
        f"{_num(gl['cpu_ms_own'], 2)} ({by_process})", _num(base["cpu_ms_own"], 2),
        _ratio(gl["cpu_ms_own"], base["cpu_ms_own"]),
        "reported next to the baseline's, with a profile per process (profile.md)",
        "reported"])
    return rows


def _storm_rows(data: dict[str, Any]) -> list[Row]:
    rows_by_name: dict[str, dict[str, Any]] = data["rows"]  # type: ignore[assignment]
    base = rows_by_name.get("baseline", {})
    out: list[Row] = []
    for name, row in rows_by_name.items():
        if not name.startswith("GridLink"):
            continue
        seconds = row["all_accepted_s"]
        ok = (seconds is not None and seconds <= 30 and row["boot_errors"] == 0
              and row["accepted"] >= data["chargers"])
        out.append([
            f"reconnect storm of {_num(data['chargers'])}, {name.removeprefix('GridLink, ')}",
            f"{_num(row['accepted'])} Accepted after {_num(seconds, 1)} s, "
            f"{row['boot_errors']} CALLERRORs, {row['boot_timeouts']} boot timeouts",
            f"{_num(base.get('all_accepted_s'), 1)} s, {base.get('boot_errors', '-')} "
            "CALLERRORs",
            _ratio(seconds, base.get("all_accepted_s")),
            "all Accepted within 30 s, 0 CALLERRORs", _met(ok)])
    return out


def _connection_rows(data: dict[str, Any]) -> list[Row]:
    return [[
        "idle connections per gateway",
        f"{_num(data['held'])} of {_num(data['chargers'])}, "
        f"{_num(data['kib_per_connection'], 1)} KiB each",
        f"bare websockets {_num(data['bare_kib_per_connection'], 1)} KiB",
        f"{data['ratio']:.2f}x", "≥ 15,000 at ≤ 1.3x bare websockets",
        _met(data["held"] >= 15000 and data["ratio"] <= 1.3)]]


def _soak_rows(data: dict[str, Any]) -> list[Row]:
    return [[
        f"soak, {data['chargers']} chargers, {_num(data['duration_s'] / 60, 1)} min",
        f"gateway RSS {_num(data['rss_start_mib'], 2)} → {_num(data['rss_end_mib'], 2)} MiB "
        f"({data['rss_slope_mib_per_min']:.2f} MiB/min), fds {data['fds_start']} → "
        f"{data['fds_end']}; {_num(data['answered'])} calls, {data['errors']} errors",
        "-", "-", "no growth (10-minute soak)",
        _met(not data["grows"]) + ("" if data["duration_s"] >= 600 else " (short soak)")]]


def build() -> tuple[str, list[str]]:
    """The targets table (markdown) and the runs it was taken from."""
    rows: list[Row] = []
    runs: list[str] = []
    for name, make in (("throughput", _throughput_rows), ("storm", _storm_rows),
                       ("connections", _connection_rows), ("soak", _soak_rows)):
        data = results.load_figures(name)
        if data is None:
            continue
        runs.append(f"{name} {data['run']}")
        rows += make(data)
    table = results.table(
        ["target", "GridLink", "baseline / reference, same run", "ratio", "target", "met"],
        rows)
    met = sum(1 for row in rows if str(row[-1]).startswith("**yes"))
    judged = sum(1 for row in rows if row[-1] not in ("reported", "-"))
    summary = f"{met} of {judged} targets met."
    return f"{table}\n\n{summary}", runs


def write() -> Path:
    """Write bench/results/targets.md, print it, and regenerate the README's table."""
    table, runs = build()
    body = table + "\n\nFrom the runs: " + "; ".join(runs) + "."
    path = results.write("targets", "Issue 12's targets, side by side", body,
                         database="see each benchmark's result file")
    update_readme(body)
    return path


def update_readme(body: str, readme: Path = README) -> bool:
    """Replace the text between the markers in the README (False if they are missing)."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        print(f"warning: {readme} has no {BEGIN} … {END} markers", file=sys.stderr)
        return False
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")
    return True


if __name__ == "__main__":
    print(write())
