"""The ``gridlink`` command. Errors are one line on stderr, never a traceback.

::

    gridlink run gateway|authz|transactions|commands|api|all
    gridlink stations add|list      gridlink tags add|list      gridlink transactions list
    gridlink command STATION ACTION [JSON_PAYLOAD] ...          gridlink commands list
    gridlink groups ...             gridlink profiles ...       (smart charging)
    gridlink remote start|stop      gridlink config show        gridlink availability list
    gridlink firmware ...           gridlink diagnostics ...    gridlink logs ...
    gridlink locallist sync|show    gridlink reserve ...        gridlink reservations ...
    gridlink security events        gridlink certificates ...   gridlink trigger ...
    gridlink simulate --url ws://host:9000/ocpp --chargers N ...
    gridlink api-keys add|list|revoke   gridlink run api           (the HTTP API)

Each subcommand family is one module, listed in :data:`COMMANDS` with the top-level names it
adds and their help (their order is the order of ``gridlink --help``). A module's
``add_parsers(sub, parser_class)`` adds its parsers and sets ``dispatch``, the coroutine that
runs the subcommand. Only the module of the command being run is imported: ``gridlink
--help`` imports none, ``gridlink stations list`` only what listing stations needs (see
``bench/bench_cli.py``); :func:`build_parser` with ``full=True`` imports them all.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from gridlink.cli.output import Parser
from services.errors import ConfigurationError, GridLinkError

EXIT_FAILED = 1
EXIT_USAGE = 2

#: module (under ``gridlink.cli``) -> the top-level commands it adds, with their help.
COMMANDS: dict[str, dict[str, str]] = {
    "run": {"run": "run a component (or all of them)"},
    "stations": {"stations": "the station registry", "tags": "the id-tag store"},
    "transactions": {"transactions": "charging sessions"},
    "command": {"command": "send an OCPP call to a charger and print its answer",
                "commands": "commands sent to chargers and their lifecycle"},
    "charging": {"groups": "site load management: station groups and limits",
                 "profiles": "charging profiles the chargers were told"},
    "remote": {"remote": "remote start/stop of transactions",
               "config": "configuration snapshots (from GetConfiguration)",
               "availability": "requested connector availability"},
    "firmware": {"firmware": "firmware images and (Signed)UpdateFirmware jobs"},
    "uploads": {"diagnostics": "diagnostics uploads and GetDiagnostics",
                "logs": "log uploads and GetLog (security and diagnostics logs)"},
    "locallist": {"locallist": "Local Authorization Lists (from the id tags)"},
    "reservations": {"reserve": "reserve a connector for an id tag (ReserveNow)",
                     "reservations": "stored reservations"},
    "security": {"security": "security events (SecurityEventNotification)",
                 "certificates": "charger and installed certificates",
                 "trigger": "ask a charger to send a message (ExtendedTriggerMessage)"},
    "simulate": {"simulate": "simulate a fleet of OCPP 1.6 chargers"},
    "api_keys": {"api-keys": "keys of the HTTP API"},
}


def family(module: str) -> ModuleType:
    """The subcommand family ``module`` of :data:`COMMANDS`, imported now. Each import is
    written out (no ``importlib``), so the import graph stays plain to readers and to
    ``tests/test_architecture.py``."""
    match module:
        case "run":
            from gridlink.cli import run as loaded
        case "stations":
            from gridlink.cli import stations as loaded
        case "transactions":
            from gridlink.cli import transactions as loaded
        case "command":
            from gridlink.cli import command as loaded
        case "charging":
            from gridlink.cli import charging as loaded
        case "remote":
            from gridlink.cli import remote as loaded
        case "firmware":
            from gridlink.cli import firmware as loaded
        case "uploads":
            from gridlink.cli import uploads as loaded
        case "locallist":
            from gridlink.cli import locallist as loaded
        case "reservations":
            from gridlink.cli import reservations as loaded
        case "security":
            from gridlink.cli import security as loaded
        case "simulate":
            from gridlink.cli import simulate as loaded
        case "api_keys":
            from gridlink.cli import api_keys as loaded
        case _:
            raise KeyError(module)
    return loaded


def _module_of(command: str) -> str | None:
    return next((module for module, names in COMMANDS.items() if command in names), None)


def _requested(argv: Sequence[str]) -> str | None:
    """The top-level command in ``argv`` (its first word that is not an option)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: Sequence[str] = (), *, full: bool = False) -> Parser:
    """The parser: in full for the module of the command ``argv`` asks for (every module if
    ``full``), and the other commands by name and help only."""
    parser = Parser(prog="gridlink", description="GridLink OCPP 1.6-J CSMS")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    wanted = set(COMMANDS) if full else {_module_of(_requested(argv) or "")}
    for module, names in COMMANDS.items():
        if module in wanted:
            family(module).add_parsers(sub, Parser)
        else:
            for name, text in names.items():
                sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser(argv).parse_args(argv)
        from services.settings import load_settings

        settings = load_settings()
        if args.command == "run":
            return family("run").run(settings, args.component)
        import asyncio

        # Library warnings (connection retries) would add lines to the one-line error.
        logging.getLogger().addHandler(logging.NullHandler())
        return int(asyncio.run(args.dispatch(settings, args)))
    except GridLinkError as exc:
        print(f"gridlink: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigurationError) else EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not _is_database_error(exc):
            raise
        print(f"gridlink: database error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_FAILED


def _is_database_error(exc: Exception) -> bool:
    """Whether ``exc`` is pymongo's (only possible if pymongo was imported at all)."""
    errors = sys.modules.get("pymongo.errors")
    return errors is not None and isinstance(exc, errors.PyMongoError)
