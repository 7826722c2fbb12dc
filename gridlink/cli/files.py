"""Firmware images and diagnostics files, and the commands that move them::

    gridlink firmware add FILE [--name N]
    gridlink firmware list [--json]
    gridlink firmware update STATION NAME|URL [--retrieve-date ISO] [--retries N]
                             [--retry-interval S] [--timeout S]
    gridlink firmware jobs [--station ID] [--json]
    gridlink diagnostics request STATION [--start ISO] [--stop ISO] [--retries N]
                                 [--retry-interval S] [--timeout S]
    gridlink diagnostics list [--station ID] [--json]
    gridlink diagnostics get ID [-o FILE|-]
    gridlink diagnostics jobs [--station ID] [--json]

``firmware update NAME`` points the charger at GridLink's file server
(``GRIDLINK_FILES_PUBLIC_URL``); ``diagnostics request`` hands the charger a fresh upload
location there (``…/diagnostics/{station}/{token}``).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import IO, Any

from commands.files import repository, rules
from gridlink.cli.output import parse_time_option, positive, print_rows, send, with_db
from services.envelope import CommandResult
from services.errors import ConfigurationError, GridLinkError
from services.ocpp16 import iso, utcnow
from services.settings import Settings


def add_parsers(sub: Any, parser_class: type) -> None:
    firmware = sub.add_parser("firmware", help="firmware images and UpdateFirmware jobs")
    fw = firmware.add_subparsers(dest="action", required=True, parser_class=parser_class)
    fw_add = fw.add_parser("add", help="store a firmware image on GridLink's file server",
                           epilog="example: gridlink firmware add build/cp-2.4.1.bin")
    fw_add.add_argument("file", metavar="FILE")
    fw_add.add_argument("--name", help="name in the download URL (default: the file's name)")
    fw_list = fw.add_parser("list", help="stored firmware images")
    fw_list.add_argument("--json", action="store_true")
    fw_update = fw.add_parser(
        "update", help="send UpdateFirmware for a stored image (or any URL)",
        epilog="example: gridlink firmware update CP001 cp-2.4.1.bin --retries 3")
    fw_update.add_argument("station")
    fw_update.add_argument("target", metavar="NAME|URL")
    fw_update.add_argument("--retrieve-date", metavar="ISO",
                           help="not before this date-time (default: now)")
    _retry_arguments(fw_update)
    fw_jobs = fw.add_parser("jobs", help="firmware updates and their progress, newest first")
    fw_jobs.add_argument("--station")
    fw_jobs.add_argument("--json", action="store_true")

    diagnostics = sub.add_parser("diagnostics", help="diagnostics uploads and GetDiagnostics")
    dg = diagnostics.add_subparsers(dest="action", required=True, parser_class=parser_class)
    dg_request = dg.add_parser(
        "request", help="send GetDiagnostics with an upload location on GridLink",
        epilog="example: gridlink diagnostics request CP001 --start 2026-11-01T00:00:00Z")
    dg_request.add_argument("station")
    dg_request.add_argument("--start", metavar="ISO", help="oldest log information wanted")
    dg_request.add_argument("--stop", metavar="ISO", help="latest log information wanted")
    _retry_arguments(dg_request)
    dg_list = dg.add_parser("list", help="uploaded diagnostics files, newest first")
    dg_list.add_argument("--station")
    dg_list.add_argument("--limit", type=int, default=100)
    dg_list.add_argument("--json", action="store_true")
    dg_get = dg.add_parser("get", help="save an uploaded diagnostics file")
    dg_get.add_argument("file_id", metavar="ID")
    dg_get.add_argument("-o", "--output", metavar="FILE",
                        help="where to write it ('-': standard output; default: its own "
                        "name in the current directory)")
    dg_jobs = dg.add_parser("jobs", help="diagnostics requests and their progress")
    dg_jobs.add_argument("--station")
    dg_jobs.add_argument("--json", action="store_true")

    for parser in (fw_add, fw_list, fw_update, fw_jobs, dg_request, dg_list, dg_get, dg_jobs):
        parser.set_defaults(dispatch=dispatch)


def _retry_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--retries", type=int, help="how often the charger may retry")
    parser.add_argument("--retry-interval", type=int, metavar="S",
                        help="seconds between the charger's attempts")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds the charger may take to answer (default 30)")


async def dispatch(settings: Settings, args: argparse.Namespace) -> int:
    base = rules.public_base_url(settings)
    if args.command == "firmware":
        if args.action == "add":
            return await _firmware_add(settings, args, base)
        if args.action == "list":
            print_rows(await with_db(settings, lambda db: repository.list_firmware(db, base)),
                       args.json)
            return 0
        if args.action == "update":
            return await _firmware_update(settings, args, base)
        print_rows(await with_db(settings, lambda db: repository.list_jobs(
            db, repository.FIRMWARE_JOBS, args.station)), args.json)
        return 0
    if args.action == "request":
        return await _diagnostics_request(settings, args, base)
    if args.action == "list":
        print_rows(await with_db(settings, lambda db: repository.list_diagnostics(
            db, args.station, args.limit)), args.json)
        return 0
    if args.action == "get":
        return await _diagnostics_get(settings, args)
    print_rows(await with_db(settings, lambda db: repository.list_jobs(
        db, repository.DIAGNOSTICS_JOBS, args.station)), args.json)
    return 0


# --- firmware -------------------------------------------------------------------------------


def _open_for_reading(path: str) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None


async def _firmware_add(settings: Settings, args: argparse.Namespace, base: str) -> int:
    name = args.name or Path(args.file).name
    try:
        rules.check_firmware_name(name)
    except ValueError as exc:
        raise ConfigurationError(f"{exc} (use --name)") from None
    with _open_for_reading(args.file) as source:
        try:
            _, size = await with_db(settings, lambda db: repository.add_firmware(db, name, source))
        except ValueError as exc:
            raise GridLinkError(str(exc)) from None
    print(f"firmware {name} added ({size} bytes): {rules.firmware_url(base, name)}")
    return 0


async def _firmware_update(settings: Settings, args: argparse.Namespace, base: str) -> int:
    _check_retries(args)
    retrieve = parse_time_option("--retrieve-date", args.retrieve_date) or utcnow()
    if "://" in args.target:
        location = args.target
    else:
        try:
            rules.check_firmware_name(args.target)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if not await with_db(settings, lambda db: repository.firmware_exists(db, args.target)):
            raise GridLinkError(f"no firmware {args.target!r}: store it with "
                                "`gridlink firmware add FILE` first")
        location = rules.firmware_url(base, args.target)
    payload: dict[str, Any] = {"location": location, "retrieveDate": iso(retrieve)}
    payload.update(_retry_payload(args))
    command_id = str(uuid.uuid4())
    result = await _send(settings, args, "UpdateFirmware", payload, command_id)
    print(json.dumps({"commandId": command_id, "location": location,
                      "retrieveDate": payload["retrieveDate"], "status": result.status},
                     indent=2))
    return 0


# --- diagnostics ----------------------------------------------------------------------------


async def _diagnostics_request(settings: Settings, args: argparse.Namespace, base: str) -> int:
    _check_retries(args)
    start = parse_time_option("--start", args.start)
    stop = parse_time_option("--stop", args.stop)
    if start is not None and stop is not None and start > stop:
        raise ConfigurationError("--start is after --stop")
    location = rules.diagnostics_location(base, args.station, rules.new_token())
    payload: dict[str, Any] = {"location": location}
    if start is not None:
        payload["startTime"] = iso(start)
    if stop is not None:
        payload["stopTime"] = iso(stop)
    payload.update(_retry_payload(args))
    command_id = str(uuid.uuid4())
    result = await _send(settings, args, "GetDiagnostics", payload, command_id)
    print(json.dumps({"commandId": command_id, "location": location,
                      "fileName": (result.response or {}).get("fileName")}, indent=2))
    return 0


def _open_for_writing(path: str, *, exclusive: bool) -> IO[bytes]:
    try:
        return open(path, "xb" if exclusive else "wb")
    except FileExistsError:
        raise GridLinkError(f"{path} exists already: name another file with -o") from None
    except OSError as exc:
        raise GridLinkError(f"cannot write {path}: {exc.strerror}") from None


async def _diagnostics_get(settings: Settings, args: argparse.Namespace) -> int:
    try:
        file_id = rules.parse_file_id(args.file_id)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None

    async def save(db: repository.Db) -> tuple[str, int]:
        document = await repository.diagnostics_file(db, file_id)
        if document is None:
            raise GridLinkError(f"no diagnostics file {args.file_id}")
        if args.output == "-":
            target, path = sys.stdout.buffer, "standard output"
        else:
            path = args.output or rules.safe_filename(document["filename"]) or str(file_id)
            target = _open_for_writing(path, exclusive=args.output is None)
        size = 0
        try:
            async for chunk in repository.read_diagnostics(db, file_id):
                target.write(chunk)
                size += len(chunk)
        finally:
            if target is not sys.stdout.buffer:
                target.close()
            else:
                target.flush()
        return path, size

    path, size = await with_db(settings, save)
    if args.output != "-":
        print(f"saved {size} bytes to {path}")
    return 0


# --- shared ---------------------------------------------------------------------------------


def _check_retries(args: argparse.Namespace) -> None:
    for option, value in (("--retries", args.retries), ("--retry-interval", args.retry_interval)):
        if value is not None and value < 0:
            raise ConfigurationError(f"{option} must not be negative")
    positive("--timeout", args.timeout)


def _retry_payload(args: argparse.Namespace) -> dict[str, int]:
    payload = {}
    if args.retries is not None:
        payload["retries"] = args.retries
    if args.retry_interval is not None:
        payload["retryInterval"] = args.retry_interval
    return payload


async def _send(settings: Settings, args: argparse.Namespace, action: str,
                payload: dict[str, Any], command_id: str) -> CommandResult:
    """Send and wait; the result if the charger accepted, else a one-line GridLinkError."""
    result = await send(settings, args.station, action, payload, timeout_s=args.timeout,
                        command_id=command_id)
    if result.status != "accepted":
        raise GridLinkError(result.failure_text())
    return result
