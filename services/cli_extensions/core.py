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

from pymongo.asynchronous.database import AsyncDatabase

from services.cli import print_rows, with_db
from services.command_client import send_command
from services.envelope import CommandResult
from services.errors import ConfigurationError, GridLinkError
from services.ocpp16 import iso
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
    for parser in (start, stop):
        parser.add_argument("--timeout", type=float, default=30.0)
        parser.set_defaults(extension=__name__)

    config = sub.add_parser("config", help="configuration snapshots (from GetConfiguration)")
    cf = config.add_subparsers(dest="action", required=True, parser_class=parser_class)
    show = cf.add_parser("show", help="the last known configuration of a station")
    show.add_argument("station")
    show.add_argument("--json", action="store_true")
    show.set_defaults(extension=__name__)

    availability = sub.add_parser("availability", help="requested connector availability")
    av = availability.add_subparsers(dest="action", required=True, parser_class=parser_class)
    av_list = av.add_parser("list", help="requested availability and whether it is confirmed")
    av_list.add_argument("--station")
    av_list.add_argument("--json", action="store_true")
    av_list.set_defaults(extension=__name__)


async def _active_transaction(db: AsyncDatabase[dict[str, Any]], station: str,
                              connector: int) -> int:
    found = await db["transactions"].find_one(
        {"station": station, "connector": connector, "active": True},
        sort=[("start_time", -1)])
    if found is None:
        raise GridLinkError(f"no active transaction on {station} connector {connector}")
    return int(found["_id"])


def _print_result(result: CommandResult | None) -> int:
    assert result is not None
    if result.status in ("accepted", "rejected"):
        print(json.dumps(result.response, indent=2))
        return 0
    detail = " ".join(x for x in (result.error_code, result.error_description) if x)
    raise GridLinkError(f"{result.status}: {detail}")


async def dispatch(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "remote" and args.action == "start":
        payload: dict[str, Any] = {"idTag": args.tag}
        if args.connector is not None:
            payload["connectorId"] = args.connector
        if args.limit is not None:
            if args.limit <= 0:
                raise ConfigurationError("--limit must be positive")
            payload["chargingProfile"] = {
                "chargingProfileId": 1, "stackLevel": 0,
                "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
                "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": round(args.limit, 1)}]}}
        return _print_result(await send_command(
            settings, args.station, "RemoteStartTransaction", payload, timeout_s=args.timeout))
    if args.command == "remote":
        transaction = args.transaction
        if transaction is None:
            transaction = await with_db(settings, lambda db: _active_transaction(
                db, args.station, args.connector))
        return _print_result(await send_command(
            settings, args.station, "RemoteStopTransaction", {"transactionId": transaction},
            timeout_s=args.timeout))
    if args.command == "config":
        snapshot = await with_db(settings, lambda db: db["station_configuration"].find_one(
            {"_id": args.station}))
        if snapshot is None:
            raise GridLinkError(f"no configuration known for {args.station}: send "
                                "`gridlink command STATION GetConfiguration` first")
        rows = [{"key": k["key"], "value": k.get("value"), "readonly": k["readonly"]}
                for k in snapshot["keys"]]
        rows += [{"key": key, "value": None, "readonly": "unknown"}
                 for key in snapshot.get("unknown_keys", [])]
        print_rows(rows, args.json)
        return 0
    query = {"station": args.station} if args.station else {}

    async def availability(db: AsyncDatabase[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = []
        async for doc in db["availability"].find(query, sort=[("_id", 1)]):
            rows.append({"station": doc["station"], "connector": doc["connector"],
                         "requested": doc["requested"], "answer": doc["answer"],
                         "confirmed": doc["confirmed"],
                         "requestedAt": iso(doc["requested_at"])})
        return rows

    print_rows(await with_db(settings, availability), args.json)
    return 0
