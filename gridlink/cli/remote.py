"""Core-profile conveniences on top of ``gridlink command``::

    gridlink remote start STATION TAG [--connector N] [--limit AMPS]
    gridlink remote stop STATION (--transaction ID | --connector N)
    gridlink config show STATION [--json]
    gridlink availability list [--station ID] [--json]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from commands import station_configuration
from commands.core import repository as availability
from gridlink.cli.output import answered, positive, print_rows, send, with_db
from services import transaction_records
from services.envelope import CommandResult
from services.errors import GridLinkError
from services.settings import Settings


def add_parsers(sub: Any, parser_class: type) -> None:
    remote = sub.add_parser("remote", help="remote start/stop of transactions")
    rm = remote.add_subparsers(dest="action", required=True, parser_class=parser_class)
    start = rm.add_parser("start", help="RemoteStartTransaction",
                          epilog="example: gridlink remote start CP001 TAG001 --connector 1")
    start.add_argument("station")
    start.add_argument("tag")
    start.add_argument("--connector", type=int)
    start.add_argument("--limit", type=float, metavar="AMPS",
                       help="attach a TxProfile limiting the transaction to AMPS")
    stop = rm.add_parser("stop", help="RemoteStopTransaction by id or by connector",
                         epilog="example: gridlink remote stop CP001 --connector 1")
    stop.add_argument("station")
    which = stop.add_mutually_exclusive_group(required=True)
    which.add_argument("--transaction", type=int)
    which.add_argument("--connector", type=int)
    start.set_defaults(dispatch=remote_start)
    stop.set_defaults(dispatch=remote_stop)
    for parser in (start, stop):
        parser.add_argument("--timeout", type=float, default=30.0)

    config = sub.add_parser("config", help="configuration snapshots (from GetConfiguration)")
    cf = config.add_subparsers(dest="action", required=True, parser_class=parser_class)
    show = cf.add_parser("show", help="the last known configuration of a station")
    show.add_argument("station")
    show.add_argument("--json", action="store_true")
    show.set_defaults(dispatch=config_show)

    availability = sub.add_parser("availability", help="requested connector availability")
    av = availability.add_subparsers(dest="action", required=True, parser_class=parser_class)
    av_list = av.add_parser("list", help="requested availability and whether it is confirmed")
    av_list.add_argument("--station")
    av_list.add_argument("--json", action="store_true")
    av_list.set_defaults(dispatch=availability_list)


async def remote_start(settings: Settings, args: argparse.Namespace) -> int:
    payload: dict[str, Any] = {"idTag": args.tag}
    if args.connector is not None:
        payload["connectorId"] = args.connector
    if args.limit is not None:
        positive("--limit", args.limit)
        payload["chargingProfile"] = {
            "chargingProfileId": 1, "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": round(args.limit, 1)}]}}
    return _print(await send(settings, args.station, "RemoteStartTransaction", payload,
                             timeout_s=args.timeout))


async def remote_stop(settings: Settings, args: argparse.Namespace) -> int:
    transaction = args.transaction
    if transaction is None:
        found = await with_db(settings, lambda db: transaction_records.active_on_connector(
            db, args.station, args.connector))
        if found is None:
            raise GridLinkError(f"no active transaction on {args.station} connector "
                                f"{args.connector}")
        transaction = int(found["_id"])
    return _print(await send(settings, args.station, "RemoteStopTransaction",
                             {"transactionId": transaction}, timeout_s=args.timeout))


def _print(result: CommandResult) -> int:
    print(json.dumps(answered(result).response, indent=2))
    return 0


async def config_show(settings: Settings, args: argparse.Namespace) -> int:
    snapshot = await with_db(settings, lambda db: station_configuration.read_document(
        db, args.station))
    if snapshot is None:
        raise GridLinkError(f"no configuration known for {args.station}: send "
                            "`gridlink command STATION GetConfiguration` first")
    rows = [{"key": k["key"], "value": k.get("value"), "readonly": k["readonly"]}
            for k in snapshot["keys"]]
    rows += [{"key": key, "value": None, "readonly": "unknown"}
             for key in snapshot.get("unknown_keys", [])]
    print_rows(rows, args.json)
    return 0


async def availability_list(settings: Settings, args: argparse.Namespace) -> int:
    print_rows(await with_db(settings, lambda db: availability.list_rows(db, args.station)),
               args.json)
    return 0
