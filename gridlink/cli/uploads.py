"""Files chargers upload, and the commands that ask for them::

    gridlink diagnostics request STATION [--start ISO] [--stop ISO] [--retries N]
                                 [--retry-interval S] [--timeout S]
                                 [--protocol http|ftp|ftps]
    gridlink diagnostics protocol STATION [http|ftp|ftps|auto]
    gridlink diagnostics list [--station ID] [--json]
    gridlink diagnostics get ID [-o FILE|-]
    gridlink diagnostics jobs [--station ID] [--json]
    gridlink logs request STATION --type DiagnosticsLog|SecurityLog [--oldest ISO]
                          [--latest ISO] [--retries N] [--retry-interval S] [--timeout S]
                          [--protocol http|ftp|ftps]
    gridlink logs list [--station ID] [--json]
    gridlink logs get ID [-o FILE|-]
    gridlink logs jobs [--station ID] [--json]

``diagnostics request`` (GetDiagnostics) and ``logs request`` (GetLog, Security Whitepaper
N01) hand the charger a fresh upload location on GridLink's file server
(``…/diagnostics/{station}/{token}``, or ``ftp[s]://diagnostics:{token}@…/diagnostics/
{station}/``); ``logs request`` also a fresh requestId. ``diagnostics protocol`` shows or sets
the station's default protocol for uploads and firmware downloads (``auto``: the charger's
SupportedFileTransferProtocols decides).
"""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

from commands.files import repository, request_ids, rules, station_protocols
from gridlink.cli.output import parse_time_option, print_rows, with_db
from gridlink.cli.transfer_options import (
    check_retries,
    file_server_base,
    protocol_argument,
    retry_arguments,
    retry_payload,
    save_upload,
    send_accepted,
)
from services.errors import ConfigurationError
from services.ocpp16 import iso
from services.settings import Settings

LOG_TYPES = ("DiagnosticsLog", "SecurityLog")


def add_parsers(sub: Any, parser_class: type) -> None:
    diagnostics = sub.add_parser("diagnostics", help="diagnostics uploads and GetDiagnostics")
    dg = diagnostics.add_subparsers(dest="action", required=True, parser_class=parser_class)
    dg_request = dg.add_parser(
        "request", help="send GetDiagnostics with an upload location on GridLink",
        epilog="example: gridlink diagnostics request CP001 --start 2026-11-01T00:00:00Z")
    dg_request.add_argument("station")
    dg_request.add_argument("--start", metavar="ISO", help="oldest log information wanted")
    dg_request.add_argument("--stop", metavar="ISO", help="latest log information wanted")
    retry_arguments(dg_request)
    protocol_argument(dg_request)
    dg_protocol = dg.add_parser(
        "protocol", help="show or set the station's file transfer protocol (uploads and "
        "firmware downloads)", epilog="example: gridlink diagnostics protocol CP001 ftp")
    dg_protocol.add_argument("station")
    dg_protocol.add_argument("protocol", nargs="?", choices=(*rules.PROTOCOLS, "auto"),
                             help="auto: the charger's SupportedFileTransferProtocols decides")

    logs = sub.add_parser("logs", help="log uploads and GetLog (security and diagnostics logs)")
    lg = logs.add_subparsers(dest="action", required=True, parser_class=parser_class)
    lg_request = lg.add_parser(
        "request", help="send GetLog with an upload location on GridLink",
        epilog="example: gridlink logs request CP001 --type SecurityLog "
        "--oldest 2026-11-01T00:00:00Z")
    lg_request.add_argument("station")
    lg_request.add_argument("--type", required=True, choices=LOG_TYPES, dest="log_type")
    lg_request.add_argument("--oldest", metavar="ISO", help="oldest log information wanted")
    lg_request.add_argument("--latest", metavar="ISO", help="latest log information wanted")
    retry_arguments(lg_request)
    protocol_argument(lg_request)

    parsers = [dg_request, dg_protocol, lg_request]
    for family, what in ((dg, "diagnostics"), (lg, "log")):
        listing = family.add_parser("list", help=f"uploaded {what} files, newest first")
        listing.add_argument("--station")
        listing.add_argument("--limit", type=int, default=100)
        listing.add_argument("--json", action="store_true")
        get = family.add_parser("get", help=f"save an uploaded {what} file")
        get.add_argument("file_id", metavar="ID")
        get.add_argument("-o", "--output", metavar="FILE",
                         help="where to write it ('-': standard output; default: its own "
                         "name in the current directory)")
        jobs = family.add_parser("jobs", help=f"{what} requests and their progress")
        jobs.add_argument("--station")
        jobs.add_argument("--json", action="store_true")
        parsers += [listing, get, jobs]
    for parser in parsers:
        parser.set_defaults(dispatch=dispatch)


