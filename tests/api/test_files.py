"""Firmware, diagnostics and logs through the API with GridLink's own file server: images
stored with PUT, UpdateFirmware / SignedUpdateFirmware / GetDiagnostics / GetLog sent to a
simulated charger that then downloads or uploads through the URL it was given, and the
uploaded files read back through the API."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import uuid
from typing import Any

import aiohttp
import pytest

from commands.files import download_tokens, rules
from services import firmware_signatures as signatures
from tests.charger import Charger
from tests.helpers import ApiServer, add_station, certificate, new_id, pem, rsa_key
from tests.processes import Stack, free_port

pytestmark = pytest.mark.integration

OCTETS = {"Content-Type": "application/octet-stream"}


def base_of(stack: Stack) -> str:
    """The file server every process of the stack names (GRIDLINK_FILES_PUBLIC_URL)."""
    return f"http://127.0.0.1:{stack.files_port}"


async def download(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read()


async def upload(url: str, data: bytes, filename: str) -> int:
    """Upload as a charger does: a form with the file."""
    form = aiohttp.FormData()
    form.add_field("file", data, filename=filename, content_type="text/plain")
    async with aiohttp.ClientSession() as session, session.post(url, data=form) as response:
        return response.status


async def put_image(api: ApiServer, image: bytes, **headers: str) -> tuple[str, Any]:
    name = f"fw-{uuid.uuid4().hex[:8]}.bin"
    async with api.client("admin") as http:
        answer = await http.put(f"/api/v1/firmware/files/{name}", content=image,
                                headers={**OCTETS, **headers})
    assert answer.status_code == 201, answer.text
    return name, answer.json()


async def test_an_image_is_stored_once_by_an_admin(stack: Stack, api: ApiServer) -> None:
    image = os.urandom(200_000)
    name, stored = await put_image(api, image)
    assert stored["filename"] == name and stored["length"] == len(image)
    assert stored["metadata"]["sha256"] == hashlib.sha256(image).hexdigest()
    assert "signature" not in stored["metadata"]
    url = f"/api/v1/firmware/files/{name}"
    async with api.client("admin") as http:
        again = await http.put(url, content=image, headers=OCTETS)
        other = await http.put(url, content=image + b"!", headers=OCTETS)
        bad_name = await http.put("/api/v1/firmware/files/bad%20name%21", content=b"x",
                                  headers=OCTETS)
        not_raw = await http.put(f"/api/v1/firmware/files/x{name}", json={"image": "x"})
        half_signed = await http.put(f"/api/v1/firmware/files/x{name}", content=b"x",
                                     headers={**OCTETS, "X-Signature": "AAAA"})
        listed = await http.get("/api/v1/firmware/files", params={"limit": 500})
    async with api.client("commands") as http:
        not_admin = await http.put(f"/api/v1/firmware/files/x{name}", content=b"x",
                                   headers=OCTETS)
    assert again.status_code == 200 and again.json()["id"] == stored["id"]
    assert other.status_code == 409, other.text
    assert other.headers["content-type"].startswith("application/problem+json")
    assert bad_name.status_code == 422 and "invalid firmware name" in bad_name.json()["detail"]
    assert not_raw.status_code == 415
    assert half_signed.status_code == 422
    assert not_admin.status_code == 403
    assert [row["length"] for row in listed.json()["items"] if row["filename"] == name] == [
        len(image)]
    found = [doc async for doc in stack.db()["firmware.files"].find(
        {"filename": {"$in": [name, f"x{name}"]}})]
    assert len(found) == 1  # nothing kept from the refused requests


async def test_firmware_update_hands_out_a_download_url_the_charger_uses(
        stack: Stack, api: ApiServer) -> None:
    station = new_id("APIFW")
    await add_station(stack, station)
    image = os.urandom(300_000)
    name, _ = await put_image(api, image)
    body = {"image": name, "retrieveDate": "2026-11-23T22:00:00Z", "retries": 2,
            "retryInterval": 30}
    headers = {"Idempotency-Key": f"fw-{station}"}
    async with Charger.connect(stack.gateway_url, station) as charger, \
            api.client("commands") as http:
        await charger.boot()
        sending = asyncio.create_task(http.post(
            f"/api/v1/stations/{station}/firmware-update?wait=20", json=body, headers=headers))
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2] == "UpdateFirmware"
        location = frame[3].pop("location")
        assert frame[3] == {"retrieveDate": "2026-11-23T22:00:00.000Z", "retries": 2,
                            "retryInterval": 30}
        found = rules.parse_firmware_location(location, base_of(stack))
        assert found is not None and found.name == name and found.token
        assert await download(location) == (200, image)
        await charger.answer([3, frame[1], {}])
        answer = await sending
        assert answer.status_code == 200, answer.text
        command = answer.json()
        again = await http.post(f"/api/v1/stations/{station}/firmware-update?wait=20",
                                json=body, headers=headers)
    assert command["status"] == "accepted" and command["action"] == "UpdateFirmware"
    assert answer.headers["location"] == f"/api/v1/commands/{command['id']}"
    assert again.status_code == 200 and again.json()["id"] == command["id"]  # sent once
    token = await stack.db()[download_tokens.COLLECTION].find_one({"_id": found.token})
    assert (token["command_id"], token["station"], token["downloads"]) == (
        command["id"], station, 1)


async def test_signed_firmware_is_verified_when_stored_and_sent_signed(
        stack: Stack, api: ApiServer) -> None:
    station = new_id("APISFW")
    await add_station(stack, station)
    key = rsa_key()
    cert = certificate(key, "Firmware Signing (api tests)")
    image = os.urandom(100_000)
    signature = signatures.sign_digest(pem(key), cert, hashlib.sha256(image).digest())
    signing = {"X-Signing-Certificate": base64.b64encode(pem(cert)).decode(),
               "X-Signature": base64.b64encode(signature).decode()}
    async with api.client("admin") as http:
        forged = await http.put(f"/api/v1/firmware/files/forged-{uuid.uuid4().hex[:6]}.bin",
                                content=image + b"x", headers={**OCTETS, **signing})
    assert forged.status_code == 422 and "does not verify" in forged.json()["detail"]
    name, stored = await put_image(api, image, **signing)
    assert stored["metadata"]["signatureAlgorithm"]
    unsigned, _ = await put_image(api, b"plain image")
    async with Charger.connect(stack.gateway_url, station) as charger, \
            api.client("commands") as http:
        await charger.boot()
        refused = await http.post(f"/api/v1/stations/{station}/firmware-update",
                                  json={"image": unsigned, "signed": True})
        sending = asyncio.create_task(http.post(
            f"/api/v1/stations/{station}/firmware-update?wait=20",
            json={"image": name, "signed": True, "installDate": "2030-01-01T00:00:00Z"}))
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2] == "SignedUpdateFirmware"
        firmware = frame[3]["firmware"]
        assert isinstance(frame[3]["requestId"], int)
        assert firmware["signingCertificate"] == pem(cert).decode()
        assert base64.b64decode(firmware["signature"]) == signature
        assert firmware["installDateTime"] == "2030-01-01T00:00:00.000Z"
        assert await download(firmware["location"]) == (200, image)
        await charger.answer([3, frame[1], {"status": "Accepted"}])
        answer = await sending
    assert refused.status_code == 422 and "no signature" in refused.json()["detail"]
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "accepted"
    assert answer.json()["action"] == "SignedUpdateFirmware"


async def test_diagnostics_are_requested_uploaded_and_read_back(
        stack: Stack, api: ApiServer) -> None:
    station = new_id("APIDG")
    await add_station(stack, station)
    content = os.urandom(50_000)
    async with Charger.connect(stack.gateway_url, station) as charger, \
            api.client("commands") as http:
        await charger.boot()
        sending = asyncio.create_task(http.post(
            f"/api/v1/stations/{station}/diagnostics-request?wait=20",
            json={"startTime": "2026-11-01T00:00:00Z", "stopTime": "2026-11-02T00:00:00Z",
                  "retries": 1}))
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2] == "GetDiagnostics"
        location = frame[3].pop("location")
        assert location.startswith(f"{base_of(stack)}/diagnostics/{station}/")
        assert frame[3] == {"startTime": "2026-11-01T00:00:00.000Z",
                            "stopTime": "2026-11-02T00:00:00.000Z", "retries": 1}
        await charger.answer([3, frame[1], {"fileName": "diag.log"}])
        answer = await sending
        assert await upload(location, content, "diag.log") == 200
    assert answer.status_code == 200 and answer.json()["status"] == "accepted", answer.text
    async with api.client("read") as http:
        listed = (await http.get("/api/v1/diagnostics/files",
                                 params={"station": station})).json()["items"]
        [file] = listed
        read = await http.get(f"/api/v1/diagnostics/files/{file['id']}/content")
        missing = await http.get(f"/api/v1/diagnostics/files/{'0' * 24}/content")
        not_an_id = await http.get("/api/v1/diagnostics/files/nope/content")
        wrong_kind = await http.get(f"/api/v1/logs/files/{file['id']}/content")
    assert read.status_code == 200 and read.content == content
    assert read.headers["content-type"] == "application/octet-stream"
    assert "diag.log" in read.headers["content-disposition"]
    assert missing.status_code == not_an_id.status_code == wrong_kind.status_code == 404


async def test_a_log_is_requested_with_a_fresh_request_id_and_read_back(
        stack: Stack, api: ApiServer) -> None:
    station = new_id("APILOG")
    await add_station(stack, station)
    content = b"security event\n" * 500
    async with Charger.connect(stack.gateway_url, station) as charger, \
            api.client("commands") as http:
        await charger.boot()
        sending = asyncio.create_task(http.post(
            f"/api/v1/stations/{station}/log-request?wait=20",
            json={"logType": "SecurityLog", "oldestTimestamp": "2026-11-01T00:00:00Z"}))
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2] == "GetLog" and frame[3]["logType"] == "SecurityLog"
        assert isinstance(frame[3]["requestId"], int)
        assert frame[3]["log"]["oldestTimestamp"] == "2026-11-01T00:00:00.000Z"
        location = frame[3]["log"]["remoteLocation"]
        assert location.startswith(f"{base_of(stack)}/diagnostics/{station}/")
        await charger.answer([3, frame[1], {"status": "Accepted", "filename": "sec.log"}])
        answer = await sending
        assert await upload(location, content, "sec.log") == 200
        second = asyncio.create_task(http.post(
            f"/api/v1/stations/{station}/log-request", json={"logType": "DiagnosticsLog"}))
        other = await charger.next_csms_call(timeout=20)
        await charger.answer([3, other[1], {"status": "Rejected"}])
        assert (await second).status_code == 202
    assert answer.status_code == 200 and answer.json()["status"] == "accepted", answer.text
    assert other[3]["requestId"] != frame[3]["requestId"]
    async with api.client("read") as http:
        [file] = (await http.get("/api/v1/logs/files",
                                 params={"station": station})).json()["items"]
        read = await http.get(f"/api/v1/logs/files/{file['id']}/content")
    assert read.status_code == 200 and read.content == content


@pytest.mark.parametrize(("path", "body", "status", "words"), [
    ("firmware-update", {"image": "a.bin", "location": "http://x.example/a"}, 422, "image"),
    ("firmware-update", {}, 422, "image"),
    ("firmware-update", {"image": "never-stored.bin"}, 422, "no firmware"),
    ("firmware-update", {"location": "http://x.example/a.bin", "signed": True}, 422, "signed"),
    ("firmware-update", {"location": "http://x.example/a.bin", "protocol": "ftp"}, 422,
     "protocol"),
    ("firmware-update", {"location": "http://x.example/a.bin",
                         "installDate": "2030-01-01T00:00:00Z"}, 422, "installDate"),
    ("firmware-update", {"location": "http://x.example/a.bin", "retries": -1}, 422,
     "retries"),
    ("diagnostics-request", {"startTime": "2026-11-02T00:00:00Z",
                             "stopTime": "2026-11-01T00:00:00Z"}, 422, "startTime"),
    ("diagnostics-request", {"unknown": 1}, 422, "unknown"),
    ("log-request", {}, 422, "logType"),
    ("log-request", {"logType": "Everything"}, 422, "logType"),
])
async def test_bad_requests_are_refused_before_anything_is_sent(
        stack: Stack, api: ApiServer, path: str, body: dict[str, Any], status: int,
        words: str) -> None:
    station = new_id("APIBAD")
    await add_station(stack, station)
    async with api.client("commands") as http:
        answer = await http.post(f"/api/v1/stations/{station}/{path}", json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert words in answer.json()["detail"]
    assert await stack.db().commands.count_documents({"station": station}) == 0


async def test_jobs_need_the_commands_scope_and_a_known_station(api: ApiServer) -> None:
    async with api.client("read") as http:
        reader = await http.post("/api/v1/stations/ANY/diagnostics-request", json={})
    async with api.client("commands") as http:
        unknown = await http.post(f"/api/v1/stations/{new_id('NONE')}/log-request",
                                  json={"logType": "SecurityLog"})
    assert reader.status_code == 403
    assert unknown.status_code == 404


async def test_an_image_over_the_size_bound_is_refused_and_not_kept(
        stack: Stack, api: ApiServer) -> None:
    port = free_port()
    process = stack.spawn("api", api_port=port, api_host="127.0.0.1",
                          api_max_firmware_bytes=1000)
    try:
        await stack.wait_ready(process)
        small = ApiServer(f"http://127.0.0.1:{port}", process, keys=api.keys)

        async def chunked() -> Any:  # no Content-Length: refused while it arrives
            for _ in range(10):
                yield b"x" * 500

        async with small.client("admin") as http:
            declared = await http.put("/api/v1/firmware/files/big-declared.bin",
                                      content=b"x" * 1001, headers=OCTETS)
            streamed = await http.put("/api/v1/firmware/files/big-streamed.bin",
                                      content=chunked(), headers=OCTETS)
            fits = await http.put(f"/api/v1/firmware/files/fits-{uuid.uuid4().hex[:6]}.bin",
                                  content=b"x" * 1000, headers=OCTETS)
    finally:
        await stack.stop_process(process)
    assert declared.status_code == streamed.status_code == 413, streamed.text
    assert "GRIDLINK_API_MAX_FIRMWARE_BYTES" in streamed.json()["detail"]
    assert fits.status_code == 201
    assert await stack.db()["firmware.files"].count_documents(
        {"filename": {"$in": ["big-declared.bin", "big-streamed.bin"]}}) == 0
    assert await stack.db()["firmware.chunks"].count_documents(
        {"files_id": {"$nin": [doc["_id"] async for doc in stack.db()["firmware.files"].find(
            {}, {"_id": 1})]}}) == 0
