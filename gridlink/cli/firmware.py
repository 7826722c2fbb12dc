"""Firmware images and the commands that install them::

    gridlink firmware add FILE [--name N] [--signing-certificate PEM
                               (--signature-file F | --signing-key KEY.pem)]
    gridlink firmware list [--json]
    gridlink firmware update STATION NAME|URL [--signed] [--retrieve-date ISO]
                             [--install-date ISO] [--retries N] [--retry-interval S]
                             [--timeout S] [--protocol http|ftp|ftps]
    gridlink firmware jobs [--station ID] [--json]

``firmware add`` stores an image with its SHA-256 and, for signed firmware, its Firmware
Signing Certificate and signature: given (``--signature-file``, base64 or raw, verified
against the certificate) or computed here from the manufacturer's key (``--signing-key``;
RSA-PSS or ECDSA with SHA-256 over the image, :mod:`commands.files.signatures`).
``firmware update NAME`` hands the charger a fresh download URL on GridLink's file server
(``{GRIDLINK_FILES_PUBLIC_URL}/firmware/{token}/{name}``, or
``ftp[s]://firmware:{token}@…/firmware/{name}`` with ``--protocol`` or the station's default,
valid until the retrieve date plus GRIDLINK_FILES_DOWNLOAD_WINDOW_S plus the retries);
``--signed`` sends SignedUpdateFirmware (Security Whitepaper L01) with a fresh requestId, the
certificate and the signature.
"""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from commands.files import download_tokens, repository, request_ids, rules
from gridlink.cli.output import parse_time_option, print_rows, with_db
from gridlink.cli.transfer_options import (
    check_retries,
    file_server_base,
    open_for_reading,
    protocol_argument,
    read_file,
    retry_arguments,
    retry_payload,
    send_accepted,
)
from services import file_transfers
from services import firmware_signatures as signatures
from services.errors import ConfigurationError, GridLinkError
from services.ocpp16 import iso, utcnow
from services.settings import Settings


def add_parsers(sub: Any, parser_class: type) -> None:
    firmware = sub.add_parser("firmware", help="firmware images and (Signed)UpdateFirmware jobs")
    fw = firmware.add_subparsers(dest="action", required=True, parser_class=parser_class)
    fw_add = fw.add_parser(
        "add", help="store a firmware image (and its signature) on GridLink's file server",
        epilog="example: gridlink firmware add build/cp-2.4.1.bin --signing-certificate "
        "signing.pem --signing-key signing.key")
    fw_add.add_argument("file", metavar="FILE")
    fw_add.add_argument("--name", help="name of the image (default: the file's name)")
    fw_add.add_argument("--signing-certificate", metavar="PEM",
                        help="the manufacturer's Firmware Signing Certificate (PEM)")
    signature = fw_add.add_mutually_exclusive_group()
    signature.add_argument("--signature-file", metavar="F",
                           help="the image's signature (base64 or raw bytes)")
    signature.add_argument("--signing-key", metavar="KEY.pem",
                           help="sign the image here with this private key (PEM, unencrypted)")
    fw_list = fw.add_parser("list", help="stored firmware images")
    fw_list.add_argument("--json", action="store_true")
    fw_update = fw.add_parser(
        "update", help="send UpdateFirmware (or SignedUpdateFirmware) for a stored image",
        epilog="example: gridlink firmware update CP001 cp-2.4.1.bin --signed --retries 3")
    fw_update.add_argument("station")
    fw_update.add_argument("target", metavar="NAME|URL")
    fw_update.add_argument("--signed", action="store_true",
                           help="send SignedUpdateFirmware with the image's signature")
    fw_update.add_argument("--retrieve-date", metavar="ISO",
                           help="not before this date-time (default: now)")
    fw_update.add_argument("--install-date", metavar="ISO",
                           help="(--signed) install at this date-time")
    retry_arguments(fw_update)
    protocol_argument(fw_update)
    fw_jobs = fw.add_parser("jobs", help="firmware updates and their progress, newest first")
    fw_jobs.add_argument("--station")
    fw_jobs.add_argument("--json", action="store_true")
    for parser in (fw_add, fw_list, fw_update, fw_jobs):
        parser.set_defaults(dispatch=dispatch)


