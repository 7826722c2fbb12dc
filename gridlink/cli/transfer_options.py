"""What the file-moving subcommands (``firmware``, ``diagnostics``, ``logs``) share: retry
and protocol options, sending with one-line errors, reading and writing local files, saving
an upload.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any

from bson import ObjectId

from commands.files import repository, rules, station_protocols
from gridlink.cli.output import positive, send, with_db
from services.envelope import CommandResult
from services.errors import ConfigurationError, GridLinkError
from services.settings import Settings


def retry_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--retries", type=int, help="how often the charger may retry")
    parser.add_argument("--retry-interval", type=int, metavar="S",
                        help="seconds between the charger's attempts")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds the charger may take to answer (default 30)")


def protocol_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--protocol", choices=rules.PROTOCOLS,
        help="how the charger reaches GridLink's file server: http (https with a "
        "certificate), ftp or ftps; default: the station's (`gridlink diagnostics protocol`), "
        "else the best of the charger's SupportedFileTransferProtocols, else http")


async def file_server_base(settings: Settings, station: str, chosen: str | None) -> str:
    """The file server's base URL for this station's transfer (see :func:`protocol_argument`)."""
    default, supported = await with_db(settings, lambda db: station_protocols.facts(db,
                                                                                   station))
    protocol = rules.transfer_protocol(chosen, default, supported,
                                       rules.offered_protocols(settings))
    try:
        return rules.public_base_url(settings, protocol)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def check_retries(args: argparse.Namespace) -> None:
    for option, value in (("--retries", args.retries), ("--retry-interval", args.retry_interval)):
        if value is not None and value < 0:
            raise ConfigurationError(f"{option} must not be negative")
    positive("--timeout", args.timeout)


def retry_payload(args: argparse.Namespace) -> dict[str, int]:
    payload = {}
    if args.retries is not None:
        payload["retries"] = args.retries
    if args.retry_interval is not None:
        payload["retryInterval"] = args.retry_interval
    return payload


async def send_accepted(settings: Settings, args: argparse.Namespace, action: str,
                        payload: dict[str, Any], command_id: str) -> CommandResult:
    """Send and wait; the result if the charger accepted, else a one-line GridLinkError."""
    result = await send(settings, args.station, action, payload, timeout_s=args.timeout,
                        command_id=command_id)
    if result.status == "rejected":
        raise GridLinkError(f"rejected: {(result.response or {}).get('status', 'Rejected')}")
    if result.status != "accepted":
        raise GridLinkError(result.failure_text())
    return result


def open_for_reading(path: str) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None


def read_file(path: str) -> bytes:
    with open_for_reading(path) as source:
        return source.read()


def open_for_writing(path: str, *, exclusive: bool) -> IO[bytes]:
    try:
        return open(path, "xb" if exclusive else "wb")
    except FileExistsError:
        raise GridLinkError(f"{path} exists already: name another file with -o") from None
    except OSError as exc:
        raise GridLinkError(f"cannot write {path}: {exc.strerror}") from None


def file_id(text: str) -> ObjectId:
    try:
        return rules.parse_file_id(text)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


async def save_upload(settings: Settings, bucket_name: str, text_id: str,
                      output: str | None, what: str) -> int:
    """Write an uploaded file to ``output`` ('-': standard output; None: its own name in the
    current directory, never over an existing file)."""
    found_id = file_id(text_id)

    async def save(db: repository.Db) -> tuple[str, int]:
        document = await repository.uploaded_file(db, bucket_name, found_id)
        if document is None:
            raise GridLinkError(f"no {what} file {text_id}")
        if output == "-":
            target, path = sys.stdout.buffer, "standard output"
        else:
            path = output or rules.safe_filename(document["filename"]) or str(found_id)
            target = open_for_writing(path, exclusive=output is None)
        size = 0
        try:
            async for chunk in repository.read_upload(db, bucket_name, found_id):
                target.write(chunk)
                size += len(chunk)
        finally:
            if target is not sys.stdout.buffer:
                target.close()
            else:
                target.flush()
        return path, size

    path, size = await with_db(settings, save)
    if output != "-":
        print(f"saved {size} bytes to {path}")
    return 0
