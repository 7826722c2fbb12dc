"""A fleet spread over worker processes: :func:`run_in_processes`.

The plan is split with :func:`simulator.plan.split_plan` (each part a plain, picklable
:class:`~simulator.plan.FleetPlan`: the security options travel as file names and
templates, read again in each worker) and each part runs in a spawned process with its own
event loop; their :class:`~simulator.stats.Stats` merge exactly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing

from simulator.fleet import Fleet
from simulator.plan import FleetPlan, split_plan
from simulator.resources import raise_file_limit
from simulator.stats import Stats


def _run_worker(plan: FleetPlan) -> Stats:
    """Run one plan in a fresh event loop (the body of a worker process)."""
    raise_file_limit()
    return asyncio.run(Fleet(plan).run())


async def run_in_processes(plan: FleetPlan, workers: int) -> Stats:
    """Run a plan split over ``workers`` spawned processes and merge their stats exactly."""
    plans = split_plan(plan, workers)
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(len(plans), mp_context=context) as pool:
        results = await asyncio.gather(*(loop.run_in_executor(pool, _run_worker, p) for p in plans))
    merged = Stats()
    merged.started_at = min(r.started_at for r in results)
    for result in results:
        merged.merge(result)
    merged.expected_chargers = plan.chargers
    return merged


__all__ = ["run_in_processes"]
