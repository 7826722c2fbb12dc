"""Writing a benchmark's result: a markdown file in ``bench/results/`` and the same on stdout."""

from __future__ import annotations

import time
from pathlib import Path

from bench import machine

RESULTS = Path(__file__).resolve().parent / "results"
_machine_cache: dict[str, str] = {}


def background_load(seconds: float = 3.0) -> float:
    """Share of the machine's CPU busy over ``seconds`` before a benchmark (other work)."""
    from bench.processes import machine_cpu

    busy0, total0 = machine_cpu()
    time.sleep(seconds)
    busy1, total1 = machine_cpu()
    return (busy1 - busy0) / max(total1 - total0, 1e-9)


def table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table."""

    def cell(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


_background: float | None = None


def note_background(share: float) -> None:
    """Record the machine's CPU use measured before the benchmarks (shown in every result)."""
    global _background
    _background = share


def write(name: str, title: str, body: str, *, database: str, notes: str = "") -> Path:
    """Write ``bench/results/<name>.md`` (title, date, machine, versions, database, body)."""
    if not _machine_cache:
        _machine_cache.update(machine.describe())
    with open("/proc/loadavg") as loadavg:
        load = " ".join(loadavg.read().split()[:3])
    text = (
        f"# {title}\n\n"
        f"Run: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n\n"
        f"## Machine and versions\n\n{machine.markdown(_machine_cache)}\n"
        f"- database: {database}\n"
        f"- load average when written (1/5/15 min): {load}"
        + (f"; CPU busy before the run: {_background:.0%}" if _background is not None else "")
        + "\n\n"
        f"## Results\n\n{body}\n" + (f"\n## Notes\n\n{notes}\n" if notes else "")
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    print(text, flush=True)
    return path


def save_figures(name: str, figures: dict[str, object]) -> Path:
    """Write ``bench/results/<name>.json``: the figures the targets table reads
    (:mod:`bench.targets`), with when they were measured."""
    import json

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    stamped = {"run": time.strftime("%Y-%m-%d %H:%M:%S %Z"), **figures}
    path.write_text(json.dumps(stamped, indent=1, sort_keys=True, default=str) + "\n")
    return path


def load_figures(name: str) -> dict[str, object] | None:
    """The figures :func:`save_figures` wrote for ``name`` (None before any run)."""
    import json

    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded
