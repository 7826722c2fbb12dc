"""Reservations (ReserveNow / CancelReservation) from the command line::

    gridlink reserve STATION CONNECTOR TAG (--expires-in S | --until ISO8601)
                     [--parent TAG] [--id RESERVATION_ID] [--timeout S]
    gridlink reservations list [--station ID] [--status S] [--json]
    gridlink reservations cancel RESERVATION_ID [--timeout S]

``reserve`` allocates a reservationId (unless ``--id`` names one: the same id on the same
station replaces that reservation) and takes the parent idTag from the id-tag store unless
``--parent`` is given. It prints ``{"reservationId", "status", "expiryDate"}`` and exits 0
when the charger accepts; otherwise one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from commands.reservations import repository as reservations
from commands.reservations import rules
from gridlink.cli.output import parse_time_option, positive, print_rows, with_db
from gridlink.client import send_command
from services import reservation_ids
from services.envelope import CommandResult
from services.errors import GridLinkError
from services.ocpp16 import utcnow
from services.settings import Settings

Db = AsyncDatabase[dict[str, Any]]


def add_parsers(sub: Any, parser_class: type) -> None:
    reserve = sub.add_parser("reserve", help="reserve a connector for an id tag (ReserveNow)",
                             epilog="example: gridlink reserve CP001 1 TAG001 --expires-in 900")
    reserve.add_argument("station")
    reserve.add_argument("connector", type=int, help="connector id; 0 = any connector")
    reserve.add_argument("tag")
    until = reserve.add_mutually_exclusive_group(required=True)
    until.add_argument("--expires-in", type=float, metavar="S",
                       help="the reservation ends S seconds from now")
    until.add_argument("--until", metavar="ISO8601", help="the reservation's expiryDate")
    reserve.add_argument("--parent", help="parent idTag (default: the tag's, from the store)")
    reserve.add_argument("--id", dest="reservation_id", type=int,
                         help="reservationId (default: a new one)")
    reserve.add_argument("--timeout", type=float, default=30.0)
    reserve.set_defaults(dispatch=dispatch_reserve)

    parser = sub.add_parser("reservations", help="stored reservations")
    rs = parser.add_subparsers(dest="action", required=True, parser_class=parser_class)
    rs_list = rs.add_parser("list", help="reservations, newest first")
    rs_list.add_argument("--station")
    rs_list.add_argument("--status", choices=rules.STATUSES)
    rs_list.add_argument("--json", action="store_true")
    cancel = rs.add_parser("cancel", help="cancel a reservation (CancelReservation)")
    cancel.add_argument("reservation_id", type=int, metavar="RESERVATION_ID")
    cancel.add_argument("--timeout", type=float, default=30.0)
    rs_list.set_defaults(dispatch=dispatch_list)
    cancel.set_defaults(dispatch=dispatch_cancel)


def _failure(result: CommandResult | None, action: str) -> GridLinkError:
    """The one-line error for a command that did not end with the charger's Accepted."""
    if result is None:
        return GridLinkError(f"timeout: no result for {action}")
    if result.status in ("accepted", "rejected"):
        answer = (result.response or {}).get("status")
        return GridLinkError(f"rejected: {result.station} answered {action} {answer}")
    return GridLinkError(result.failure_text())


async def _send(settings: Settings, station: str, action: str, payload: dict[str, Any],
                timeout_s: float) -> CommandResult:
    try:
        result = await send_command(settings, station, action, payload, timeout_s=timeout_s)
    except TimeoutError:
        raise _failure(None, action) from None
    assert result is not None
    if result.status != "accepted" or (result.response or {}).get("status") != "Accepted":
        raise _failure(result, action)
    return result


async def dispatch_reserve(settings: Settings, args: argparse.Namespace) -> int:
    positive("--timeout", args.timeout)
    if args.expires_in is not None:
        positive("--expires-in", args.expires_in)
        expiry = utcnow() + timedelta(seconds=args.expires_in)
    else:
        expiry = parse_time_option("--until", args.until)
    assert expiry is not None

    async def prepare(db: Db) -> tuple[int, str | None]:
        reservation_id = args.reservation_id
        if reservation_id is None:
            reservation_id = await reservation_ids.allocate_id(db)
        parent = args.parent or await reservations.parent_of(db, args.tag)
        return reservation_id, parent

    reservation_id, parent = await with_db(settings, prepare)
    payload = rules.reserve_now_payload(
        connector=args.connector, id_tag=args.tag, expiry=expiry,
        reservation_id=reservation_id, parent_id_tag=parent)
    await _send(settings, args.station, "ReserveNow", payload, args.timeout)
    print(json.dumps({"reservationId": reservation_id, "status": "Accepted",
                      "expiryDate": payload["expiryDate"]}))
    return 0


async def dispatch_list(settings: Settings, args: argparse.Namespace) -> int:
    print_rows(await with_db(settings, lambda db: reservations.list_rows(
        db, args.station, args.status)), args.json)
    return 0


async def dispatch_cancel(settings: Settings, args: argparse.Namespace) -> int:
    positive("--timeout", args.timeout)
    found = await with_db(settings, lambda db: reservations.get(db, args.reservation_id))
    if found is None:
        raise GridLinkError(f"no reservation {args.reservation_id}")
    await _send(settings, found["station"], "CancelReservation",
                {"reservationId": args.reservation_id}, args.timeout)
    print(json.dumps({"reservationId": args.reservation_id, "status": "Accepted"}))
    return 0
