"""The security extension from the command line (docs/security.md)::

    gridlink security events [--station ID] [--limit N] [--json]
    gridlink security dev-pki DIR [--station ID]... [--organization O] [--days N]
    gridlink certificates install STATION --type T FILE
    gridlink certificates list STATION [--type T] [--json]
    gridlink certificates delete STATION (--serial S [--type T] | --hash JSON) [--force]
    gridlink certificates pending [--station ID] [--json]
    gridlink certificates sign STATION --chain FILE
    gridlink certificates expiring [--days N] [--json]
    gridlink trigger STATION MESSAGE [--connector N]

``certificates list`` asks the charger (GetInstalledCertificateIds, each type or ``--type``)
and prints the inventory GridLink keeps from the answers; ``delete`` names a certificate of
that inventory. ``sign`` answers a pending CSR with a chain an external CA made (the first
certificate must carry the CSR's public key). Commands print the charger's answer as JSON
and exit 0 when it is Accepted; otherwise one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from commands.security import certificate_hashes as hashes
from commands.security import repository, rules
from gridlink import dev_pki
from gridlink.cli.output import positive, print_rows, send, with_db
from services import security_events
from services.envelope import CommandResult
from services.errors import ConfigurationError, GridLinkError
from services.ocpp16 import utcnow
from services.settings import Settings

CSMS_ROOT = "CentralSystemRootCertificate"


def add_parsers(sub: Any, parser_class: type) -> None:
    security = sub.add_parser("security", help="security events (SecurityEventNotification)")
    sc = security.add_subparsers(dest="action", required=True, parser_class=parser_class)
    events = sc.add_parser("events", help="security events, newest first",
                           epilog="example: gridlink security events --station CP001")
    events.add_argument("--station")
    events.add_argument("--limit", type=int, default=100)
    events.add_argument("--json", action="store_true")
    events.set_defaults(dispatch=security_events_list)
    pki = sc.add_parser(
        "dev-pki", help="certificates for trying security profiles 2 and 3 locally "
        "(development only)",
        epilog="example: gridlink security dev-pki .gridlink/pki --station CP003")
    pki.add_argument("directory", type=Path)
    pki.add_argument("--station", action="append", default=[],
                     help="a client certificate for this station (repeatable)")
    pki.add_argument("--organization", default="GridLink development",
                     help="O of every certificate (GRIDLINK_TLS_CLIENT_ORGANIZATIONS)")
    pki.add_argument("--days", type=int, default=365)
    pki.set_defaults(dispatch=make_dev_pki)

    certificates = sub.add_parser("certificates", help="charger and installed certificates")
    ct = certificates.add_subparsers(dest="action", required=True, parser_class=parser_class)
    install = ct.add_parser("install", help="install a root certificate (InstallCertificate)",
                            epilog="example: gridlink certificates install CP001 "
                            "--type CentralSystemRootCertificate root.pem")
    install.add_argument("station")
    install.add_argument("--type", required=True, choices=hashes.CERTIFICATE_TYPES)
    install.add_argument("file", metavar="FILE")
    listing = ct.add_parser("list", help="ask for the installed certificates and show them "
                            "(GetInstalledCertificateIds)")
    listing.add_argument("station")
    listing.add_argument("--type", choices=hashes.CERTIFICATE_TYPES,
                         help="one type (default: both)")
    listing.add_argument("--json", action="store_true")
    delete = ct.add_parser("delete", help="delete an installed certificate (DeleteCertificate)",
                           epilog="example: gridlink certificates delete CP001 --serial 5a3c9e01")
    delete.add_argument("station")
    which = delete.add_mutually_exclusive_group(required=True)
    which.add_argument("--serial", help="serial number (hex) of a certificate in the inventory")
    which.add_argument("--hash", metavar="JSON", help="its certificateHashData, as JSON")
    delete.add_argument("--type", choices=hashes.CERTIFICATE_TYPES,
                        help="with --serial: the type it is installed as")
    delete.add_argument("--force", action="store_true",
                        help="delete even the station's last CentralSystemRootCertificate")
    pending = ct.add_parser("pending", help="CSRs waiting for a certificate (external CA)")
    pending.add_argument("--station")
    pending.add_argument("--json", action="store_true")
    sign = ct.add_parser("sign", help="send a pending CSR's certificate (CertificateSigned)",
                         epilog="example: gridlink certificates sign CP001 --chain cp001.pem")
    sign.add_argument("station")
    sign.add_argument("--chain", required=True, metavar="FILE",
                      help="PEM: the charger certificate, then any sub-CA certificates")
    expiring = ct.add_parser("expiring", help="certificates that expire soon")
    expiring.add_argument("--days", type=float, default=30.0, help="within N days (30)")
    expiring.add_argument("--json", action="store_true")
    for parser, run in ((install, certificates_install), (listing, certificates_list),
                        (delete, certificates_delete), (pending, certificates_pending),
                        (sign, certificates_sign), (expiring, certificates_expiring)):
        parser.set_defaults(dispatch=run)

    trigger = sub.add_parser("trigger", help="ask a charger to send a message "
                             "(ExtendedTriggerMessage)",
                             epilog="example: gridlink trigger CP001 SignChargePointCertificate")
    trigger.add_argument("station")
    trigger.add_argument("message", choices=rules.TRIGGER_MESSAGES, metavar="MESSAGE",
                         help=", ".join(rules.TRIGGER_MESSAGES))
    trigger.add_argument("--connector", type=int,
                         help="connector id (MeterValues, StatusNotification only)")
    trigger.set_defaults(dispatch=trigger_message)
    for parser in (install, listing, delete, sign, trigger):
        parser.add_argument("--timeout", type=float, default=30.0,
                            help="seconds the charger may take to answer (default 30)")


# --- security events ------------------------------------------------------------------------


async def security_events_list(settings: Settings, args: argparse.Namespace) -> int:
    positive("--limit", args.limit)
    rows = await with_db(settings, lambda db: security_events.list_rows(
        db, args.station, args.limit))
    for row in rows:
        row["critical"] = rules.is_critical(row["type"])
    print_rows(rows, args.json)
    return 0


async def make_dev_pki(settings: Settings, args: argparse.Namespace) -> int:
    positive("--days", args.days)
    for station in args.station:
        if not station or any(ch in station for ch in "/\\\0") or station.startswith("."):
            raise ConfigurationError(f"--station: {station!r} cannot name a file")
    if (args.directory / "ca.key").exists():
        raise ConfigurationError(f"{args.directory} holds a CA already; use another directory")
    issued = dev_pki.make_dev_pki(args.directory, args.station, args.organization, args.days)
    where = args.directory
    print(f"development certificates in {where} (the CA key is unencrypted: never in "
          "production)")
    print(f"  GRIDLINK_TLS_CERT_FILE={issued['server'].cert} "
          f"GRIDLINK_TLS_KEY_FILE={issued['server'].key} "
          f"GRIDLINK_TLS_CLIENT_CA_FILE={issued['ca'].cert}")
    for station in args.station:
        print(f"  {station}: {issued[station].cert} {issued[station].key}")
    return 0


# --- certificates ---------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a PEM text file"
        raise ConfigurationError(f"cannot read {path}: {reason}") from None


async def _accepted(settings: Settings, args: argparse.Namespace, action: str,
                    payload: dict[str, Any]) -> CommandResult:
    """Send and wait; the result if the charger answered Accepted, else one line."""
    positive("--timeout", args.timeout)
    result = await send(settings, args.station, action, payload, timeout_s=args.timeout)
    if result.status not in ("accepted", "rejected"):
        raise GridLinkError(result.failure_text())
    answer = (result.response or {}).get("status")
    if answer != "Accepted":
        raise GridLinkError(f"rejected: {args.station} answered {action} {answer}")
    return result


def _print(value: Any) -> int:
    print(json.dumps(value, indent=2))
    return 0


async def certificates_install(settings: Settings, args: argparse.Namespace) -> int:
    payload = {"certificateType": args.type, "certificate": _read(args.file)}
    result = await _accepted(settings, args, "InstallCertificate", payload)
    return _print({"commandId": result.command_id, "status": "Accepted"})


async def certificates_list(settings: Settings, args: argparse.Namespace) -> int:
    positive("--timeout", args.timeout)
    for certificate_type in [args.type] if args.type else hashes.CERTIFICATE_TYPES:
        result = await send(settings, args.station, "GetInstalledCertificateIds",
                            {"certificateType": certificate_type}, timeout_s=args.timeout)
        if result.status not in ("accepted", "rejected"):
            raise GridLinkError(result.failure_text())
    rows = await with_db(settings, lambda db: repository.inventory_rows(
        db, args.station, args.type))
    if not args.json:
        for row in rows:
            row.pop("hashData")
    print_rows(rows, args.json)
    return 0


async def certificates_delete(settings: Settings, args: argparse.Namespace) -> int:
    wanted = _hash_option(args.hash) if args.hash is not None else None
    inventories = await with_db(settings, lambda db: repository.inventories(db, args.station))
    if wanted is None:
        wanted = _by_serial(inventories, args.station, args.serial, args.type)
    if not args.force:
        _not_the_last_root(inventories, wanted, args.station)
    await _accepted(settings, args, "DeleteCertificate", {"certificateHashData": wanted})
    return _print({"status": "Accepted", "certificateHashData": wanted})


def _hash_option(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except ValueError:
        raise ConfigurationError("--hash must be a JSON certificateHashData object") from None
    fields = ("hashAlgorithm", "issuerNameHash", "issuerKeyHash", "serialNumber")
    if not isinstance(value, dict) or any(not isinstance(value.get(f), str) for f in fields):
        raise ConfigurationError(f"--hash needs the strings {', '.join(fields)}")
    return {f: value[f] for f in fields}


def _by_serial(inventories: list[dict[str, Any]], station: str, serial: str,
               certificate_type: str | None) -> dict[str, str]:
    found = [entry["hash_data"] for doc in inventories
             if certificate_type in (None, doc["type"])
             for entry in doc.get("certificates", [])
             if hashes.same_serial(entry["hash_data"], serial)]
    if not found:
        raise GridLinkError(f"no certificate with serial {serial} known on {station}: "
                            f"run `gridlink certificates list {station}` first")
    if len(found) > 1:
        raise GridLinkError(f"serial {serial} names {len(found)} certificates on {station}: "
                            "add --type, or name one with --hash")
    return dict(found[0])


def _not_the_last_root(inventories: list[dict[str, Any]], wanted: dict[str, str],
                       station: str) -> None:
    """M04's advice: deleting every CentralSystemRootCertificate cuts the station off."""
    roots = next((doc for doc in inventories if doc["type"] == CSMS_ROOT), None)
    if roots is None or not roots.get("complete"):
        return
    left = hashes.remaining(roots.get("certificates", []), wanted)
    if roots.get("certificates") and not left:
        raise GridLinkError(f"this is {station}'s last CentralSystemRootCertificate: without "
                            "it the station cannot verify GridLink (add --force to delete it)")


