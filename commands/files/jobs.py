"""Firmware, diagnostics, log and signed-firmware jobs: the status machine the charger's
notifications drive.

FirmwareStatusNotification and DiagnosticsStatusNotification carry no command id: one
belongs to the station's newest job whose command left GridLink before the notification
was received. LogStatusNotification and SignedFirmwareStatusNotification carry the
``requestId`` of their GetLog / SignedUpdateFirmware (N01.FR.07, L01.FR.10): one belongs to
the station's job with that requestId (and, without one, to none: only Idle, answering a
trigger, goes without, N01.FR.12, L01.FR.21).

Notifications are delivered at least once and may be processed out of order, or before the
job exists (the charger may report UploadFailed before its GetDiagnostics.conf is
processed): so every notification is first kept in the station's status document
(``firmware_status``, ``diagnostics_status``, ``log_status``, ``signed_firmware_status``), a
new job replays the ones it missed, and a job's status is always the **merge** of its
answer's status and every report in its history, in timestamp order
(:func:`commands.files.rules.merge_status`): forward only, never after a final status, and a
charger's report always more telling than the answer's ``NoDiagnostics`` /
``NoLogAvailable``. The 1.6 notifications carry no timestamp: their time is when the gateway
received them (the envelope's ``received_at``). Idle is kept in the history but changes no
job. A newer job for the station supersedes open older ones (``Superseded``, from the newer
job's start), as a charger cancels an ongoing upload or update for a new request (N01.FR.11,
L01.FR.26) — unless the charger reported an end before that.

Every change of a job's history increments its ``rev``; the merged status is written only
over the ``rev`` it was computed from (else computed again), so concurrent consumers never
lose a report.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING
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
from commands.files.rules import (
    CHARGER,
    CSMS,
    StatusMachine,
    StatusReport,
    merge_status,
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
    machine: StatusMachine
    by_request_id: bool = False  # notifications name their job by requestId

    @property
    def final(self) -> frozenset[str]:
        return self.machine.final

    @property
    def steps(self) -> tuple[str, ...]:
        """The open statuses, in order."""
        return self.machine.steps

    def may_follow(self, status: str) -> list[str] | None:
        """The job statuses ``status`` may replace; None if it never changes a job (Idle)."""
        return self.machine.may_follow(status)


def _steps(*statuses: str) -> tuple[tuple[str, ...], ...]:
    return tuple((status,) for status in statuses)


FIRMWARE = JobKind(
    FIRMWARE_JOBS, FIRMWARE_STATUS, StatusMachine(
        _steps(ACCEPTED, "Downloading", "Downloaded", "Installing"),
        frozenset({"Installed", "DownloadFailed", "InstallationFailed", SUPERSEDED})),
)


DIAGNOSTICS = JobKind(
    DIAGNOSTICS_JOBS, DIAGNOSTICS_STATUS, StatusMachine(
        _steps(ACCEPTED, "Uploading"),
        frozenset({"Uploaded", "UploadFailed", NO_DIAGNOSTICS, SUPERSEDED}),
        answer_final=frozenset({NO_DIAGNOSTICS})),
)

#: UploadLogStatusEnumType (whitepaper §6.17): Uploading, then Uploaded or a failure.
LOGS = JobKind(
    LOG_JOBS, LOG_STATUS, StatusMachine(
        _steps(ACCEPTED, "Uploading"),
        frozenset({"Uploaded", "UploadFailure", "BadMessage", "NotSupportedOperation",
                   "PermissionDenied", NO_LOG, SUPERSEDED}),
        answer_final=frozenset({NO_LOG})),
    by_request_id=True,
)

#: FirmwareStatusEnumType (whitepaper §6.6, figure 14): intermediate states in the order of
#: the update; a download may pause and resume, a reboot comes before or during installing.
SIGNED_FIRMWARE = JobKind(
    SIGNED_FIRMWARE_JOBS, SIGNED_FIRMWARE_STATUS, StatusMachine(
        ((ACCEPTED,), ("DownloadScheduled",), ("Downloading", "DownloadPaused"),
         ("Downloaded",), ("SignatureVerified",), ("InstallScheduled",),
         ("InstallRebooting", "Installing")),
        frozenset({"Installed", "DownloadFailed", "InvalidSignature",
                   "InstallVerificationFailed", "InstallationFailed", SUPERSEDED})),
    by_request_id=True,
)


def _report(entry: dict[str, Any]) -> StatusReport:
    source = entry.get("source") or (CSMS if "by" in entry else CHARGER)
    return StatusReport(entry["status"], entry["at"], source)


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

    async def apply(self, job_id: str, status: str, at: datetime, message: str, *,
                    source: str = CHARGER, **fields: Any) -> bool:
        """Add a report to the job's history (once per ``message``) and merge its status
        again; True when the report is part of the job's status path."""
        entry = {"status": status, "at": at, "message": message, "applied": False, **fields}
        if source != CHARGER:
            entry["source"] = source
        await self.jobs.update_one(
            {"_id": job_id, "history.message": {"$ne": message}},
            {"$push": {"history": entry}, "$inc": {"rev": 1}})
        job = await self.merge(job_id)
        return job is not None and any(h.get("message") == message and h.get("applied")
                                       for h in job.get("history", []))

    async def merge(self, job_id: str) -> dict[str, Any] | None:
        """Set the job's status to the merge of its history (:func:`rules.merge_status`).

        The job's ``rev`` grows with every change: a merge written over a newer history
        than the one it read is not written, but done again, so concurrent reports (two
        consumers) cannot hide one another."""
        while True:
            job = await self.jobs.find_one({"_id": job_id})
            if job is None:
                return None
            history = job.get("history", [])
            reports = [i for i, h in enumerate(history) if "message" in h]
            merged = merge_status(self.kind.machine, _answer_status(job),
                                  [_report(history[i]) for i in reports])
            applied = {reports[i] for i in merged.applied}
            marked = [{**h, "applied": i in applied} if "message" in h else h
                      for i, h in enumerate(history)]
            status_at = merged.at or job["since"]
            if (job["status"], job.get("status_at"), history) == \
                    (merged.status, status_at, marked):
                return job
            changes: dict[str, Any] = {"status": merged.status, "status_at": status_at,
                                       "history": marked}
            if merged.status != job["status"]:
                changes["updated_at"] = utcnow()
            result = await self.jobs.update_one({"_id": job_id, "rev": job.get("rev")},
                                                {"$set": changes, "$inc": {"rev": 1}})
            if result.modified_count == 1:
                return {**job, **changes}

    async def open(self, job: dict[str, Any]) -> None:
        """Record a new job (idempotent), supersede older open ones, replay what it missed."""
        station, since = job["station"], job["since"]
        with contextlib.suppress(DuplicateKeyError):
            await self.jobs.insert_one({"answer_status": job["status"], "rev": 0, **job})
        newer = await self.jobs.find_one(
            {"station": station, "since": {"$gt": since}, "_id": {"$ne": job["_id"]}},
            {"_id": 1, "since": 1}, sort=[("since", ASCENDING)])
        if newer is not None:
            await self._supersede(job["_id"], newer)
        async for older in self.jobs.find(
                {"station": station, "_id": {"$ne": job["_id"]}, "since": {"$lte": since},
                 "status": {"$nin": list(self.kind.final)}}, {"_id": 1}):
            await self._supersede(older["_id"], job)
        seen = await self.stations.find_one({"_id": station}, {"history": 1})
        history = (seen or {}).get("history", [])
        if self.kind.by_request_id:
            missed = [h for h in history if h.get("request_id") == job["request_id"]]
        else:
            missed = [h for h in history if h["at"] >= since]
        for entry in missed:
            await self.jobs.update_one(
                {"_id": job["_id"], "history.message": {"$ne": entry["message"]}},
                {"$push": {"history": {"status": entry["status"], "at": entry["at"],
                                       "message": entry["message"], "applied": False}},
                 "$inc": {"rev": 1}})
        await self.merge(job["_id"])

    async def _supersede(self, job_id: str, by: dict[str, Any]) -> None:
        """A newer job for the station (``by``) ends this one from its start on, unless the
        charger reported an end before."""
        await self.apply(job_id, SUPERSEDED, by["since"], f"superseded-by/{by['_id']}",
                         source=CSMS, by=by["_id"])


def _answer_status(job: dict[str, Any]) -> str:
    """The status the charger's answer gave the job (Accepted, NoDiagnostics, ...)."""
    if "answer_status" in job:
        return str(job["answer_status"])
    first = next((h for h in job.get("history", []) if "message" not in h and "by" not in h),
                 None)
    return str(first["status"]) if first else ACCEPTED


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
            "history": [{"status": status, "at": since, "applied": True}], **fields}

