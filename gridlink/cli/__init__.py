"""The ``gridlink`` command. Errors are one line on stderr, never a traceback.

::

    gridlink run gateway|authz|transactions|commands|all
    gridlink stations add|list      gridlink tags add|list      gridlink transactions list
    gridlink command STATION ACTION [JSON_PAYLOAD] ...          gridlink commands list
    gridlink groups ...             gridlink profiles ...       (smart charging)
    gridlink remote start|stop      gridlink config show        gridlink availability list
    gridlink firmware ...           gridlink diagnostics ...    gridlink logs ...
    gridlink locallist sync|show    gridlink reserve ...        gridlink reservations ...
    gridlink security events        gridlink certificates ...   gridlink trigger ...
    gridlink simulate --url ws://host:9000/ocpp --chargers N ...

One module per subcommand family, listed in :data:`SUBCOMMANDS` (their order is the order
of ``gridlink --help``). Each module's ``add_parsers(sub, parser_class)`` adds its parsers
and sets ``dispatch``, the coroutine that runs the subcommand.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from pymongo.errors import PyMongoError

from gridlink.cli import (
    charging,
    command,
    firmware,
    locallist,
    remote,
    reservations,
    run,
    security,
    simulate,
    stations,
    transactions,
    uploads,
)
from gridlink.cli.output import Parser
from services.errors import ConfigurationError, GridLinkError
from services.settings import load_settings

EXIT_FAILED = 1
EXIT_USAGE = 2

SUBCOMMANDS: tuple[ModuleType, ...] = (
    run, stations, transactions, command, charging, remote, firmware, uploads, locallist,
    reservations, security, simulate,
)


def build_parser() -> Parser:
    parser = Parser(prog="gridlink", description="GridLink OCPP 1.6-J CSMS")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in SUBCOMMANDS:
        module.add_parsers(sub, Parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        settings = load_settings()
        if args.command == "run":
            return run.run(settings, args.component)
        # Library warnings (connection retries) would add lines to the one-line error.
        logging.getLogger().addHandler(logging.NullHandler())
        return int(asyncio.run(args.dispatch(settings, args)))
    except GridLinkError as exc:
        print(f"gridlink: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigurationError) else EXIT_FAILED
    except PyMongoError as exc:
        print(f"gridlink: database error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
