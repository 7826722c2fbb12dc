"""The ``gridlink`` command. Errors are one line on stderr, never a traceback.

::

    gridlink run gateway|authz|transactions|commands|all
    gridlink stations add ID... [--password P] [--registration Accepted|Pending|Rejected]
    gridlink stations list [--json]
    gridlink tags add TAG [--status S] [--expiry ISO8601] [--parent TAG]
    gridlink tags list [--json]
    gridlink transactions list [--station ID] [--json]
    gridlink command STATION ACTION [JSON_PAYLOAD] [--timeout S] [--no-wait]
                     [--queue-if-offline] [--expires-in S] [--id COMMAND_ID]
    gridlink commands list [--station ID] [--json]
    gridlink simulate --url ws://host:9000/ocpp --chargers N ...

and, one module per feature area in services/cli_extensions/: remote, config, availability,
firmware, diagnostics, locallist, reserve, reservations, groups, profiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from pydantic import ValidationError
from pymongo.errors import PyMongoError

from services import admin, command_examples, logs, ocpp16
from services.cli_extensions import load_extensions
from services.errors import ConfigurationError, GridLinkError
from services.settings import Settings, effective_mongo_url, load_settings
from services.store import Store
from simulator.cli import add_arguments as add_simulator_arguments

EXIT_FAILED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigurationError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gridlink", description="GridLink OCPP 1.6-J CSMS")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a component (or all of them)")
    run.add_argument("component", choices=["gateway", "authz", "transactions", "commands", "all"])

    stations = sub.add_parser("stations", help="the station registry")
    st = stations.add_subparsers(dest="action", required=True, parser_class=_Parser)
    st_add = st.add_parser("add", help="register charge points")
    st_add.add_argument("ids", nargs="+", metavar="ID")
    st_add.add_argument("--password", help="Basic-auth password (security profile 1/2)")
    st_add.add_argument("--registration", choices=["Accepted", "Pending", "Rejected"],
                        default=None, help="BootNotification answer (default: Accepted)")
    st_list = st.add_parser("list", help="list charge points")
    st_list.add_argument("--json", action="store_true")

    tags = sub.add_parser("tags", help="the id-tag store")
    tg = tags.add_subparsers(dest="action", required=True, parser_class=_Parser)
    tg_add = tg.add_parser("add", help="add or update an id tag")
    tg_add.add_argument("tag")
    tg_add.add_argument("--status", choices=["Accepted", "Blocked", "Expired", "Invalid"],
                        default="Accepted")
    tg_add.add_argument("--expiry", help="ISO 8601 expiry, e.g. 2027-01-01T00:00:00Z")
    tg_add.add_argument("--parent", help="parent id tag (group)")
    tg_list = tg.add_parser("list", help="list id tags")
    tg_list.add_argument("--json", action="store_true")

    transactions = sub.add_parser("transactions", help="charging sessions")
    tx = transactions.add_subparsers(dest="action", required=True, parser_class=_Parser)
    tx_list = tx.add_parser("list", help="list transactions")
    tx_list.add_argument("--station")
    tx_list.add_argument("--json", action="store_true")

    command = sub.add_parser(
        "command", help="send an OCPP call to a charger and print its answer",
        epilog=command_examples.epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument("station")
    command.add_argument("ocpp_action", metavar="ACTION")
    command.add_argument("payload", nargs="?", default="{}", metavar="JSON_PAYLOAD")
    command.add_argument("--timeout", type=float, default=30.0,
                         help="seconds the charger may take to answer (default 30)")
    command.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                         help="wait for the charger's answer (default) or just submit")
    command.add_argument("--queue-if-offline", action="store_true",
                         help="if the station is offline, send after its next boot")
    command.add_argument("--expires-in", type=float, metavar="S",
                         help="give up (status expired) if not sent within S seconds")
    command.add_argument("--id", dest="command_id",
                         help="command id (idempotency key; default: a new UUID)")

    commands = sub.add_parser("commands", help="commands sent to chargers and their lifecycle")
    cm = commands.add_subparsers(dest="action", required=True, parser_class=_Parser)
    cm_list = cm.add_parser("list", help="list commands, newest first")
    cm_list.add_argument("--station")
    cm_list.add_argument("--limit", type=int, default=50)
    cm_list.add_argument("--json", action="store_true")

    for extension in load_extensions().values():
        extension.add_parsers(sub, _Parser)

    simulate = sub.add_parser("simulate", help="simulate a fleet of OCPP 1.6 chargers")
    add_simulator_arguments(simulate)
    return parser


def print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("(none)")
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(_cell(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(_cell(row[c]).ljust(widths[c]) for c in columns))


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return " > ".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


async def with_db(settings: Settings, work: Callable[[Any], Awaitable[Any]]) -> Any:
    store = Store(effective_mongo_url(settings), settings.mongo_db, component="cli")
    try:
        if not await store.ping():
            raise GridLinkError(
                "cannot reach MongoDB (set GRIDLINK_MONGO_URL, or start `make run` first)")
        await store.ensure_indexes(admin.INDEXES)
        return await work(store.db)
    finally:
        await store.close()


def _parse_expiry(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return ocpp16.parse_time(text)
    except ValueError:
        raise ConfigurationError(f"--expiry: not an ISO 8601 date-time: {text!r}") from None


async def _command(settings: Settings, args: argparse.Namespace) -> int:
    from services.command_client import send_command

    try:
        payload = ocpp16.loads_strict(args.payload)
    except ValueError as exc:
        raise ConfigurationError(f"JSON_PAYLOAD is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ConfigurationError("JSON_PAYLOAD must be a JSON object")
    if args.timeout <= 0:
        raise ConfigurationError("--timeout must be positive")
    if args.expires_in is not None and args.expires_in <= 0:
        raise ConfigurationError("--expires-in must be positive")
    try:
        result = await send_command(settings, args.station, args.ocpp_action, payload,
                                    timeout_s=args.timeout, command_id=args.command_id,
                                    wait=args.wait, queue_if_offline=args.queue_if_offline,
                                    expires_in_s=args.expires_in)
    except TimeoutError:
        raise GridLinkError(f"timeout: no result within {args.timeout:g} s") from None
    except ValidationError as exc:
        raise ConfigurationError(f"invalid command: {exc.errors()[0]['msg']}") from None
    if result is None:
        print(json.dumps({"submitted": True}))
        return 0
    if result.status in ("accepted", "rejected"):
        print(json.dumps(result.response, indent=2))
        return 0
    reason = {
        "invalid": "invalid command",
        "offline": "station offline",
        "timeout": "timeout",
        "callerror": "CALLERROR",
    }.get(result.status, result.status)
    detail = " ".join(x for x in (result.error_code, result.error_description) if x)
    print(f"gridlink: {reason}: {detail}".rstrip(": "), file=sys.stderr)
    return EXIT_FAILED


async def _dispatch(settings: Settings, args: argparse.Namespace) -> int:
    extension = getattr(args, "extension", None)
    if extension is not None:
        return int(await load_extensions()[extension].dispatch(settings, args))
    if args.command == "stations" and args.action == "add":
        registration = args.registration or settings.default_registration
        await with_db(settings, lambda db: admin.add_stations(
            db, args.ids, registration=registration, password=args.password))
        print(f"added {len(args.ids)} station(s)")
    elif args.command == "stations":
        print_rows(await with_db(settings, admin.list_stations), args.json)
    elif args.command == "tags" and args.action == "add":
        expiry = _parse_expiry(args.expiry)
        await with_db(settings, lambda db: admin.add_tag(
            db, args.tag, status=args.status, expiry=expiry, parent=args.parent))
        print(f"tag {args.tag} saved")
    elif args.command == "tags":
        print_rows(await with_db(settings, admin.list_tags), args.json)
    elif args.command == "transactions":
        print_rows(await with_db(settings, lambda db: admin.list_transactions(
            db, args.station)), args.json)
    elif args.command == "command":
        return await _command(settings, args)
    elif args.command == "commands":
        print_rows(await with_db(settings, lambda db: admin.list_commands(
            db, args.station, args.limit)), args.json)
    elif args.command == "simulate":
        from simulator.cli import run as run_simulator

        return await run_simulator(args)
    return 0


def _run_component(settings: Settings, component: str) -> int:
    logs.configure(component, settings.log_level)
    if component == "all":
        from services.launcher import run_all

        return run_all(settings)
    if component == "gateway":
        from gateway.server import run_gateway

        _run_loop(run_gateway(settings))
        return 0
    from services.runtime import run_service

    spec = _service_spec(component)
    _run_loop(run_service(spec, settings))
    return 0


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run a component on uvloop where it is installed (Linux, macOS), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def _service_spec(component: str) -> Any:
    if component == "authz":
        from authz.service import SPEC
    elif component == "transactions":
        from transactions.service import SPEC
    else:
        from commands.service import SPEC
    return SPEC


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        settings = load_settings()
        if args.command == "run":
            return _run_component(settings, args.component)
        # Library warnings (connection retries) would add lines to the one-line error.
        logging.getLogger().addHandler(logging.NullHandler())
        return asyncio.run(_dispatch(settings, args))
    except GridLinkError as exc:
        print(f"gridlink: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigurationError) else EXIT_FAILED
    except PyMongoError as exc:
        print(f"gridlink: database error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
