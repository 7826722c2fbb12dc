"""Firmware Management (OCPP 1.6 §5.9, §5.19, §4.4, §4.5): jobs, notifications, file server.

- **UpdateFirmware** is checked before it is recorded: a location GridLink can hand to a
  charger (http, https, ftp, ftps — SupportedFileTransferProtocols) and no negative retries
  or retryInterval; a URL of GridLink's own file server must name an image it holds.
  When the charger accepts it, a **firmware job** (``firmware_jobs``, ``_id`` = command id)
  starts in ``Accepted`` and follows FirmwareStatusNotification: Downloading → Downloaded →
  Installing → Installed, or DownloadFailed / InstallationFailed.
- **GetDiagnostics** likewise (retries, retryInterval ≥ 0, startTime ≤ stopTime). A location
  on GridLink's upload endpoint (``…/diagnostics/{station}/{token}``) registers its token
  for that station and command before anything is sent, so the charger's upload is
  accepted however fast it comes. When the charger accepts, a **diagnostics job** starts in
  ``Accepted`` (``NoDiagnostics`` when the answer has no fileName) and follows
  DiagnosticsStatusNotification: Uploading → Uploaded / UploadFailed; the uploaded file is
  linked to it (``file_id``).

Notifications carry no command id. One belongs to the station's newest job whose command
left GridLink before the notification was received. They are delivered at least once and
may be processed out of order, or before the job exists (the charger may report
Downloading before its UpdateFirmware.conf is processed): so every notification is first
kept in the station's status document (``firmware_status`` / ``diagnostics_status``), a new
job replays the ones it missed, and a status changes a job only forward — never back to an
earlier step, never after a final status, never older than the status it would replace.
Idle (only sent after a TriggerMessage) is kept in the history but changes no job. A newer
job for the station supersedes open older ones (``Superseded``).

The file server (:mod:`commands.file_server`) runs as a background job unless
``GRIDLINK_FILES_PORT`` is 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from commands.features import CommandHooks, CommandRefused
from commands.file_server import FileServer
from services import files
from services.envelope import CommandRequest
from services.ocpp16 import call, call_result, parse_time, utcnow
from services.router import CallContext
from services.runtime import ServiceRuntime

log = logging.getLogger("gridlink.commands.firmware")

ACCEPTED = "Accepted"
SUPERSEDED = "Superseded"
NO_DIAGNOSTICS = "NoDiagnostics"
STATION_HISTORY = 100  # notifications kept per station
SEND_SKEW = timedelta(seconds=1)  # clock difference allowed between gateway and service
MAX_RETRY_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class JobKind:
    """The status machine of one kind of job and where its documents live."""

    collection: str
    station_collection: str
    steps: tuple[str, ...]  # open statuses, in order
    final: frozenset[str]

    def may_follow(self, status: str) -> list[str] | None:
        """The job statuses ``status`` may replace; None if it never changes a job (Idle)."""
        if status in self.final:
            return list(self.steps)
        if status in self.steps:
            return list(self.steps[: self.steps.index(status) + 1])
        return None


FIRMWARE = JobKind(
    files.FIRMWARE_JOBS, files.FIRMWARE_STATUS,
    (ACCEPTED, "Downloading", "Downloaded", "Installing"),
    frozenset({"Installed", "DownloadFailed", "InstallationFailed", SUPERSEDED}),
)
DIAGNOSTICS = JobKind(
    files.DIAGNOSTICS_JOBS, files.DIAGNOSTICS_STATUS,
    (ACCEPTED, "Uploading"),
    frozenset({"Uploaded", "UploadFailed", NO_DIAGNOSTICS, SUPERSEDED}),
)


class JobBook:
    """The jobs of one kind and the per-station notifications they are built from."""

    def __init__(self, db: files.Db, kind: JobKind) -> None:
        self.db = db
        self.kind = kind
        self.jobs = db[kind.collection]
        self.stations = db[kind.station_collection]

    async def notify(self, station: str, status: str, at: datetime, message: str) -> None:
        """A notification: keep it for the station, then apply it to the job it belongs to."""
        await self.record_station_status(station, status, at, message)
        job = await self.jobs.find_one({"station": station, "since": {"$lte": at}},
                                       {"_id": 1}, sort=[("since", DESCENDING)])
        if job is not None:
            await self.apply(job["_id"], status, at, message)

    async def record_station_status(self, station: str, status: str, at: datetime,
                                    message: str) -> None:
        """The latest status per station (by reception time), with recent history."""
        entry = {"status": status, "at": at, "message": message}
        try:
            await self.stations.update_one(
                {"_id": station, "history.message": {"$ne": message}},
                {"$push": {"history": {"$each": [entry], "$slice": -STATION_HISTORY}}},
                upsert=True)
        except DuplicateKeyError:
            return  # this very notification again
        await self.stations.update_one(
            {"_id": station, "$or": [{"at": {"$exists": False}}, {"at": {"$lte": at}}]},
            {"$set": {"status": status, "at": at}})

    async def apply(self, job_id: str, status: str, at: datetime, message: str) -> bool:
        """Move a job to ``status`` if that is a step forward; always keep it in the history."""
        entry = {"status": status, "at": at, "message": message}
        follows = self.kind.may_follow(status)
        if follows is not None:
            moved = await self.jobs.find_one_and_update(
                {"_id": job_id, "status": {"$in": follows}, "status_at": {"$lte": at},
                 "history.message": {"$ne": message}},
                {"$set": {"status": status, "status_at": at, "updated_at": utcnow()},
                 "$push": {"history": {**entry, "applied": True}}})
            if moved is not None:
                return True
        await self.jobs.update_one(
            {"_id": job_id, "history.message": {"$ne": message}},
            {"$push": {"history": {**entry, "applied": False}}})
        return False

    async def open(self, job: dict[str, Any]) -> None:
        """Record a new job (idempotent), supersede older open ones, replay what it missed."""
        station, since, now = job["station"], job["since"], utcnow()
        newer = await self.jobs.find_one(
            {"station": station, "since": {"$gt": since}, "_id": {"$ne": job["_id"]}}, {"_id": 1})
        if newer is not None and job["status"] not in self.kind.final:
            job = {**job, "status": SUPERSEDED, "status_at": now,
                   "history": [*job["history"], {"status": SUPERSEDED, "at": now,
                                                 "by": newer["_id"], "applied": True}]}
        with contextlib.suppress(DuplicateKeyError):
            await self.jobs.insert_one(job)
        await self.jobs.update_many(
            {"station": station, "_id": {"$ne": job["_id"]}, "since": {"$lte": since},
             "status": {"$nin": list(self.kind.final)}},
            {"$set": {"status": SUPERSEDED, "status_at": now, "updated_at": now},
             "$push": {"history": {"status": SUPERSEDED, "at": now, "by": job["_id"],
                                   "applied": True}}})
        seen = await self.stations.find_one({"_id": station}, {"history": 1})
        missed = [h for h in (seen or {}).get("history", []) if h["at"] >= since]
        for entry in sorted(missed, key=lambda h: h["at"]):
            await self.apply(job["_id"], entry["status"], entry["at"], entry["message"])


def job_since(command: dict[str, Any]) -> datetime:
    """When the command left GridLink: notifications received from then on are its job's.

    That is its creation, or — for a command that waited for its station — its send time,
    less a little for clocks that differ between processes.
    """
    sent = [h["at"] for h in command.get("history", []) if h["status"] == "sent"]
    created: datetime = command["created_at"]
    return max(created, sent[-1] - SEND_SKEW) if sent else created


def new_job(command: dict[str, Any], status: str, **fields: Any) -> dict[str, Any]:
    since, now = job_since(command), utcnow()
    return {"_id": command["_id"], "station": command["station"], "status": status,
            "since": since, "status_at": since, "created_at": now, "updated_at": now,
            "history": [{"status": status, "at": now, "applied": True}], **fields}


# --- request checks (pure) -----------------------------------------------------------------


def location_problem(location: str) -> str | None:
    """Why a charger could not use this location, or None."""
    try:
        parts = urlsplit(location)
    except ValueError:
        return "location: not a URL"
    if parts.scheme.lower() not in files.TRANSFER_SCHEMES:
        return (f"location: unsupported scheme {parts.scheme!r} "
                "(SupportedFileTransferProtocols: http, https, ftp, ftps)")
    if not parts.netloc:
        return "location: no host"
    return None


def retry_problem(payload: dict[str, Any]) -> str | None:
    for key in ("retries", "retryInterval"):
        if payload.get(key, 0) < 0:
            return f"{key} must not be negative"
    return None


def update_firmware_problem(payload: dict[str, Any]) -> str | None:
    """What is wrong with a (schema-valid) UpdateFirmware payload, or None."""
    return location_problem(payload["location"]) or retry_problem(payload)


def get_diagnostics_problem(payload: dict[str, Any], station: str) -> str | None:
    """What is wrong with a (schema-valid) GetDiagnostics payload for ``station``, or None."""
    problem = location_problem(payload["location"]) or retry_problem(payload)
    if problem is not None:
        return problem
    if "startTime" in payload and "stopTime" in payload and \
            parse_time(payload["startTime"]) > parse_time(payload["stopTime"]):
        return "startTime is after stopTime"
    slot = files.parse_upload_location(payload["location"])
    if slot is not None and slot.station != station:
        return f"location: GridLink's upload location of {slot.station!r}, not {station!r}"
    return None


def token_expiry(payload: dict[str, Any], now: datetime) -> datetime:
    """How long an upload location stays valid: a day, plus the retries the charger may use."""
    window = payload.get("retries", 0) * payload.get("retryInterval", 0)
    return now + files.UPLOAD_TOKEN_TTL + timedelta(
        seconds=min(window, MAX_RETRY_WINDOW.total_seconds()))


# --- the feature -----------------------------------------------------------------------------


def register(hooks: CommandHooks) -> None:
    runtime = hooks.runtime
    db = runtime.store.db
    router = hooks.router
    firmware_jobs = JobBook(db, FIRMWARE)
    diagnostics_jobs = JobBook(db, DIAGNOSTICS)
    base = files.public_base_url(runtime.settings)
    hooks.add_indexes(files.INDEXES)

    @router.on("FirmwareStatusNotification")
    async def firmware_status(request: call.FirmwareStatusNotification, ctx: CallContext
                              ) -> call_result.FirmwareStatusNotification:
        await firmware_jobs.notify(ctx.station, request.status, ctx.received_at,
                                   f"{ctx.session}/{ctx.unique_id}")
        return call_result.FirmwareStatusNotification()

    @router.on("DiagnosticsStatusNotification")
    async def diagnostics_status(request: call.DiagnosticsStatusNotification, ctx: CallContext
                                 ) -> call_result.DiagnosticsStatusNotification:
        await diagnostics_jobs.notify(ctx.station, request.status, ctx.received_at,
                                      f"{ctx.session}/{ctx.unique_id}")
        return call_result.DiagnosticsStatusNotification()

    # --- UpdateFirmware ---------------------------------------------------------------------

    @hooks.validate("UpdateFirmware")
    async def update_firmware_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        problem = update_firmware_problem(request.payload)
        if problem is not None:
            raise CommandRefused("PropertyConstraintViolation", problem)
        name = files.firmware_name_in(request.payload["location"], base)
        if name is not None and not await rt.with_store(lambda: files.firmware_exists(db, name)):
            raise CommandRefused("UnknownFirmware", f"no firmware {name!r} on this file server")

    @hooks.after("UpdateFirmware")
    async def firmware_job(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if command["status"] != "accepted":
            return  # the command's own record says why
        payload = command["payload"]
        job = new_job(command, ACCEPTED, location=payload["location"],
                      firmware=files.firmware_name_in(payload["location"], base),
                      retrieve_date=parse_time(payload["retrieveDate"]),
                      retries=payload.get("retries"), retry_interval=payload.get("retryInterval"))
        await rt.with_store(lambda: firmware_jobs.open(job))

    # --- GetDiagnostics ---------------------------------------------------------------------

    @hooks.validate("GetDiagnostics")
    async def get_diagnostics_rules(rt: ServiceRuntime, request: CommandRequest) -> None:
        problem = get_diagnostics_problem(request.payload, request.station)
        if problem is not None:
            raise CommandRefused("PropertyConstraintViolation", problem)
        slot = files.parse_upload_location(request.payload["location"])
        if slot is None:
            return  # somebody else's server
        expires_at = token_expiry(request.payload, utcnow())
        if not await rt.with_store(lambda: files.register_upload_token(
                db, slot.token, request.station, request.command_id, expires_at)):
            raise CommandRefused("PropertyConstraintViolation",
                                 "location: this upload token belongs to another command")

    @hooks.after("GetDiagnostics")
    async def diagnostics_job(rt: ServiceRuntime, command: dict[str, Any]) -> None:
        if command["status"] != "accepted":
            return
        payload = command["payload"]
        file_name = (command.get("response") or {}).get("fileName")
        times = {key: parse_time(payload[name]) if name in payload else None
                 for key, name in (("start_time", "startTime"), ("stop_time", "stopTime"))}
        job = new_job(command, ACCEPTED if file_name else NO_DIAGNOSTICS,
                      location=payload["location"], file_name=file_name, **times)
        await rt.with_store(lambda: diagnostics_jobs.open(job))
        upload = await rt.with_store(lambda: files.latest_upload(db, command["_id"]))
        if upload is not None:  # the charger was quicker than this answer
            await rt.with_store(lambda: files.link_diagnostics_file(db, command["_id"], upload))

    # --- the file server ----------------------------------------------------------------------

    if runtime.settings.files_port != 0:
        hooks.background.append(serve_files)


async def serve_files(runtime: ServiceRuntime) -> None:
    """Serve uploads and downloads until the service stops (retrying a busy port)."""
    settings = runtime.settings
    while not runtime.stopping.is_set():
        server = FileServer(runtime.store.db, max_upload_bytes=settings.max_upload_bytes,
                            shutdown_timeout_s=min(settings.shutdown_grace_s, 10.0))
        try:
            port = await server.start(settings.files_host, settings.files_port)
        except OSError as exc:
            log.error("file server cannot listen; retrying", extra={
                "port": settings.files_port, "error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.stopping.wait(), 5.0)
            continue
        log.info("file server listening", extra={
            "port": port, "url": files.public_base_url(settings)})
        try:
            await runtime.stopping.wait()
        finally:
            await server.stop()
        return
