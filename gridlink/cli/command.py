"""Any OCPP call to a charger, and the commands sent so far::

    gridlink command STATION ACTION [JSON_PAYLOAD] [--timeout S] [--no-wait]
                     [--queue-if-offline] [--expires-in S] [--id COMMAND_ID]
    gridlink commands list [--station ID] [--limit N] [--json]

``command`` prints the charger's CALLRESULT as JSON and exits 0, or one line (``invalid
command``, ``station offline``, ``timeout``, ``expired``, ``CALLERROR``) and exits 1.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from gridlink import command_examples
from gridlink.cli.output import answered, positive, print_rows, send, submit, with_db
from services import strict_json
from services.errors import ConfigurationError
from services.settings import Settings


def add_parsers(sub: Any, parser_class: type) -> None:
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
    command.set_defaults(dispatch=dispatch_command)

    commands = sub.add_parser("commands", help="commands sent to chargers and their lifecycle")
    cm = commands.add_subparsers(dest="action", required=True, parser_class=parser_class)
    cm_list = cm.add_parser("list", help="list commands, newest first")
    cm_list.add_argument("--station")
    cm_list.add_argument("--limit", type=int, default=50)
    cm_list.add_argument("--json", action="store_true")
    cm_list.set_defaults(dispatch=dispatch_list)


async def dispatch_command(settings: Settings, args: argparse.Namespace) -> int:
    try:
        payload = strict_json.loads_strict(args.payload)
    except ValueError as exc:
        raise ConfigurationError(f"JSON_PAYLOAD is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ConfigurationError("JSON_PAYLOAD must be a JSON object")
    positive("--timeout", args.timeout)
    positive("--expires-in", args.expires_in)
    options = {"command_id": args.command_id, "queue_if_offline": args.queue_if_offline,
               "expires_in_s": args.expires_in}
    if not args.wait:
        await submit(settings, args.station, args.ocpp_action, payload,
                     timeout_s=args.timeout, wait=False, **options)
        print(json.dumps({"submitted": True}))
        return 0
    result = answered(await send(settings, args.station, args.ocpp_action, payload,
                                 timeout_s=args.timeout, **options))
    print(json.dumps(result.response, indent=2))
    return 0


async def dispatch_list(settings: Settings, args: argparse.Namespace) -> int:
    from gridlink import queries

    print_rows(await with_db(settings, lambda db: queries.list_commands(
        db, args.station, args.limit)), args.json)
    return 0