async def certificates_pending(settings: Settings, args: argparse.Namespace) -> int:
    print_rows(await with_db(settings, lambda db: repository.pending_rows(db, args.station)),
               args.json)
    return 0


async def certificates_sign(settings: Settings, args: argparse.Namespace) -> int:
    chain = _read(args.chain)
    result = await _accepted(settings, args, "CertificateSigned", {"certificateChain": chain})
    leaf = rules.facts(rules.load_certificates(chain, "--chain")[0])
    return _print({"commandId": result.command_id, "status": "Accepted",
                   "serialNumber": leaf.serial, "notAfter": leaf.not_after.isoformat()})


async def certificates_expiring(settings: Settings, args: argparse.Namespace) -> int:
    if args.days < 0:
        raise ConfigurationError("--days must not be negative")
    print_rows(await with_db(settings, lambda db: repository.expiring_rows(
        db, utcnow(), args.days)), args.json)
    return 0


# --- ExtendedTriggerMessage ---------------------------------------------------------------


async def trigger_message(settings: Settings, args: argparse.Namespace) -> int:
    payload: dict[str, Any] = {"requestedMessage": args.message}
    if args.connector is not None:
        payload["connectorId"] = args.connector
    result = await _accepted(settings, args, "ExtendedTriggerMessage", payload)
    return _print(result.response)
