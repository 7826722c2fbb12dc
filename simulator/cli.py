"""``gridlink simulate``: command-line front of the fleet simulator.

The ``gridlink`` command wires its ``simulate`` subcommand to :func:`add_arguments` and
:func:`run`; ``python -m simulator`` does the same on its own.  Exit status: 0 when every
charger connected and was Accepted and every CALL was answered without error, 1 when the run
completed with failures (connect failures, CALLERRORs, timeouts, unanswered CALLs), 2 when it
could not run (bad arguments, target unreachable).  Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import Any
from urllib.parse import urlsplit

from simulator import credentials
from simulator.errors import TlsSetupError, Unreachable
from simulator.fleet import PROFILES, Fleet
from simulator.plan import FleetPlan
from simulator.resources import raise_file_limit
from simulator.stats import render_table
from simulator.tls import ClientContexts
from simulator.workers import run_in_processes


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be a number >= 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` options to ``parser``."""
    parser.add_argument(
        "--url",
        required=True,
        help="CSMS OCPP endpoint, e.g. ws://127.0.0.1:9000/ocpp (the charger id is appended)",
    )
    parser.add_argument("--chargers", type=_positive_int, required=True, help="fleet size N")
    parser.add_argument(
        "--connectors", type=_positive_int, default=1, help="connectors per charger (default 1)"
    )
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="realistic",
        help="realistic: staggered connects and paced charging sessions; storm: all connect "
        "and boot at once, ends when all are Accepted; idle: boot and heartbeats only",
    )
    parser.add_argument(
        "--duration",
        type=_non_negative_float,
        default=60.0,
        help="run time in seconds (storm: the longest to wait; default 60)",
    )
    parser.add_argument(
        "--rate",
        type=_non_negative_float,
        default=10.0,
        help="realistic: charger-initiated messages per second across the fleet (default 10)",
    )
    parser.add_argument("--id-prefix", default="SIM", help="charger id prefix (default SIM)")
    parser.add_argument(
        "--id-tag",
        default="SIMTAG0001",
        help="idTag for sessions; {n} becomes the charger's number, e.g. TAG{n} gives each "
        "charger its own (a CSMS answers ConcurrentTx to one tag charging twice)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--progress",
        action="store_true",
        help="live progress line on stderr even when it is not a terminal",
    )
    advanced = parser.add_argument_group("advanced")
    advanced.add_argument(
        "--ramp",
        type=_non_negative_float,
        default=10.0,
        help="seconds over which realistic/idle connects are spread (default 10)",
    )
    advanced.add_argument(
        "--mix",
        choices=("session", "authorize", "heartbeat"),
        default="session",
        help="what realistic paces: charging sessions (default), Authorize only, Heartbeat only",
    )
    advanced.add_argument(
        "--meter-values",
        type=_positive_int,
        default=8,
        help="MeterValues per charging session (default 8)",
    )
    advanced.add_argument(
        "--heartbeat-interval",
        type=_non_negative_float,
        default=None,
        help="override the heartbeat interval from BootNotification.conf (0 disables)",
    )
    advanced.add_argument(
        "--call-timeout",
        type=_non_negative_float,
        default=30.0,
        help="seconds to wait for a CALLRESULT (default 30)",
    )
    advanced.add_argument(
        "--transaction-attempts",
        type=_positive_int,
        default=3,
        help="TransactionMessageAttempts: tries of a transaction message that gets a "
        "CALLERROR or no answer before the charger discards it (default 3)",
    )
    advanced.add_argument(
        "--transaction-retry",
        type=_positive_int,
        default=60,
        help="TransactionMessageRetryInterval: seconds, times the tries so far, before "
        "the next try (default 60)",
    )
    advanced.add_argument(
        "--connect-timeout",
        type=_non_negative_float,
        default=30.0,
        help="seconds for a WebSocket handshake (default 30)",
    )
    advanced.add_argument(
        "--validate",
        choices=("all", "first", "off"),
        default="first",
        help="schema-check every frame, the first few of each kind (default), or none",
    )
    advanced.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="processes to spread the fleet over (no progress line when > 1)",
    )
    advanced.add_argument(
        "--source-address",
        action="append",
        default=[],
        metavar="IP",
        help="local address(es) to connect from, e.g. 127.0.0.2 (repeat for more ports)",
    )
    _add_security_arguments(parser)


