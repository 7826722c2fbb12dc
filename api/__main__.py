"""``python -m api``: the operator HTTP API (see :mod:`api.server`)."""

from __future__ import annotations

import sys

from api.server import run_api
from services.entry import run_component

if __name__ == "__main__":
    sys.exit(run_component("api", run_api))