async def dispatch(settings: Settings, args: argparse.Namespace) -> int:
    diagnostics = args.command == "diagnostics"
    bucket = repository.DIAGNOSTICS_BUCKET if diagnostics else repository.LOG_BUCKET
    if args.action == "protocol":
        return await _protocol(settings, args)
    if args.action == "request":
        base = await file_server_base(settings, args.station, args.protocol)
        if diagnostics:
            return await _diagnostics_request(settings, args, base)
        return await _log_request(settings, args, base)
    if args.action == "list":
        print_rows(await with_db(settings, lambda db: repository.list_uploads(
            db, bucket, args.station, args.limit)), args.json)
        return 0
    if args.action == "get":
        return await save_upload(settings, bucket, args.file_id, args.output,
                                 "diagnostics" if diagnostics else "log")
    jobs = repository.DIAGNOSTICS_JOBS if diagnostics else repository.LOG_JOBS
    print_rows(await with_db(settings, lambda db: repository.list_jobs(
        db, jobs, args.station)), args.json)
    return 0


async def _protocol(settings: Settings, args: argparse.Namespace) -> int:
    if args.protocol is not None:
        chosen = None if args.protocol == "auto" else args.protocol
        await with_db(settings, lambda db: station_protocols.set_default(db, args.station,
                                                                         chosen))
    default, supported = await with_db(settings, lambda db: station_protocols.facts(
        db, args.station))
    print(json.dumps({"station": args.station, "default": default,
                      "supportedFileTransferProtocols": supported,
                      "uses": rules.transfer_protocol(None, default, supported,
                                                      rules.offered_protocols(settings))},
                     indent=2))
    return 0


def _time_range(args: argparse.Namespace, first: str, last: str) -> tuple[Any, Any]:
    start = parse_time_option(f"--{first}", getattr(args, first))
    stop = parse_time_option(f"--{last}", getattr(args, last))
    if start is not None and stop is not None and start > stop:
        raise ConfigurationError(f"--{first} is after --{last}")
    return start, stop


async def _diagnostics_request(settings: Settings, args: argparse.Namespace, base: str) -> int:
    check_retries(args)
    start, stop = _time_range(args, "start", "stop")
    location = rules.diagnostics_location(base, args.station, rules.new_token())
    payload: dict[str, Any] = {"location": location}
    if start is not None:
        payload["startTime"] = iso(start)
    if stop is not None:
        payload["stopTime"] = iso(stop)
    payload.update(retry_payload(args))
    command_id = str(uuid.uuid4())
    result = await send_accepted(settings, args, "GetDiagnostics", payload, command_id)
    print(json.dumps({"commandId": command_id, "location": location,
                      "fileName": (result.response or {}).get("fileName")}, indent=2))
    return 0


async def _log_request(settings: Settings, args: argparse.Namespace, base: str) -> int:
    check_retries(args)
    oldest, latest = _time_range(args, "oldest", "latest")
    location = rules.diagnostics_location(base, args.station, rules.new_token())
    log: dict[str, Any] = {"remoteLocation": location}
    if oldest is not None:
        log["oldestTimestamp"] = iso(oldest)
    if latest is not None:
        log["latestTimestamp"] = iso(latest)
    request_id = await with_db(settings, request_ids.fresh)
    payload: dict[str, Any] = {"logType": args.log_type, "requestId": request_id, "log": log,
                               **retry_payload(args)}
    command_id = str(uuid.uuid4())
    result = await send_accepted(settings, args, "GetLog", payload, command_id)
    response = result.response or {}
    print(json.dumps({"commandId": command_id, "requestId": request_id, "location": location,
                      "status": response.get("status"), "filename": response.get("filename")},
                     indent=2))
    return 0