def _add_security_arguments(parser: argparse.ArgumentParser) -> None:
    security = parser.add_argument_group(
        "security profiles (OCPP 1.6 Security Whitepaper ed. 2)",
        "profile 1: ws:// and --password; 2: wss:// and --password; 3: wss:// and client "
        "certificates. File and value templates may contain {n} (the charger's number) and "
        "{id} (its identity).",
    )
    security.add_argument(
        "--password",
        metavar="P",
        help="HTTP Basic password of every charger (its AuthorizationKey), e.g. 'secret-{id}'",
    )
    security.add_argument(
        "--password-file",
        metavar="F",
        help="passwords per charger, lines 'ID PASSWORD' (chargers not listed use --password)",
    )
    security.add_argument(
        "--ca-file",
        metavar="F",
        help="PEM CA certificates the CSMS's certificate (and an https:// file server's) must "
        "chain to (default: the system store); the chargers' CentralSystemRootCertificates",
    )
    security.add_argument(
        "--insecure",
        action="store_true",
        help="TEST ONLY: do not verify the CSMS's (or a file server's) certificate at all, "
        "neither its chain nor its name; never use it against a CSMS that matters",
    )
    security.add_argument(
        "--cert-file", metavar="F", help="client certificate (PEM, chain) of each charger"
    )
    security.add_argument("--key-file", metavar="F", help="its private key (PEM)")
    security.add_argument(
        "--cert-dir", metavar="D", help="or a directory of <id>.pem and <id>.key per charger"
    )
    security.add_argument(
        "--organization",
        metavar="O",
        help="CpoName: the O of the CSRs the chargers send when asked to "
        "(ExtendedTriggerMessage SignChargePointCertificate); unset, they refuse",
    )
    security.add_argument(
        "--certificate-cn",
        metavar="CN",
        help="the CN of those CSRs (default: the charger id, e.g. '{id}')",
    )


def _error(message: str) -> int:
    print(f"gridlink simulate: error: {message}", file=sys.stderr)
    return 2


def plan_from_args(args: argparse.Namespace) -> FleetPlan:
    """The :class:`FleetPlan` the parsed options describe."""
    return FleetPlan(
        url=args.url,
        chargers=args.chargers,
        connectors=args.connectors,
        profile=args.profile,
        duration_s=args.duration,
        rate=args.rate,
        id_prefix=args.id_prefix,
        id_tag=args.id_tag,
        ramp_s=args.ramp,
        call_timeout_s=args.call_timeout,
        transaction_message_attempts=args.transaction_attempts,
        transaction_message_retry_s=args.transaction_retry,
        connect_timeout_s=args.connect_timeout,
        validate=args.validate,
        script=args.mix,
        meter_values_per_session=args.meter_values,
        heartbeat_interval_s=args.heartbeat_interval,
        source_addresses=tuple(args.source_address),
        password=args.password,
        password_file=args.password_file,
        ca_file=args.ca_file,
        insecure=args.insecure,
        cert_file=args.cert_file,
        key_file=args.key_file,
        cert_dir=args.cert_dir,
        organization=args.organization,
        certificate_cn=args.certificate_cn,
    )


