"""The body of every component's ``__main__`` (``python -m gateway``, ``python -m authz`` ...).

Settings are read once (a bad one is one line on stderr, exit 2), logs become JSON lines
named after the component, and the component runs on uvloop where it is installed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from services import logs
from services.errors import ConfigurationError
from services.settings import Settings, load_settings

Main = Callable[[Settings], Coroutine[Any, Any, None]]

EXIT_USAGE = 2


def run_component(component: str, main: Main, settings: Settings | None = None) -> int:
    """Run ``main(settings)`` until it returns (a graceful stop); the exit code."""
    try:
        settings = settings if settings is not None else load_settings()
    except ConfigurationError as exc:
        print(f"{component}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(component, settings.log_level)
    run_loop(main(settings))
    return 0


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run a component on uvloop where it is installed (Linux, macOS), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
