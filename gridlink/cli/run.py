"""Running GridLink::

    gridlink run gateway|authz|transactions|commands|all

A component runs in this process (as ``python -m <component>`` does); ``all`` starts the
embedded database when no GRIDLINK_MONGO_URL is set, and every component as a child process
(:mod:`gridlink.launcher`).
"""

from __future__ import annotations

from typing import Any

from gridlink import components
from gridlink.launcher import run_all
from services import logs
from services.entry import run_component
from services.settings import Settings


def add_parsers(sub: Any, parser_class: type) -> None:
    run = sub.add_parser("run", help="run a component (or all of them)")
    run.add_argument("component", choices=[*components.NAMES, "all"])


def run(settings: Settings, component: str) -> int:
    """Run one component (or all of them) until it stops; the exit code."""
    if component == "all":
        logs.configure(component, settings.log_level)
        return run_all(settings)
    return run_component(component, components.main_of(component), settings)