async def dispatch(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "add":
        return await _firmware_add(settings, args)
    if args.action == "list":
        print_rows(await with_db(settings, repository.list_firmware), args.json)
        return 0
    if args.action == "update":
        return await _firmware_update(settings, args)
    print_rows(await with_db(settings, lambda db: repository.list_firmware_jobs(
        db, args.station)), args.json)
    return 0


# --- add --------------------------------------------------------------------------------------


def _signature_metadata(args: argparse.Namespace, digest: bytes) -> dict[str, Any]:
    """The certificate, signature and algorithm to store with the image (checked here)."""
    if not args.signing_certificate:
        if args.signature_file or args.signing_key:
            raise ConfigurationError("--signature-file and --signing-key need "
                                     "--signing-certificate")
        return {}
    if not (args.signature_file or args.signing_key):
        raise ConfigurationError("--signing-certificate needs --signature-file or --signing-key")
    try:
        certificate = signatures.load_certificate(read_file(args.signing_certificate))
        pem = signatures.certificate_pem(certificate)
        problem = signatures.certificate_problem(pem, utcnow())
        if problem is not None:
            raise signatures.SignatureError(problem)
        if args.signing_key:
            signature = signatures.sign_digest(read_file(args.signing_key), certificate, digest)
        else:
            signature = signatures.read_signature_file(read_file(args.signature_file))
            if not signatures.verifies(certificate, digest, signature):
                raise signatures.SignatureError(
                    "--signature-file: the signature does not verify with the signing "
                    "certificate over the image (RSA-PSS or ECDSA, SHA-256)")
        encoded = signatures.encode(signature)
    except signatures.SignatureError as exc:
        raise ConfigurationError(str(exc)) from None
    return {"signing_certificate": pem, "signature": encoded,
            "signature_algorithm": signatures.algorithm(certificate)}


async def _firmware_add(settings: Settings, args: argparse.Namespace) -> int:
    name = args.name or Path(args.file).name
    try:
        rules.check_firmware_name(name)
    except ValueError as exc:
        raise ConfigurationError(f"{exc} (use --name)") from None
    with open_for_reading(args.file) as source:
        digest = signatures.file_digest(source)
        metadata = {"sha256": digest.hex(), **_signature_metadata(args, digest)}
        source.seek(0)
        try:
            _, size = await with_db(settings, lambda db: repository.add_firmware(
                db, name, source, metadata))
        except ValueError as exc:
            raise GridLinkError(str(exc)) from None
    signed = f", signed {metadata['signature_algorithm']}" if "signature" in metadata else ""
    print(f"firmware {name} added ({size} bytes, sha256 {digest.hex()}{signed})")
    return 0


# --- update -----------------------------------------------------------------------------------


async def _firmware_update(settings: Settings, args: argparse.Namespace) -> int:
    check_retries(args)
    retrieve = parse_time_option("--retrieve-date", args.retrieve_date) or utcnow()
    install = parse_time_option("--install-date", args.install_date)
    if install is not None and not args.signed:
        raise ConfigurationError("--install-date needs --signed")
    if install is not None and install < retrieve:
        raise ConfigurationError("--install-date is before --retrieve-date")
    retries = retry_payload(args)
    command_id = str(uuid.uuid4())
    image: dict[str, Any] = {}
    request_id = None
    if "://" in args.target:
        if args.signed or args.protocol:
            raise ConfigurationError(f"{'--signed' if args.signed else '--protocol'} needs "
                                     "the NAME of an image stored with `gridlink firmware "
                                     "add`, not a URL")
        location = args.target
    else:
        image, request_id, location = await _download_url(settings, args, command_id,
                                                          retrieve, retries)
    if not args.signed:
        payload: dict[str, Any] = {"location": location, "retrieveDate": iso(retrieve),
                                   **retries}
        result = await send_accepted(settings, args, "UpdateFirmware", payload, command_id)
        print(json.dumps({"commandId": command_id, "location": location,
                          "retrieveDate": payload["retrieveDate"], "status": result.status},
                         indent=2))
        return 0
    payload = file_transfers.signed_update_firmware(
        location=location, retrieve=retrieve, install=install,
        metadata=image.get("metadata") or {}, request_id=request_id, retries=retries)
    firmware = payload["firmware"]
    result = await send_accepted(settings, args, "SignedUpdateFirmware", payload, command_id)
    print(json.dumps({"commandId": command_id, "requestId": request_id, "location": location,
                      "retrieveDateTime": firmware["retrieveDateTime"],
                      "installDateTime": firmware.get("installDateTime"),
                      "status": (result.response or {}).get("status")}, indent=2))
    return 0


async def _download_url(settings: Settings, args: argparse.Namespace, command_id: str,
                        retrieve: Any, retries: dict[str, int]
                        ) -> tuple[dict[str, Any], int | None, str]:
    """The stored image, a requestId (signed only) and a fresh download URL for it."""
    try:
        rules.check_firmware_name(args.target)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    window = timedelta(seconds=settings.files_download_window_s)

    async def issue(db: repository.Db) -> tuple[dict[str, Any], int | None, str]:
        image = await repository.firmware_image(db, args.target)
        if image is None:
            raise GridLinkError(f"no firmware {args.target!r}: store it with "
                                "`gridlink firmware add FILE` first")
        if args.signed and not (image.get("metadata") or {}).get("signature"):
            raise GridLinkError(f"firmware {args.target!r} has no signature: add it again "
                                "with --signing-certificate and --signature-file or "
                                "--signing-key")
        request_id = await request_ids.fresh(db) if args.signed else None
        expires_at = rules.download_expiry(retries, retrieve, utcnow(), window)
        token = await download_tokens.issue(db, args.target, station=args.station,
                                            command_id=command_id, expires_at=expires_at)
        return image, request_id, token

    base = await file_server_base(settings, args.station, args.protocol)
    image, request_id, token = await with_db(settings, issue)
    return image, request_id, rules.firmware_url(base, token, args.target)
