"""``gridlink`` subcommands by feature area: every module here is found at start-up.

A module defines::

    def add_parsers(sub: argparse._SubParsersAction, parser_class: type) -> None
        # add subparsers with sub.add_parser(...); call .set_defaults(extension=__name__)
    async def dispatch(settings: Settings, args: argparse.Namespace) -> int
        # run the subcommand; raise GridLinkError/ConfigurationError for a one-line error

Shared helpers for them: :func:`services.cli.with_db` (a database handle),
:func:`services.cli.print_rows` (a table or JSON), :mod:`services.command_client`.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def load_extensions() -> dict[str, ModuleType]:
    modules = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        name = f"{__name__}.{info.name}"
        modules[name] = importlib.import_module(name)
    return modules
