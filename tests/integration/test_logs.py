"""GetLog end to end (Security Whitepaper N01): the charger uploads its log to the location
GridLink handed it and reports LogStatusNotifications with the request's requestId.

The raw-frame charger answers over a real WebSocket, uploads with HTTP to GridLink's file
server and notifies; the log lands in GridFS bucket ``logs`` and is linked to the log job.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from commands.files import repository
from tests.charger import Charger
from tests.helpers import add_station, new_id, refused_before_the_charger
from tests.processes import Stack, finish

pytestmark = pytest.mark.integration


async def upload(url: str, data: bytes, filename: str = "security.log") -> int:
    """Upload as a charger does: a form with the file."""
    form = aiohttp.FormData()
    form.add_field("file", data, filename=filename, content_type="text/plain")
    async with aiohttp.ClientSession() as session, session.post(url, data=form) as response:
        return response.status


async def job(stack: Stack, command_id: str) -> dict[str, Any]:
    found = await stack.db()[repository.LOG_JOBS].find_one({"_id": command_id})
    assert found is not None
    return found


async def request_log(stack: Stack, base: str, station: str, *args: str
                      ) -> asyncio.subprocess.Process:
    """Start ``gridlink logs request`` (the charger answers meanwhile)."""
    return await stack.start_cli("logs", "request", station, *args, files_public_url=base)


async def test_a_security_log_is_uploaded_and_linked_to_its_job(
        stack: Stack, files_base: str, tmp_path: Path) -> None:
    station = new_id("LOG")
    await add_station(stack, station)
    log = os.urandom(100_000)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await request_log(stack, files_base, station, "--type", "SecurityLog",
                                    "--oldest", "2026-11-01T00:00:00Z", "--latest",
                                    "2026-11-02T00:00:00Z", "--retries", "1")
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2] == "GetLog"
        request_id, location = frame[3]["requestId"], frame[3]["log"]["remoteLocation"]
        assert isinstance(request_id, int) and frame[3]["logType"] == "SecurityLog"
        assert location.startswith(f"{files_base}/diagnostics/{station}/")
        assert frame[3]["log"]["oldestTimestamp"] == "2026-11-01T00:00:00.000Z"
        assert frame[3]["log"]["latestTimestamp"] == "2026-11-02T00:00:00.000Z"
        assert frame[3]["retries"] == 1
        # A quick charger: it reports and uploads before its GetLog.conf is processed.
        assert await charger.result("LogStatusNotification",
                                    {"status": "Uploading", "requestId": request_id}) == {}
        assert await upload(location, log) == 200
        assert await upload(location, b"again") == 403  # the location takes one upload
        await charger.answer([3, frame[1], {"status": "Accepted", "filename": "security.log"}])
        code, out, err = await finish(process, 30)
        assert code == 0, err
        printed = json.loads(out)
        assert (printed["requestId"], printed["location"]) == (request_id, location)
        assert (printed["status"], printed["filename"]) == ("Accepted", "security.log")
        for status in ("Uploaded", "Uploaded"):  # resent: applied once
            await charger.result("LogStatusNotification",
                                 {"status": status, "requestId": request_id})
        await charger.result("LogStatusNotification",  # another request's: not this job's
                             {"status": "UploadFailure", "requestId": request_id + 1000})
        await charger.result("LogStatusNotification", {"status": "Idle"})  # a trigger's
    found = await job(stack, printed["commandId"])
    assert (found["status"], found["log_type"], found["request_id"]) == (
        "Uploaded", "SecurityLog", request_id)
    assert found["uploaded_size"] == len(log) and found["file_name"] == "security.log"

    code, out, _ = await stack.cli("logs", "list", "--station", station, "--json",
                                   files_public_url=files_base, timeout=30)
    [row] = json.loads(out)
    assert row["id"] == str(found["file_id"]) and row["commandId"] == printed["commandId"]
    assert (row["logType"], row["requestId"], row["size"]) == ("SecurityLog", request_id,
                                                               len(log))
    code, _, err = await stack.cli("logs", "get", row["id"], "-o", str(tmp_path / "copy.log"),
                                   files_public_url=files_base, timeout=30)
    assert code == 0, err
    assert (tmp_path / "copy.log").read_bytes() == log
    code, out, _ = await stack.cli("logs", "jobs", "--station", station, "--json",
                                   files_public_url=files_base, timeout=30)
    [row] = json.loads(out)
    assert (row["status"], row["requestId"], row["fileId"]) == (
        "Uploaded", request_id, str(found["file_id"]))
    assert row["history"] == ["Accepted", "Uploading", "Uploaded"]
    diagnostics = stack.db()[f"{repository.DIAGNOSTICS_BUCKET}.files"]
    assert await diagnostics.count_documents({"metadata.station": station}) == 0


async def test_a_failure_is_final_and_a_new_request_supersedes(stack: Stack,
                                                               files_base: str) -> None:
    station = new_id("LOG")
    await add_station(stack, station)
    commands = []
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        for answer in ({"status": "Accepted", "filename": "d.log"},
                       {"status": "AcceptedCanceled", "filename": "d2.log"}):
            process = await request_log(stack, files_base, station, "--type", "DiagnosticsLog")
            frame = await charger.next_csms_call(timeout=20)
            await charger.answer([3, frame[1], answer])
            code, out, err = await finish(process, 30)
            assert code == 0, err
            commands.append(json.loads(out))
            await charger.result("LogStatusNotification", {
                "status": "Uploading", "requestId": frame[3]["requestId"]})
        second = commands[1]["requestId"]
        await charger.result("LogStatusNotification",
                             {"status": "PermissionDenied", "requestId": second})
        await charger.result("LogStatusNotification",
                             {"status": "Uploaded", "requestId": second})  # late: final
    first, latest = [await job(stack, c["commandId"]) for c in commands]
    assert first["status"] == "Superseded"
    assert latest["status"] == "PermissionDenied" and latest["answer"] == "AcceptedCanceled"


@pytest.mark.parametrize(("answer", "code", "message", "status"), [
    ({"status": "Rejected"}, 1, "rejected: Rejected", None),
    ({"status": "Accepted"}, 0, "", "NoLogAvailable"),  # no filename: nothing to upload
])
async def test_no_log_to_upload(stack: Stack, files_base: str, answer: dict[str, Any],
                                code: int, message: str, status: str | None) -> None:
    station = new_id("LOG")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await request_log(stack, files_base, station, "--type", "SecurityLog")
        frame = await charger.next_csms_call(timeout=20)
        await charger.answer([3, frame[1], answer])
        got, _, err = await finish(process, 30)
    assert got == code and message in err
    jobs = await stack.db()[repository.LOG_JOBS].find({"station": station}).to_list()
    assert [j["status"] for j in jobs] == ([status] if status else [])


@pytest.mark.parametrize(("args", "code", "message"), [
    (["logs", "request", "{station}", "--type", "SecurityLog", "--oldest",
      "2026-11-02T00:00:00Z", "--latest", "2026-11-01T00:00:00Z"], 2,
     "--oldest is after --latest"),
    (["logs", "request", "{station}", "--type", "AuditLog"], 2, "invalid choice"),
    (["logs", "request", "{station}", "--type", "SecurityLog", "--retries", "-1"], 2,
     "--retries must not be negative"),
    (["command", "{station}", "GetLog", '{"logType": "SecurityLog", "requestId": 1, "log": '
      '{"remoteLocation": "http://gl.example/diagnostics/OTHER/' + "t" * 32 + '"}}'], 1,
     "invalid command: PropertyConstraintViolation log.remoteLocation: GridLink's upload"),
    (["command", "{station}", "GetLog", '{"logType": "SecurityLog", "requestId": 1, "log": '
      '{"remoteLocation": "mailto:ops@example.com"}}'], 1,
     "invalid command: PropertyConstraintViolation log.remoteLocation: unsupported scheme"),
    (["command", "{station}", "GetLog", '{"logType": "SecurityLog", "log": '
      '{"remoteLocation": "ftp://x/"}}'], 1, "invalid command: OccurenceConstraintViolation"),
    (["logs", "get", "0123456789abcdef01234567"], 1, "no log file"),
])
async def test_bad_log_requests_never_reach_the_charger(stack: Stack, files_base: str,
                                                        args: list[str], code: int,
                                                        message: str) -> None:
    await refused_before_the_charger(stack, "LOGBAD", args, code, message,
                                     files_public_url=files_base)
