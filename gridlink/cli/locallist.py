"""Local Authorization Lists from the id-tag store::

    gridlink locallist sync STATION... | --all [--full] [--timeout S]
    gridlink locallist show STATION [--json]

``sync`` asks each station for its list version (GetLocalListVersion); when it is the
version GridLink last saw the station accept, only the changes since then are sent
(Differential), otherwise — or with ``--full`` — the whole list (Full). Lists longer than
the station's SendLocalListMaxLength go out as several messages. A Differential answered
VersionMismatch or Failed is retried as a Full update by the commands service. One line per
station; exit 1 when any station did not end up in sync (offline ones included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from commands.local_list import repository, rules
from gridlink.cli.output import positive, print_rows, with_db
from gridlink.client import send_command
from services import stations
from services.envelope import CommandResult, failure_text
from services.errors import ConfigurationError, GridLinkError
from services.ocpp16 import utcnow
from services.settings import Settings

CONCURRENT_STATIONS = 16
POLL_INTERVAL_S = 0.1
PROGRESS_GRACE_S = 10.0  # beyond a message's timeout before a job counts as stuck

Db = AsyncDatabase[dict[str, Any]]


def add_parsers(sub: Any, parser_class: type) -> None:
    parser = sub.add_parser("locallist", help="Local Authorization Lists (from the id tags)")
    ll = parser.add_subparsers(dest="action", required=True, parser_class=parser_class)
    sync = ll.add_parser("sync", help="bring stations' local lists up to date",
                         epilog="example: gridlink locallist sync CP001 CP002; "
                                "gridlink locallist sync --all --full")
    sync.add_argument("stations", nargs="*", metavar="STATION")
    sync.add_argument("--all", action="store_true", help="every registered station")
    sync.add_argument("--full", action="store_true",
                      help="send the whole list even when a differential update would do")
    sync.add_argument("--timeout", type=float, default=30.0,
                      help="seconds a station may take to answer each message (default 30)")
    show = ll.add_parser("show", help="what a station holds and what is pending")
    show.add_argument("station")
    show.add_argument("--json", action="store_true")
    sync.set_defaults(dispatch=dispatch_sync)
    show.set_defaults(dispatch=dispatch_show)


def _describe(result: CommandResult) -> str:
    """``offline: …``: the command's own status word, then why (one line per station)."""
    return failure_text(result.status, result.error_code, result.error_description,
                        reason=result.status)


async def _start(db: Db, station: str, reported: int, *, full: bool, timeout_s: float
                 ) -> tuple[dict[str, Any] | None, int | None]:
    """Plan and record a sync job: (the job, or None when already in sync; held version)."""
    now = utcnow()
    payloads, version = await repository.plan_sync(db, station, now, full=full,
                                                   reported_version=reported)
    if not payloads:
        return None, version
    return await repository.begin_job(db, station, payloads, timeout_s=timeout_s,
                                      now=now), version


async def _wait(db: Db, station: str, job_id: str, timeout_s: float) -> dict[str, Any]:
    """Wait until the job ends (the commands service drives it); the final state document."""
    loop = asyncio.get_running_loop()
    last_change, deadline = None, loop.time() + timeout_s + PROGRESS_GRACE_S
    while True:
        state = await repository.load(db, station) or {}
        job = state.get("sync") or {}
        if job.get("id") != job_id:
            raise GridLinkError(f"{station}: another sync replaced this one")
        if job["state"] != "running":
            return state
        if job["updated_at"] != last_change:  # progress: the next message went out
            last_change, deadline = job["updated_at"], loop.time() + timeout_s + PROGRESS_GRACE_S
        if loop.time() > deadline:
            await repository.end_job(db, station, job_id, "failed", "no progress", utcnow())
            raise GridLinkError(f"{station}: no answer from the commands service in time")
        await asyncio.sleep(POLL_INTERVAL_S)


