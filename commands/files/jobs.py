"""Firmware, diagnostics, log and signed-firmware jobs: the status machine the charger's
notifications drive.

FirmwareStatusNotification and DiagnosticsStatusNotification carry no command id: one
belongs to the station's newest job whose command left GridLink before the notification
was received. LogStatusNotification and SignedFirmwareStatusNotification carry the
``requestId`` of their GetLog / SignedUpdateFirmware (N01.FR.07, L01.FR.10): one belongs to
the station's job with that requestId (and, without one, to none: only Idle, answering a
trigger, goes without, N01.FR.12, L01.FR.21).

Notifications are delivered at least once and may be processed out of order, or before the
job exists (the charger may report Downloading before its UpdateFirmware.conf is
processed): so every notification is first kept in the station's status document
(``firmware_status``, ``diagnostics_status``, ``log_status``, ``signed_firmware_status``), a
new job replays the ones it missed, and a status changes a job only forward — never back
to an earlier step, never after a final status, never older than the status it would
replace. Statuses of one step may follow each other (a download paused and resumed).
Idle is kept in the history but changes no job. A newer job for the station supersedes
open older ones (``Superseded``), as a charger cancels an ongoing upload or update for a
new request (N01.FR.11, L01.FR.26).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from commands.files.repository import (
    DIAGNOSTICS_JOBS,
    DIAGNOSTICS_STATUS,
    FIRMWARE_JOBS,
    FIRMWARE_STATUS,
    LOG_JOBS,
    LOG_STATUS,
    SIGNED_FIRMWARE_JOBS,
    SIGNED_FIRMWARE_STATUS,
    Db,
)
from commands.repository import sent_times
from services.ocpp16 import utcnow

ACCEPTED = "Accepted"
SUPERSEDED = "Superseded"
NO_DIAGNOSTICS = "NoDiagnostics"
NO_LOG = "NoLogAvailable"  # GetLog.conf without a filename: nothing to upload
STATION_HISTORY = 100  # notifications kept per station
SEND_SKEW = timedelta(seconds=1)  # clock difference allowed between gateway and service


@dataclass(frozen=True)
class JobKind:
    """The status machine of one kind of job and where its documents live."""

    collection: str
    station_collection: str
    ranks: tuple[tuple[str, ...], ...]  # open statuses, step by step
    final: frozenset[str]
    by_request_id: bool = False  # notifications name their job by requestId

    @property
    def steps(self) -> tuple[str, ...]:
        """The open statuses, in order."""
        return tuple(status for rank in self.ranks for status in rank)

    def may_follow(self, status: str) -> list[str] | None:
        """The job statuses ``status`` may replace; None if it never changes a job (Idle)."""
        if status in self.final:
            return list(self.steps)
        for index, rank in enumerate(self.ranks):
            if status in rank:
                return [s for earlier in self.ranks[: index + 1] for s in earlier]
        return None


def _steps(*statuses: str) -> tuple[tuple[str, ...], ...]:
    return tuple((status,) for status in statuses)


FIRMWARE = JobKind(
    FIRMWARE_JOBS, FIRMWARE_STATUS,
    _steps(ACCEPTED, "Downloading", "Downloaded", "Installing"),
    frozenset({"Installed", "DownloadFailed", "InstallationFailed", SUPERSEDED}),
)


DIAGNOSTICS = JobKind(
    DIAGNOSTICS_JOBS, DIAGNOSTICS_STATUS,
    _steps(ACCEPTED, "Uploading"),
    frozenset({"Uploaded", "UploadFailed", NO_DIAGNOSTICS, SUPERSEDED}),
)

#: UploadLogStatusEnumType (whitepaper §6.17): Uploading, then Uploaded or a failure.
LOGS = JobKind(
    LOG_JOBS, LOG_STATUS,
    _steps(ACCEPTED, "Uploading"),
    frozenset({"Uploaded", "UploadFailure", "BadMessage", "NotSupportedOperation",
               "PermissionDenied", NO_LOG, SUPERSEDED}),
    by_request_id=True,
)

#: FirmwareStatusEnumType (whitepaper §6.6, figure 14): intermediate states in the order of
#: the update; a download may pause and resume, a reboot comes before or during installing.
SIGNED_FIRMWARE = JobKind(
    SIGNED_FIRMWARE_JOBS, SIGNED_FIRMWARE_STATUS,
    ((ACCEPTED,), ("DownloadScheduled",), ("Downloading", "DownloadPaused"), ("Downloaded",),
     ("SignatureVerified",), ("InstallScheduled",), ("InstallRebooting", "Installing")),
    frozenset({"Installed", "DownloadFailed", "InvalidSignature", "InstallVerificationFailed",
               "InstallationFailed", SUPERSEDED}),
    by_request_id=True,
)


class JobBook:
    """The jobs of one kind and the per-station notifications they are built from."""

    def __init__(self, db: Db, kind: JobKind) -> None:
        self.db = db
        self.kind = kind
        self.jobs = db[kind.collection]
        self.stations = db[kind.station_collection]

    async def notify(self, station: str, status: str, at: datetime, message: str,
                     request_id: int | None = None) -> None:
        """A notification: keep it for the station, then apply it to the job it belongs to."""
        await self.record_station_status(station, status, at, message, request_id)
        if self.kind.by_request_id:
            if request_id is None:
                return
            job = await self.jobs.find_one({"station": station, "request_id": request_id},
                                           {"_id": 1})
        else:
            job = await self.jobs.find_one({"station": station, "since": {"$lte": at}},
                                           {"_id": 1}, sort=[("since", DESCENDING)])
        if job is not None:
            await self.apply(job["_id"], status, at, message)

    async def record_station_status(self, station: str, status: str, at: datetime,
                                    message: str, request_id: int | None = None) -> None:
        """The latest status per station (by reception time), with recent history."""
        entry: dict[str, Any] = {"status": status, "at": at, "message": message}
        if request_id is not None:
            entry["request_id"] = request_id
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
        history = (seen or {}).get("history", [])
        if self.kind.by_request_id:
            missed = [h for h in history if h.get("request_id") == job["request_id"]]
        else:
            missed = [h for h in history if h["at"] >= since]
        for entry in sorted(missed, key=lambda h: h["at"]):
            await self.apply(job["_id"], entry["status"], entry["at"], entry["message"])


def job_since(command: dict[str, Any]) -> datetime:
    """When the command left GridLink: notifications received from then on are its job's.

    That is its creation, or — for a command that waited for its station — its send time,
    less a little for clocks that differ between processes.
    """
    sent = sent_times(command)
    created: datetime = command["created_at"]
    return max(created, sent[-1] - SEND_SKEW) if sent else created


def new_job(command: dict[str, Any], status: str, **fields: Any) -> dict[str, Any]:
    since, now = job_since(command), utcnow()
    return {"_id": command["_id"], "station": command["station"], "status": status,
            "since": since, "status_at": since, "created_at": now, "updated_at": now,
            "history": [{"status": status, "at": now, "applied": True}], **fields}