def security_error(args: argparse.Namespace, plan: FleetPlan) -> str | None:
    """What is wrong with the security options (None: nothing); reads the files they name
    (the password file, the CA file and the first charger's certificate and key)."""
    certificate_options = [
        name
        for name, value in (
            ("--cert-file", args.cert_file),
            ("--key-file", args.key_file),
            ("--cert-dir", args.cert_dir),
        )
        if value
    ]
    if certificate_options and not plan.tls:
        return f"{certificate_options[0]} needs a wss:// URL"
    if args.insecure and args.ca_file:
        return "--insecure and --ca-file exclude each other"
    if (args.cert_file is None) != (args.key_file is None):
        return "--cert-file and --key-file go together"
    if args.cert_dir and args.cert_file:
        return "--cert-dir and --cert-file exclude each other"
    if args.password_file:
        try:
            credentials.read_password_file(args.password_file)
        except (OSError, ValueError) as exc:
            return f"--password-file: {getattr(exc, 'strerror', None) or exc}"
    if plan.tls or plan.ca_file:
        contexts = ClientContexts(ca_file=plan.ca_file, insecure=plan.insecure)
        files = plan.client_files(0)
        try:
            contexts.get(files=files)
        except TlsSetupError as exc:
            named = ", ".join(filter(None, (plan.ca_file, *(files or ()))))
            return f"TLS files not loaded ({named}): {exc}"
    return None


def failed(report: dict[str, Any]) -> bool:
    """Whether a finished run had any failure worth a non-zero exit status."""
    overall = report["overall"]
    connections = report["connections"]
    unanswered = sum(a["unanswered_at_end"] for a in report["actions"].values())
    return bool(
        overall["errors"]
        or overall["timeouts"]
        or unanswered
        or connections["connect_failures"]
        or report["boot"]["chargers_accepted"] < report["chargers"]
        or report["internal_errors"]
    )


async def run(args: argparse.Namespace) -> int:
    """Run the simulation the options describe; print the report; return the exit status."""
    parts = urlsplit(args.url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        return _error(f"--url must be a ws:// or wss:// URL, not {args.url!r}")
    if len(args.id_prefix) + len(str(args.chargers)) > 48:
        return _error("--id-prefix is too long for a charge point identity")
    if len(args.id_tag.replace("{n}", str(args.chargers))) > 20:
        return _error("--id-tag must be at most 20 characters (OCPP IdToken)")
    plan = plan_from_args(args)
    problem = security_error(args, plan)
    if problem is not None:
        return _error(problem)
    if args.insecure:
        print(
            "gridlink simulate: warning: --insecure: the CSMS's certificate is NOT verified "
            "(test only)",
            file=sys.stderr,
        )
    limit = raise_file_limit()
    per_process = -(-args.chargers // args.workers)
    if per_process + 64 > limit:
        return _error(
            f"{per_process} chargers in one process need more than the file limit {limit}; "
            f"use --workers {-(-args.chargers // max(limit - 64, 1))} or more"
        )
    show_progress = args.workers == 1 and (args.progress or sys.stderr.isatty())
    try:
        if args.workers > 1:
            stats = await run_in_processes(plan, args.workers)
            elapsed = max(args.duration, 1e-9)
            report = stats.report(
                profile=plan.profile,
                url=plan.url,
                connectors=plan.connectors,
                duration_s=args.duration,
                target_rate=plan.rate if plan.profile == "realistic" else None,
                messages_per_s=round(stats.totals()["sent"] / elapsed, 1),
            )
        else:
            fleet = Fleet(plan, progress=sys.stderr if show_progress else None)
            with _stop_on_signals(fleet):
                await fleet.run()
            report = fleet.report()
    except Unreachable as exc:
        return _error(str(exc))
    except OSError as exc:
        return _error(exc.strerror or str(exc))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render_table(report))
    return 1 if failed(report) else 0


@contextlib.contextmanager
def _stop_on_signals(fleet: Fleet) -> Any:
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, fleet.stop)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    """``python -m simulator``: parse, run, exit status."""
    parser = argparse.ArgumentParser(
        prog="gridlink simulate", description="Simulate a fleet of OCPP 1.6-J charge points."
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        try:
            import uvloop  # optional: a cheaper event loop leaves more CPU to the system tested
        except ImportError:
            return asyncio.run(run(args))
        return uvloop.run(run(args))
    except KeyboardInterrupt:
        return 130