async def sync_station(settings: Settings, db: Db, station: str, *, full: bool,
                       timeout_s: float) -> tuple[bool, str]:
    """Sync one station: (in sync now?, one line for the user)."""
    try:
        asked = await send_command(settings, station, "GetLocalListVersion", {},
                                   timeout_s=timeout_s)
    except TimeoutError:
        return False, f"{station}: timeout: no answer to GetLocalListVersion"
    assert asked is not None
    if asked.status != "accepted":
        return False, f"{station}: GetLocalListVersion {_describe(asked)}"
    reported = int((asked.response or {})["listVersion"])
    if reported == -1:
        return False, f"{station}: no local authorization list (GetLocalListVersion: -1)"
    try:
        job, version = await _start(db, station, reported, full=full, timeout_s=timeout_s)
    except rules.SyncRefused as exc:
        return False, f"{station}: {exc}"
    if job is None:
        return True, f"{station}: in sync at version {version}"
    first = rules.current_payload(job)
    try:
        result = await send_command(settings, station, "SendLocalList", first,
                                    timeout_s=timeout_s, command_id=job["current"])
    except TimeoutError:
        result = None
    assert result is None or isinstance(result, CommandResult)
    if result is not None and result.status == "invalid":  # never recorded: end it here
        await repository.end_job(db, station, job["id"], "failed", _describe(result), utcnow())
        return False, f"{station}: SendLocalList {_describe(result)}"
    try:
        state = await _wait(db, station, job["id"], timeout_s)
    except GridLinkError as exc:
        return False, str(exc)
    final = state["sync"]
    if final["state"] != "done":
        return False, f"{station}: failed: {final['reason']}"
    kinds = [p["updateType"] for p in final["payloads"]]
    how = f"{kinds[0]} update" + (f" + {len(kinds) - 1} more" if len(kinds) > 1 else "")
    if final["fallback"]:
        how = f"differential update refused, then {how}"
    return True, f"{station}: in sync at version {state['version']} ({how}, " \
                 f"{len(state.get('entries', []))} entries)"


async def _stations(db: Db, args: argparse.Namespace) -> list[str]:
    """The stations named, or every registered one (--all)."""
    if not args.all:
        return list(dict.fromkeys(args.stations))
    return [doc["_id"] async for doc in db[stations.COLLECTION].find(
        {}, {"_id": 1}, sort=[("_id", 1)])]


async def dispatch_show(settings: Settings, args: argparse.Namespace) -> int:
    async def show(db: Db) -> dict[str, Any]:
        state = await repository.load(db, args.station)
        desired = await repository.desired_from_store(db, utcnow())
        return rules.summary(args.station, state, desired)

    summary = await with_db(settings, show)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    sync = summary["sync"] or {}
    pending = summary["pendingChanges"]
    print(f"{summary['station']}: version {summary['version']} (charger reported "
          f"{summary['reportedVersion']}), "
          f"{'unknown' if pending is None else pending} change(s) pending, "
          f"last sync {sync.get('state') or 'never'}"
          + (f": {sync['reason']}" if sync.get("reason") else ""))
    print_rows([{"idTag": e["idTag"], "status": e["idTagInfo"]["status"],
                 "expiryDate": e["idTagInfo"].get("expiryDate"),
                 "parentIdTag": e["idTagInfo"].get("parentIdTag")}
                for e in summary["entries"]], False)
    return 0


async def dispatch_sync(settings: Settings, args: argparse.Namespace) -> int:
    positive("--timeout", args.timeout)
    if args.all == bool(args.stations):
        raise ConfigurationError("locallist sync: give STATION... or --all"
                                 + (", not both" if args.all else ""))
    limit = asyncio.Semaphore(CONCURRENT_STATIONS)

    async def run(db: Db) -> list[tuple[bool, str]]:
        async def one(station: str) -> tuple[bool, str]:
            async with limit:
                return await sync_station(settings, db, station, full=args.full,
                                          timeout_s=args.timeout)

        names = await _stations(db, args)
        return list(await asyncio.gather(*(one(station) for station in names)))

    outcomes = await with_db(settings, run)
    for ok, line in outcomes:
        if ok:
            print(line)
        else:
            print(f"gridlink: {line}", file=sys.stderr)
    return 0 if all(ok for ok, _ in outcomes) else 1
