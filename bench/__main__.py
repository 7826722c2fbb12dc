"""``python -m bench``: run the benchmarks (see bench/run_all.py)."""

from __future__ import annotations

import sys

from bench.run_all import main

if __name__ == "__main__":
    sys.exit(main())
