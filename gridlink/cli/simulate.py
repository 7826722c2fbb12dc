"""``gridlink simulate``: the fleet simulator (:mod:`simulator`, an independent program)."""

from __future__ import annotations

import argparse
from typing import Any

from services.settings import Settings
from simulator.cli import add_arguments, run


def add_parsers(sub: Any, parser_class: type) -> None:
    simulate = sub.add_parser("simulate", help="simulate a fleet of OCPP 1.6 chargers")
    add_arguments(simulate)
    simulate.set_defaults(dispatch=dispatch)


async def dispatch(settings: Settings, args: argparse.Namespace) -> int:
    return await run(args)
