"""Benchmark 5: how fast the ``gridlink`` command starts.

Each command runs ``runs`` times as a fresh process (``python -m gridlink ...``, as the
console script does); reported are the median wall time and the median CPU time (user +
system of the child, which other work on the machine disturbs less than wall time), next to
what any Python tool pays in the same run: the bare interpreter (``python -c pass``) and the
two libraries a command that reads the database cannot avoid (pymongo and pydantic-settings).
``stations list`` reads a SecantusDB the benchmark starts; ``command ... --no-wait`` publishes
to the shared RabbitMQ in a namespace of its own (no station holds it, so the command ends
``station offline``, which is still a whole start-up, parse, connect and publish). Last,
``tags import`` of a generated file against ``tags add`` run once per tag.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench import processes, results, systems

#: (label, argv after ``python``): the floors first, then the commands the issue names.
FLOORS: tuple[tuple[str, list[str]], ...] = (
    ("python -c pass (interpreter)", ["-c", "pass"]),
    ("python -c 'import pymongo, pydantic_settings' (libraries)",
     ["-c", "import pymongo, pydantic_settings"]),
)
COMMANDS: tuple[tuple[str, list[str]], ...] = (
    ("gridlink --help", ["-m", "gridlink", "--help"]),
    ("gridlink stations list", ["-m", "gridlink", "stations", "list"]),
    ("gridlink command CP Reset --no-wait",
     ["-m", "gridlink", "command", "BENCH-CP", "Reset", '{"type": "Soft"}', "--no-wait"]),
)


def _time_one(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system of the child) and the exit code of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], env=env, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def _measure(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float, int]:
    samples = [_time_one(argv, env) for _ in range(runs)]
    return (statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples),
            samples[-1][2])


def _import_rows(env: dict[str, str], tags: int, logs: Path) -> list[list[object]]:
    """``tags import`` of ``tags`` lines against one ``tags add`` per tag (the way before)."""
    source = logs / "tags.csv"
    source.write_text("id_tag,status\n" + "".join(f"IMP{i:06d},Accepted\n" for i in range(tags)))
    wall, cpu, code = _time_one(["-m", "gridlink", "tags", "import", str(source)], env)
    one_wall, one_cpu, _ = _measure(["-m", "gridlink", "tags", "add", "ONE-TAG"], env, 3)
    return [
        [f"gridlink tags import ({tags:,} lines, one process)", wall * 1000, cpu * 1000, "-",
         code],
        [f"gridlink tags add, once per tag (x {tags:,}, extrapolated)", one_wall * tags * 1000,
         one_cpu * tags * 1000, f"{one_wall * tags / wall:.0f} x slower", "-"],
    ]


def run(runs: int = 7, import_tags: int = 5000) -> Path:
    """Measure every command ``runs`` times; write ``bench/results/cli.md``."""
    logs = processes.logs_dir()
    namespace = f"benchcli{uuid.uuid4().hex[:8]}"
    rows: list[list[object]] = []
    with systems.database(logs) as db:
        env = processes.base_env() | {
            "GRIDLINK_MONGO_URL": db.url, "GRIDLINK_MONGO_DB": namespace,
            "GRIDLINK_NAMESPACE": namespace,
        }
        _time_one(["-m", "gridlink", "stations", "list"], env)  # creates the indexes
        floor_cpu = 0.0
        for label, argv in FLOORS:
            wall, cpu, _ = _measure(argv, env, runs)
            floor_cpu = floor_cpu or cpu
            rows.append([label, wall * 1000, cpu * 1000, cpu / floor_cpu, "-"])
        for label, argv in COMMANDS:
            wall, cpu, code = _measure(argv, env, runs)
            rows.append([label, wall * 1000, cpu * 1000, cpu / floor_cpu, code])
        rows += _import_rows(env, import_tags, logs)
    systems.delete_broker_objects(namespace)
    body = results.table(
        ["command", "wall ms (median)", "CPU ms (median)", "CPU x interpreter", "exit code"],
        rows)
    notes = (
        f"{runs} runs each, medians. Only the module of the command being run is imported "
        "(`gridlink/cli/__init__.py`, `COMMANDS`); `--help` imports no database, broker or "
        "codec module. The libraries row is the floor of any command that reads MongoDB with "
        f"GridLink's settings. CPU count of this machine: {os.cpu_count()}."
    )
    return results.write("cli", "gridlink command start-up", body,
                         database=systems.IN_MEMORY, notes=notes)
