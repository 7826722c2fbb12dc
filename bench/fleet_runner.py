"""A simulator fleet in its own process(es), steered by a benchmark over a pipe.

The benchmark process stays free to sample the server while the fleet runs elsewhere::

    with FleetProcess(plan, workers=2) as fleet:
        fleet.wait_accepted(120)
        fleet.set_rate(500)
        fleet.mark()
        time.sleep(10)
        window = fleet.window()        # per-action counts and percentiles since mark()
    fleet.stats, fleet.report           # merged Stats and the report, after the with block

Workers use uvloop when it is installed (the load generator shares the machine with the
system under test, so it should be as cheap as possible).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from multiprocessing.connection import Connection
from typing import Any

from simulator.fleet import Fleet, Unreachable
from simulator.plan import FleetPlan, split_plan
from simulator.resources import raise_file_limit
from simulator.stats import Stats


def _child(plan: FleetPlan, conn: Connection) -> None:
    raise_file_limit()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        fleet = Fleet(
            plan,
            on_all_accepted=lambda: conn.send(
                ("accepted", time.monotonic() - fleet.stats.started_at)
            ),
        )
        marks: dict[str, Any] = {}

        def on_command() -> None:
            while conn.poll():
                command, argument = conn.recv()
                if command == "rate":
                    fleet.rate = argument
                elif command == "mark":
                    marks["last"] = fleet.stats.mark()
                elif command == "window":
                    conn.send(("window", fleet.stats.window(marks["last"])))
                elif command == "stop":
                    fleet.stop()

        loop.add_reader(conn.fileno(), on_command)
        try:
            stats = await fleet.run()
        except Unreachable as exc:
            os.set_blocking(conn.fileno(), True)
            conn.send(("error", str(exc)))
            return
        finally:
            loop.remove_reader(conn.fileno())
            os.set_blocking(conn.fileno(), True)  # the loop made it non-blocking; "done" is big
        conn.send(("done", (stats, fleet.report())))

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


class FleetProcess:
    """A fleet split over ``workers`` spawned processes (see the module docstring)."""

    def __init__(self, plan: FleetPlan, workers: int = 1) -> None:
        self.plans = split_plan(plan, workers)
        self.plan = plan
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._processes = []
        for sub in self.plans:
            parent, child = context.Pipe()
            process = context.Process(target=_child, args=(sub, child), daemon=True)
            self._pipes.append(parent)
            self._processes.append(process)
        self._inbox: list[list[tuple[str, Any]]] = [[] for _ in self.plans]
        self.stats: Stats | None = None
        self.report: dict[str, Any] | None = None
        self.started_at = 0.0

    def __enter__(self) -> FleetProcess:
        self.started_at = time.monotonic()
        for process in self._processes:
            process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def _expect(self, index: int, kind: str, timeout_s: float) -> Any:
        inbox = self._inbox[index]
        deadline = time.monotonic() + timeout_s
        while True:
            for n, (got, value) in enumerate(inbox):
                if got == kind:
                    del inbox[n]
                    return value
                if got == "error":
                    raise Unreachable(value)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"fleet worker {index}: no {kind!r} within {timeout_s:.0f} s")
            pipe = self._pipes[index]
            if pipe.poll(min(left, 0.5)):
                try:
                    inbox.append(pipe.recv())
                except EOFError:
                    raise RuntimeError(f"fleet worker {index} died") from None
            elif not self._processes[index].is_alive() and not pipe.poll():
                raise RuntimeError(f"fleet worker {index} exited")

    def wait_accepted(self, timeout_s: float) -> float:
        """Wait until every worker's chargers are all Accepted; seconds from start (slowest)."""
        deadline = time.monotonic() + timeout_s
        return max(
            self._expect(i, "accepted", max(deadline - time.monotonic(), 0.1))
            for i in range(len(self.plans))
        )

    def set_rate(self, rate: float) -> None:
        """Change the pacer rate (split between workers by their share of chargers)."""
        for pipe, sub in zip(self._pipes, self.plans, strict=True):
            pipe.send(("rate", rate * sub.chargers / self.plan.chargers))

    def mark(self) -> None:
        """Start a measurement window."""
        for pipe in self._pipes:
            pipe.send(("mark", None))

    def window(self) -> dict[str, Any]:
        """Counts and percentiles since :meth:`mark` (one worker only: percentiles are exact)."""
        if len(self._pipes) != 1:
            raise ValueError("windows need a single worker")
        self._pipes[0].send(("window", None))
        return self._expect(0, "window", 60)  # type: ignore[no-any-return]

    def stop(self, timeout_s: float = 60) -> None:
        """Stop the fleet (it drains and closes) and collect its stats."""
        if self.stats is not None:
            return
        for pipe, process in zip(self._pipes, self._processes, strict=True):
            if process.is_alive():
                with contextlib.suppress(OSError):
                    pipe.send(("stop", None))
        merged = Stats()
        reports = []
        for index, process in enumerate(self._processes):
            stats, report = self._expect(index, "done", timeout_s)
            if not merged.expected_chargers:
                merged.started_at = stats.started_at
            merged.merge(stats)
            reports.append(report)
            process.join(10)
        merged.expected_chargers = self.plan.chargers
        self.stats = merged
        self.report = reports[0] if len(reports) == 1 else merged.report(profile=self.plan.profile)
