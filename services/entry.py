"""The body of every component's ``__main__`` (``python -m gateway``, ``python -m authz`` ...).

Settings are read once, logs become JSON lines named after the component, and the component
runs on uvloop where it is installed. A bad setting is one line on stderr (exit 2); a
failure GridLink knows (or the database refusing at start-up) is one line too (exit 1).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from pymongo.errors import PyMongoError

from services import logs
from services.errors import ConfigurationError, GridLinkError
from services.settings import Settings, load_settings

Main = Callable[[Settings], Coroutine[Any, Any, None]]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def run_component(component: str, main: Main, settings: Settings | None = None) -> int:
    """Run ``main(settings)`` until it returns (a graceful stop); the exit code."""
    try:
        settings = settings if settings is not None else load_settings()
        logs.configure(component, settings.log_level)
        run_loop(main(settings))
    except GridLinkError as exc:
        print(f"{component}: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigurationError) else EXIT_FAILED
    except PyMongoError as exc:
        print(f"{component}: database error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run a component on uvloop where it is installed (Linux, macOS), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
