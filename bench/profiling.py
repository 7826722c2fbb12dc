"""Where the time goes: sample running processes with py-spy and summarise the hottest frames.

    python -m bench.profiling --help

Used by hand while a benchmark's load runs (``py-spy`` must be installed; it is not a GridLink
dependency).  The summary lists, per process, the share of samples in which each function is
on the stack ("incl") and at the top ("self"), idle samples (waiting in ``select``/``epoll``)
counted separately so the percentages read as "share of busy time".
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

#: Frames at the top of a stack that mean "waiting", not working (event loop, idle pool
#: threads, a threaded server blocked on its socket).
IDLE = (
    "select (selectors.py",
    "EpollSelector.select",
    "_run_once (uvloop",
    "Runner.run (asyncio/runners.py",  # uvloop: its C loop (epoll) under the Python frame
    "poll (selectors.py",
    "_worker (concurrent/futures/thread.py",
    "wait (threading.py",
    "_recv_exactly (secantus/wire.py",
)


def record(pids: dict[str, int], seconds: float, rate: int = 100) -> dict[str, Path]:
    """Run one ``py-spy record --format raw`` per process in parallel; return the raw files."""
    beside = Path(sys.executable).with_name("py-spy")
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    folder = Path(tempfile.mkdtemp(prefix="gridlink-profile-"))
    running = []
    for name, pid in pids.items():
        out = folder / f"{name}.txt"
        running.append(
            (
                name,
                out,
                subprocess.Popen(
                    [
                        spy,
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(int(seconds)),
                        "--rate",
                        str(rate),
                        "--format",
                        "raw",
                        "--output",
                        str(out),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                ),
            )
        )
    files = {}
    for name, out, process in running:
        try:
            process.wait(seconds + 30)
        except subprocess.TimeoutExpired:  # py-spy fell behind (many threads): stop it
            process.terminate()
            process.wait(10)
        if out.exists() and out.stat().st_size:
            files[name] = out
    return files


def summarise(raw: Path, top: int = 25) -> str:
    """The hottest frames of one raw py-spy file, as text."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        if any(marker in frames[-1] for marker in IDLE):
            idle += count
            continue
        self_counts[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    busy = max(total - idle, 1)
    lines = [f"{raw.stem}: {total} samples, {100 * (total - idle) / max(total, 1):.0f}% busy"]
    lines += [
        f"  self {100 * n / busy:5.1f}%  {frame[:140]}" for frame, n in self_counts.most_common(top)
    ]
    lines += [
        f"  incl {100 * n / busy:5.1f}%  {frame[:140]}"
        for frame, n in inclusive.most_common(top * 2)
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pid", nargs="+", help="NAME=PID")
    parser.add_argument("--seconds", type=float, default=15)
    arguments = parser.parse_args()
    targets = dict(item.split("=", 1) for item in arguments.pid)
    for _name, path in record({k: int(v) for k, v in targets.items()}, arguments.seconds).items():
        print(summarise(path))
