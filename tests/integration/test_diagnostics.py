"""GetDiagnostics end to end: the charger uploads to the location GridLink handed it.

The simulated charger answers over a real WebSocket, uploads with HTTP (multipart POST or
raw PUT, as chargers do) to GridLink's file server and reports DiagnosticsStatusNotification;
the file lands in GridFS and is linked to the diagnostics job.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from commands.files import repository
from tests.charger import Charger
from tests.helpers import MAX_UPLOAD, add_station, new_id, refused_before_the_charger
from tests.processes import Stack, finish

pytestmark = pytest.mark.integration

TOKEN = "t" * 32


async def upload(url: str, data: bytes, *, method: str = "PUT",
                 filename: str | None = None) -> int:
    """Upload as a charger does: a form with the file (POST) or the raw body."""
    body: Any = data
    if filename is not None:
        body = aiohttp.FormData()
        body.add_field("file", data, filename=filename, content_type="application/zip")
    async with aiohttp.ClientSession() as session, \
            session.request(method, url, data=body) as response:
        return response.status


async def job(stack: Stack, command_id: str) -> dict[str, Any]:
    found = await stack.db()[repository.DIAGNOSTICS_JOBS].find_one({"_id": command_id})
    assert found is not None
    return found


async def test_diagnostics_uploaded_with_multipart_post(stack: Stack, files_base: str,
                                                        tmp_path: Path) -> None:
    station = new_id("DG")
    await add_station(stack, station)
    log = os.urandom(200_000)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("diagnostics", "request", station, "--start",
                                        "2026-11-01T00:00:00Z", "--stop", "2026-11-02T00:00:00Z",
                                        "--retries", "1", files_public_url=files_base)
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2] == "GetDiagnostics"
        location = frame[3]["location"]
        assert location.startswith(f"{files_base}/diagnostics/{station}/")
        assert frame[3]["startTime"] == "2026-11-01T00:00:00.000Z"
        assert frame[3]["stopTime"] == "2026-11-02T00:00:00.000Z"
        assert frame[3]["retries"] == 1
        await charger.answer([3, frame[1], {"fileName": "diag.zip"}])
        code, out, err = await finish(process, 30)
        assert code == 0, err
        printed = json.loads(out)
        assert printed["location"] == location and printed["fileName"] == "diag.zip"
        await charger.result("DiagnosticsStatusNotification", {"status": "Uploading"})
        assert await upload(location, log, method="POST", filename="diag.zip") == 200
        # The location is this station's only.
        other = location.replace(f"/diagnostics/{station}/", "/diagnostics/SOMEONE/")
        assert await upload(other, b"x") == 404
        await charger.result("DiagnosticsStatusNotification", {"status": "Uploaded"})
    found = await job(stack, printed["commandId"])
    assert found["status"] == "Uploaded" and found["file_name"] == "diag.zip"
    assert found["uploaded_size"] == len(log)

    code, out, _ = await stack.cli("diagnostics", "list", "--station", station, "--json",
                                   files_public_url=files_base, timeout=30)
    [row] = json.loads(out)
    assert row["id"] == str(found["file_id"]) and row["commandId"] == printed["commandId"]
    assert (row["fileName"], row["size"]) == ("diag.zip", len(log))
    code, out, err = await stack.cli("diagnostics", "get", row["id"], "-o",
                                     str(tmp_path / "copy.zip"), files_public_url=files_base,
                                     timeout=30)
    assert code == 0, err
    assert (tmp_path / "copy.zip").read_bytes() == log
    code, out, _ = await stack.cli("diagnostics", "jobs", "--station", station, "--json",
                                   files_public_url=files_base, timeout=30)
    [row] = json.loads(out)
    assert row["status"] == "Uploaded" and row["fileId"] == str(found["file_id"])
    assert row["history"] == ["Accepted", "Uploading", "Uploaded"]


async def test_raw_put_before_the_answer_is_linked_to_the_job(stack: Stack,
                                                              files_base: str) -> None:
    station = new_id("DG")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("diagnostics", "request", station,
                                        files_public_url=files_base)
        frame = await charger.next_csms_call(timeout=20)
        # A quick charger: uploads (PUT to location/fileName) before its answer is processed.
        await charger.result("DiagnosticsStatusNotification", {"status": "Uploading"})
        assert await upload(f"{frame[3]['location']}/early.log", b"log\n" * 1000) == 200
        await charger.answer([3, frame[1], {"fileName": "early.log"}])
        code, out, err = await finish(process, 30)
        assert code == 0, err
        command_id = json.loads(out)["commandId"]
        await charger.result("DiagnosticsStatusNotification", {"status": "Uploaded"})
    found = await job(stack, command_id)
    assert found["status"] == "Uploaded"
    assert found["uploaded_file_name"] == "early.log" and found["uploaded_size"] == 4000


async def test_upload_failed_is_final_and_too_large_is_refused(stack: Stack,
                                                               files_base: str) -> None:
    station = new_id("DG")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("diagnostics", "request", station,
                                        files_public_url=files_base)
        frame = await charger.next_csms_call(timeout=20)
        await charger.answer([3, frame[1], {"fileName": "huge.tar"}])
        code, out, err = await finish(process, 30)
        assert code == 0, err
        await charger.result("DiagnosticsStatusNotification", {"status": "Uploading"})
        assert await upload(frame[3]["location"], b"z" * (MAX_UPLOAD + 1)) == 413
        await charger.result("DiagnosticsStatusNotification", {"status": "UploadFailed"})
        await charger.result("DiagnosticsStatusNotification", {"status": "Uploading"})  # late
    found = await job(stack, json.loads(out)["commandId"])
    assert found["status"] == "UploadFailed" and "file_id" not in found
    db = stack.db()
    assert await db[f"{repository.DIAGNOSTICS_BUCKET}.files"].count_documents(
        {"metadata.station": station}) == 0


async def test_no_diagnostics_available(stack: Stack, files_base: str) -> None:
    station = new_id("DG")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("diagnostics", "request", station,
                                        files_public_url=files_base)
        frame = await charger.next_csms_call(timeout=20)
        await charger.answer([3, frame[1], {}])  # no fileName: nothing to upload
        code, out, err = await finish(process, 30)
    assert code == 0, err
    assert json.loads(out)["fileName"] is None
    assert (await job(stack, json.loads(out)["commandId"]))["status"] == "NoDiagnostics"


async def test_upload_failed_before_the_answer_is_not_hidden(stack: Stack,
                                                             files_base: str) -> None:
    """A charger that cannot upload reports UploadFailed, then answers without a fileName
    (SAP's simulator with a location it cannot use): the job ends UploadFailed, the failure
    the charger reported, not NoDiagnostics (GridLink issue 15)."""
    station = new_id("DG")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("diagnostics", "request", station,
                                        files_public_url=files_base)
        frame = await charger.next_csms_call(timeout=20)
        await charger.result("DiagnosticsStatusNotification", {"status": "UploadFailed"})
        await charger.answer([3, frame[1], {}])
        code, out, err = await finish(process, 30)
    assert code == 0, err
    found = await job(stack, json.loads(out)["commandId"])
    assert found["status"] == "UploadFailed" and found["answer_status"] == "NoDiagnostics"
    code, out, _ = await stack.cli("diagnostics", "jobs", "--station", station, "--json",
                                   files_public_url=files_base, timeout=30)
    [row] = json.loads(out)
    assert row["history"] == ["NoDiagnostics", "UploadFailed"]


@pytest.mark.parametrize(("args", "code", "message"), [
    (["command", "{station}", "GetDiagnostics",
      '{"location": "http://gl.example/diagnostics/OTHER/' + TOKEN + '"}'],
     1, "invalid command: PropertyConstraintViolation location: GridLink's upload location"),
    (["command", "{station}", "GetDiagnostics", '{"location": "mailto:ops@example.com"}'],
     1, "invalid command: PropertyConstraintViolation location: unsupported scheme"),
    (["command", "{station}", "GetDiagnostics",
      '{"location": "ftp://x/", "startTime": "2026-11-02T00:00:00Z", '
      '"stopTime": "2026-11-01T00:00:00Z"}'],
     1, "invalid command: PropertyConstraintViolation startTime is after stopTime"),
    (["command", "{station}", "GetDiagnostics", "{}"],
     1, "invalid command: OccurenceConstraintViolation"),
    (["diagnostics", "request", "{station}", "--start", "2026-11-02T00:00:00Z",
      "--stop", "2026-11-01T00:00:00Z"], 2, "--start is after --stop"),
    (["diagnostics", "get", "not-an-id"], 2, "not a file id"),
    (["diagnostics", "get", "0123456789abcdef01234567"], 1, "no diagnostics file"),
])
async def test_bad_requests_never_reach_the_charger(stack: Stack, files_base: str,
                                                    args: list[str], code: int,
                                                    message: str) -> None:
    await refused_before_the_charger(stack, "DGBAD", args, code, message,
                                     files_public_url=files_base)


@pytest.mark.parametrize(("answer", "message"), [
    ([4, "{id}", "NotSupported", "no logs here", {}], "CALLERROR: NotSupported no logs here"),
    ([3, "{id}", {"fileName": 42}], "CALLERROR: TypeConstraintViolation"),
])
async def test_charger_errors_fail_the_request_and_start_no_job(
        stack: Stack, files_base: str, answer: list[Any], message: str) -> None:
    station = new_id("DGERR")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("diagnostics", "request", station,
                                        files_public_url=files_base)
        frame = await charger.next_csms_call(timeout=20)
        await charger.answer([frame[1] if part == "{id}" else part for part in answer])
        code, out, err = await finish(process, 30)
    assert (code, out) == (1, "")
    assert message in err and len(err.strip().splitlines()) == 1
    command = await stack.db().commands.find_one({"station": station})
    assert command["status"] == "callerror"
    assert await stack.db()[repository.DIAGNOSTICS_JOBS].count_documents({"station": station}) == 0
