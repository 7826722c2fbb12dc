"""Firmware, diagnostics, log and signed-firmware jobs: the status machine the charger's
notifications drive, against the MongoDB wire protocol."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from commands.files import repository
from commands.files.jobs import (
    ACCEPTED,
    DIAGNOSTICS,
    FIRMWARE,
    LOGS,
    NO_DIAGNOSTICS,
    SIGNED_FIRMWARE,
    SUPERSEDED,
    JobBook,
)

T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_status_steps() -> None:
    assert FIRMWARE.may_follow("Downloaded") == [ACCEPTED, "Downloading", "Downloaded"]
    assert FIRMWARE.may_follow("Installed") == [ACCEPTED, "Downloading", "Downloaded",
                                                "Installing"]
    assert FIRMWARE.may_follow("Idle") is None
    assert DIAGNOSTICS.may_follow("UploadFailed") == [ACCEPTED, "Uploading"]
    assert LOGS.may_follow("PermissionDenied") == [ACCEPTED, "Uploading"]
    assert LOGS.may_follow("Idle") is None
    # A download may pause and resume; a reboot comes before or during installing.
    assert "DownloadPaused" in SIGNED_FIRMWARE.may_follow("Downloading")  # type: ignore
    assert "Downloading" in SIGNED_FIRMWARE.may_follow("DownloadPaused")  # type: ignore
    assert "Installing" in SIGNED_FIRMWARE.may_follow("InstallRebooting")  # type: ignore
    assert "Downloaded" not in SIGNED_FIRMWARE.may_follow("Downloading")  # type: ignore
    assert SIGNED_FIRMWARE.may_follow("InvalidSignature") == list(SIGNED_FIRMWARE.steps)
    assert SIGNED_FIRMWARE.may_follow("Idle") is None


async def test_late_and_repeated_notifications_never_move_a_job_back(db: repository.Db) -> None:
    book = JobBook(db, FIRMWARE)
    t0 = datetime(2026, 11, 23, 12, tzinfo=UTC)
    await book.open({"_id": "job1", "station": "CP1", "status": ACCEPTED, "since": t0,
                     "status_at": t0, "created_at": t0, "updated_at": t0, "history": []})
    at = [t0 + timedelta(seconds=i) for i in range(1, 6)]
    await book.notify("CP1", "Downloaded", at[1], "m2")
    await book.notify("CP1", "Downloading", at[0], "m1")           # processed late
    assert (await db[repository.FIRMWARE_JOBS].find_one({"_id": "job1"}))["status"] == "Downloaded"
    await book.notify("CP1", "Installed", at[3], "m4")
    await book.notify("CP1", "InstallationFailed", at[2], "m3")    # said first, processed late
    await book.notify("CP1", "Installed", at[3], "m4")             # redelivered
    job = await db[repository.FIRMWARE_JOBS].find_one({"_id": "job1"})
    # In the charger's order: Downloading, Downloaded, InstallationFailed (final), Installed.
    assert job["status"] == "InstallationFailed" and job["status_at"] == at[2]
    assert [(h["status"], h["applied"]) for h in job["history"]] == [
        ("Downloaded", True), ("Downloading", True), ("Installed", False),
        ("InstallationFailed", True)]
    station = await db[repository.FIRMWARE_STATUS].find_one({"_id": "CP1"})
    assert station["status"] == "Installed" and len(station["history"]) == 4


async def test_a_job_replays_notifications_that_came_first_and_supersedes(
        db: repository.Db) -> None:
    book = JobBook(db, DIAGNOSTICS)
    t0 = datetime(2026, 11, 23, 12, tzinfo=UTC)

    def job(job_id: str, since: datetime) -> dict[str, Any]:
        return {"_id": job_id, "station": "CP1", "status": ACCEPTED, "since": since,
                "status_at": since, "created_at": since, "updated_at": since, "history": []}

    await book.open(job("old", t0))
    await book.notify("CP1", "Uploading", t0 + timedelta(seconds=5), "n1")   # the old job's
    await book.notify("CP1", "Uploading", t0 + timedelta(seconds=11), "n2")  # before "new"
    await book.open(job("new", t0 + timedelta(seconds=10)))                  # exists
    jobs = db[repository.DIAGNOSTICS_JOBS]
    assert (await jobs.find_one({"_id": "old"}))["status"] == "Superseded"
    new = await jobs.find_one({"_id": "new"})
    assert new["status"] == "Uploading"
    assert [h["message"] for h in new["history"]] == ["n2"]
    await book.open(job("new", t0 + timedelta(seconds=10)))  # again: nothing changes
    assert (await jobs.find_one({"_id": "new"}))["history"] == new["history"]


def request_job(job_id: str, request_id: int, since: datetime = T0) -> dict[str, Any]:
    return {"_id": job_id, "station": "CP1", "status": ACCEPTED, "request_id": request_id,
            "since": since, "status_at": since, "created_at": since, "updated_at": since,
            "history": []}


async def test_log_notifications_find_their_job_by_request_id(db: repository.Db) -> None:
    book = JobBook(db, LOGS)
    at = [T0 + timedelta(seconds=i) for i in range(1, 8)]
    # Before GetLog.conf is processed: kept, then applied when the job opens.
    await book.notify("CP1", "Uploading", at[0], "m1", request_id=7)
    await book.notify("CP1", "Uploading", at[1], "m2", request_id=99)  # another request
    await book.notify("CP1", "Idle", at[2], "m3")                      # a trigger's answer
    await book.open(request_job("log7", 7))
    jobs = db[repository.LOG_JOBS]
    job = await jobs.find_one({"_id": "log7"})
    assert job["status"] == "Uploading" and [h["message"] for h in job["history"]] == ["m1"]
    await book.notify("CP1", "Uploaded", at[4], "m5", request_id=7)
    await book.notify("CP1", "UploadFailure", at[3], "m4", request_id=7)  # said first
    await book.notify("CP1", "Uploading", at[5], "m6", request_id=7)      # after the end
    await book.notify("CP1", "Uploaded", at[4], "m5", request_id=7)       # redelivered
    job = await jobs.find_one({"_id": "log7"})
    assert job["status"] == "UploadFailure"
    assert [(h["status"], h["applied"]) for h in job["history"]] == [
        ("Uploading", True), ("Uploaded", False), ("UploadFailure", True),
        ("Uploading", False)]
    station = await db[repository.LOG_STATUS].find_one({"_id": "CP1"})
    assert station["status"] == "Uploading" and len(station["history"]) == 6
    assert {h.get("request_id") for h in station["history"]} == {7, 99, None}


async def test_signed_firmware_jobs_move_forward_only(db: repository.Db) -> None:
    book = JobBook(db, SIGNED_FIRMWARE)
    await book.open(request_job("fw1", 1))
    steps = ["DownloadScheduled", "Downloading", "DownloadPaused", "Downloading", "Downloaded",
             "SignatureVerified", "InstallScheduled", "InstallRebooting", "Installing"]
    for i, status in enumerate(steps):
        await book.notify("CP1", status, T0 + timedelta(seconds=i + 1), f"s{i}", request_id=1)
    await book.notify("CP1", "Downloading", T0 + timedelta(seconds=20), "late", request_id=1)
    jobs = db[repository.SIGNED_FIRMWARE_JOBS]
    job = await jobs.find_one({"_id": "fw1"})
    assert job["status"] == "Installing"
    assert [h["status"] for h in job["history"] if h["applied"]] == steps
    await book.notify("CP1", "InstallVerificationFailed", T0 + timedelta(seconds=30), "f",
                      request_id=1)
    await book.notify("CP1", "Installed", T0 + timedelta(seconds=31), "g", request_id=1)
    assert (await jobs.find_one({"_id": "fw1"}))["status"] == "InstallVerificationFailed"


async def test_a_new_signed_update_supersedes_the_open_one(db: repository.Db) -> None:
    book = JobBook(db, SIGNED_FIRMWARE)
    await book.open(request_job("old", 1))
    await book.notify("CP1", "Downloading", T0 + timedelta(seconds=1), "a", request_id=1)
    await book.open(request_job("new", 2, T0 + timedelta(seconds=5)))
    await book.notify("CP1", "Downloaded", T0 + timedelta(seconds=6), "b", request_id=1)
    jobs = db[repository.SIGNED_FIRMWARE_JOBS]
    assert (await jobs.find_one({"_id": "old"}))["status"] == SUPERSEDED
    assert (await jobs.find_one({"_id": "new"}))["status"] == ACCEPTED


async def test_a_failure_reported_before_the_answer_is_not_hidden(db: repository.Db) -> None:
    """UploadFailed received before GetDiagnostics.conf (no fileName) is processed: the job
    ends UploadFailed, not NoDiagnostics (GridLink issue 15)."""
    book = JobBook(db, DIAGNOSTICS)
    await book.notify("CP1", "UploadFailed", T0 + timedelta(seconds=1), "early")
    await book.open({"_id": "dg", "station": "CP1", "status": NO_DIAGNOSTICS, "since": T0,
                     "status_at": T0, "created_at": T0, "updated_at": T0, "history": []})
    job = await db[repository.DIAGNOSTICS_JOBS].find_one({"_id": "dg"})
    assert job["status"] == "UploadFailed" and job["answer_status"] == NO_DIAGNOSTICS
    # A newer request does not supersede what is finished.
    await book.open({"_id": "dg2", "station": "CP1", "status": ACCEPTED,
                     "since": T0 + timedelta(seconds=5), "status_at": T0, "created_at": T0,
                     "updated_at": T0, "history": []})
    assert (await db[repository.DIAGNOSTICS_JOBS].find_one({"_id": "dg"}))["status"] == \
        "UploadFailed"


async def test_concurrent_reports_are_all_merged(db: repository.Db) -> None:
    """Reports applied at the same time (several consumers) all count: none is lost to a
    merge computed from an older history."""
    book = JobBook(db, SIGNED_FIRMWARE)
    await book.open(request_job("fw", 3))
    steps = ["DownloadScheduled", "Downloading", "Downloaded", "SignatureVerified",
             "InstallScheduled", "Installing", "Installed"]
    await asyncio.gather(*(book.apply("fw", status, T0 + timedelta(seconds=i + 1), f"c{i}")
                           for i, status in enumerate(steps)))
    job = await db[repository.SIGNED_FIRMWARE_JOBS].find_one({"_id": "fw"})
    assert job["status"] == "Installed"
    assert sorted(h["status"] for h in job["history"] if h["applied"]) == sorted(steps)
