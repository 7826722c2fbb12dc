"""``python -m tests.faults`` (``make faults``): every scenario against one cluster, then
the table (scenario, transactions, messages, lost, duplicated, unanswered, time to recover).

``python -m tests.faults NAME...`` runs the scenarios whose names contain one of the words;
``--short`` the short version of ``make test``. Exit status 0 when every row is clean.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import tempfile
from pathlib import Path

from tests.faults.cluster import Cluster
from tests.faults.scenarios import Row, all_scenarios, run_scenario, short_scenario, table


async def _main(args: argparse.Namespace) -> int:
    scenarios = [short_scenario()] if args.short else all_scenarios()
    if args.names:
        scenarios = [s for s in scenarios if any(n in s.name for n in args.names)]
    directory = Path(tempfile.mkdtemp(prefix="gridlink-faults-"))
    print(f"harness directory (logs): {directory}", flush=True)
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # end the cluster cleanly on Ctrl-C
        loop.add_signal_handler(signum, task.cancel)
    rows: list[Row] = []
    async with Cluster(directory) as cluster:
        for scenario in scenarios:
            print(f"--- {scenario.name}: {scenario.proves}", flush=True)
            row = await run_scenario(cluster, scenario)
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
            for line in [*row.notes, *row.result.problems[:20]]:
                print(f"    {line}", flush=True)
    print()
    print(table(rows))
    return 0 if all(row.clean for row in rows) else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("names", nargs="*", help="run only scenarios whose names contain these")
    parser.add_argument("--short", action="store_true", help="the short version (make test)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
