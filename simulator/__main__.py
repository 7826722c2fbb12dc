"""``python -m simulator``: the fleet simulator without the ``gridlink`` command."""

from __future__ import annotations

import sys

from simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
