"""Run every benchmark (``python -m bench`` / ``make bench``); each writes bench/results/*.md.

python -m bench                       # all six, sized for < 15 minutes on 2 cores
python -m bench --only throughput     # one of: connections throughput storm soak durability cli
python -m bench --soak-duration 600   # the full 10-minute soak
python -m bench --quick               # small sizes: a smoke run in ~3 minutes
python -m bench.targets               # the targets table again from the last results
"""

from __future__ import annotations

import argparse
import sys
import time

from simulator.resources import raise_file_limit

BENCHES = ("connections", "throughput", "storm", "soak", "durability", "cli")


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the chosen benchmarks in order, print where the results are."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", action="append", choices=BENCHES, default=[])
    parser.add_argument(
        "--soak-duration",
        type=float,
        default=80.0,
        help="seconds of soak after warm-up (default 80: make bench under 15 min; 600: full)",
    )
    parser.add_argument("--connections", type=int, default=15000)
    parser.add_argument("--storm", type=int, default=10000)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--db-on-disk",
        action="store_true",
        help="throughput: SecantusDB on disk with its journal (GridLink's j:true writes wait "
        "for an fsync, as in production) instead of in memory (no journal)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy every process during the throughput benchmark's fixed-rate window "
        "(writes bench/results/profile.md; needs py-spy; the default of a full run when "
        "py-spy is installed)",
    )
    parser.add_argument("--no-profile", action="store_true", help="no py-spy, even in a full run")
    parser.add_argument(
        "--compare-queues",
        action="store_true",
        help="throughput: also measure GridLink with classic service queues (the default of a "
        "full run)",
    )
    args = parser.parse_args(argv)
    full = not args.quick and not args.only
    profile = not args.no_profile and (args.profile or (full and _have_py_spy()))
    raise_file_limit()
    chosen = args.only or list(BENCHES)
    from bench import results

    idle = results.background_load()
    results.note_background(idle)
    if idle > 0.15:
        print(
            f"warning: the machine is already {idle:.0%} busy; results will be noisy",
            file=sys.stderr,
            flush=True,
        )
    started = time.monotonic()
    from bench import (
        bench_cli,
        bench_connections,
        bench_durability,
        bench_soak,
        bench_storm,
        bench_throughput,
    )

    written = []
    for name in chosen:
        began = time.monotonic()
        print(f"== {name} ==", flush=True)
        if name == "connections":
            written.append(
                bench_connections.run(
                    chargers=2000 if args.quick else args.connections,
                    ramp_s=5 if args.quick else 60,
                )
            )
        elif name == "throughput":
            written.append(
                bench_throughput.run(
                    chargers=200 if args.quick else 500,
                    step_s=4 if args.quick else 8,
                    fixed_s=6 if args.quick else 15,
                    ladder=(100, 200, 400) if args.quick else bench_throughput.LADDER,
                    profile=profile,
                    on_disk=args.db_on_disk,
                    classic=args.compare_queues or full,
                )
            )
        elif name == "storm":
            written.append(bench_storm.run(chargers=2000 if args.quick else args.storm))
        elif name == "soak":
            written.append(
                bench_soak.run(
                    duration_s=60 if args.quick else args.soak_duration,
                    chargers=300 if args.quick else 1000,
                )
            )
        elif name == "cli":
            written.append(bench_cli.run(runs=3 if args.quick else 7))
        elif name == "durability":
            written.append(bench_durability.run(count=500 if args.quick else 2000))
        print(f"== {name}: {time.monotonic() - began:.0f} s ==", flush=True)
    from bench import targets

    written.append(targets.write())
    print(f"all done in {time.monotonic() - started:.0f} s:", *map(str, written), sep="\n  ")
    return 0


def _have_py_spy() -> bool:
    import shutil
    from pathlib import Path

    return Path(sys.executable).with_name("py-spy").exists() or bool(shutil.which("py-spy"))


if __name__ == "__main__":
    sys.exit(main())
