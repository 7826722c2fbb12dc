"""Firmware and diagnostics jobs: the status machine the charger's notifications drive, against
the MongoDB wire protocol."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from commands.files import repository
from commands.files.jobs import ACCEPTED, DIAGNOSTICS, FIRMWARE, JobBook


def test_status_steps() -> None:
    assert FIRMWARE.may_follow("Downloaded") == [ACCEPTED, "Downloading", "Downloaded"]
    assert FIRMWARE.may_follow("Installed") == [ACCEPTED, "Downloading", "Downloaded",
                                                "Installing"]
    assert FIRMWARE.may_follow("Idle") is None
    assert DIAGNOSTICS.may_follow("UploadFailed") == [ACCEPTED, "Uploading"]


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
    await book.notify("CP1", "InstallationFailed", at[2], "m3")    # older than the final one
    await book.notify("CP1", "Installed", at[3], "m4")             # redelivered
    job = await db[repository.FIRMWARE_JOBS].find_one({"_id": "job1"})
    assert job["status"] == "Installed"
    assert [(h["status"], h["applied"]) for h in job["history"]] == [
        ("Downloaded", True), ("Downloading", False), ("Installed", True),
        ("InstallationFailed", False)]
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
