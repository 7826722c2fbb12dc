"""Firmware Management end to end: images on GridLink's file server, UpdateFirmware, jobs.

A charger simulated over a real WebSocket downloads the image from the URL it was sent
(through its download token) and reports its progress; everything travels through the
real broker and database.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from commands.files import download_tokens, repository, rules
from tests.charger import Charger
from tests.helpers import add_station, new_id, refused_before_the_charger
from tests.processes import Stack, finish

pytestmark = pytest.mark.integration


async def add_image(stack: Stack, base: str, tmp_path: Path, size: int = 300_000
                    ) -> tuple[str, bytes]:
    name, image = f"fw-{uuid.uuid4().hex[:8]}.bin", os.urandom(size)
    (tmp_path / name).write_bytes(image)
    code, out, err = await stack.cli("firmware", "add", str(tmp_path / name),
                                     files_public_url=base, timeout=30)
    assert code == 0, err
    assert f"firmware {name} added ({size} bytes" in out
    return name, image


def token_of(location: str, base: str, name: str) -> str:
    """The download token of a location GridLink handed out for image ``name``."""
    found = rules.parse_firmware_location(location, base)
    assert found is not None and found.name == name and found.token, location
    assert location == rules.firmware_url(base, found.token, name)
    return found.token


async def download(url: str, **headers: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.read()


async def job(stack: Stack, command_id: str) -> dict[str, Any]:
    found = await stack.db()[repository.FIRMWARE_JOBS].find_one({"_id": command_id})
    assert found is not None
    return found


async def test_images_are_stored_listed_and_served_only_through_tokens(
        stack: Stack, files_base: str, tmp_path: Path) -> None:
    name, image = await add_image(stack, files_base, tmp_path)
    code, _, err = await stack.cli("firmware", "add", str(tmp_path / name),
                                   files_public_url=files_base, timeout=30)
    assert code == 1 and "exists already" in err and len(err.strip().splitlines()) == 1
    code, _, err = await stack.cli("firmware", "add", str(tmp_path / name), "--name", "../evil",
                                   files_public_url=files_base, timeout=30)
    assert code == 2 and "invalid firmware name" in err
    code, out, _ = await stack.cli("firmware", "list", "--json", files_public_url=files_base,
                                   timeout=30)
    row = next(r for r in json.loads(out) if r["name"] == name)
    assert row["size"] == len(image) and row["sha256"] == hashlib.sha256(image).hexdigest()
    assert row["signed"] is None and "url" not in row
    # No tokenless downloads, whatever the name; no downloads with a token never issued.
    assert await download(f"{files_base}/firmware/{name}") == await download(
        f"{files_base}/firmware/missing.bin")
    assert (await download(f"{files_base}/firmware/{name}"))[0] == 410
    assert (await download(rules.firmware_url(files_base, "x" * 32, name)))[0] == 404


async def test_update_firmware_job_follows_the_notifications(stack: Stack, files_base: str,
                                                             tmp_path: Path) -> None:
    station = new_id("FW")
    await add_station(stack, station)
    name, image = await add_image(stack, files_base, tmp_path)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("firmware", "update", station, name, "--retrieve-date",
                                        "2026-11-23T22:00:00Z", "--retries", "2",
                                        "--retry-interval", "30", files_public_url=files_base)
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2] == "UpdateFirmware"
        location = frame[3].pop("location")
        assert frame[3] == {"retrieveDate": "2026-11-23T22:00:00.000Z", "retries": 2,
                            "retryInterval": 30}
        token = token_of(location, files_base, name)
        # The charger reports before its UpdateFirmware.conf is even processed.
        assert await charger.result("FirmwareStatusNotification",
                                    {"status": "Downloading"}) == {}
        assert await download(location) == (200, image)
        assert await download(location, Range="bytes=1000-1999") == (206, image[1000:2000])
        await charger.answer([3, frame[1], {}])
        code, out, err = await finish(process, 30)
        assert code == 0, err
        command_id = json.loads(out)["commandId"]
        assert json.loads(out)["location"] == location
        assert (await job(stack, command_id))["status"] == "Downloading"
        issued = await stack.db()[download_tokens.COLLECTION].find_one({"_id": token})
        assert (issued["command_id"], issued["station"], issued["downloads"]) == (
            command_id, station, 2)
        for status in ("Downloaded", "Installing", "Installed"):
            await charger.result("FirmwareStatusNotification", {"status": status})
        await charger.result("FirmwareStatusNotification", {"status": "Downloading"})  # late
    found = await job(stack, command_id)
    assert found["status"] == "Installed" and found["firmware"] == name
    assert found["retrieve_date"].isoformat().startswith("2026-11-23T22:00:00")
    assert [h["status"] for h in found["history"] if not h["applied"]] == ["Downloading"]
    code, out, _ = await stack.cli("firmware", "jobs", "--station", station, "--json",
                                   files_public_url=files_base, timeout=30)
    [row] = json.loads(out)
    assert row["commandId"] == command_id and row["status"] == "Installed"
    assert (row["action"], row["firmware"]) == ("UpdateFirmware", name)
    assert row["history"] == ["Accepted", "Downloading", "Downloaded", "Installing",
                              "Installed"]
    # The station document keeps the latest notification received, whatever its job did.
    station_status = await stack.db()[repository.FIRMWARE_STATUS].find_one({"_id": station})
    assert station_status["status"] == "Downloading"
    assert len(station_status["history"]) == 5


async def test_a_tokenless_url_of_this_server_is_sent_with_a_token(
        stack: Stack, files_base: str, tmp_path: Path) -> None:
    station = new_id("FW")
    await add_station(stack, station)
    name, image = await add_image(stack, files_base, tmp_path, size=1000)
    payload = json.dumps({"location": f"{files_base}/firmware/{name}",
                          "retrieveDate": "2026-11-23T22:00:00Z"})
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("command", station, "UpdateFirmware", payload,
                                        files_public_url=files_base)
        frame = await charger.next_csms_call(timeout=20)
        token_of(frame[3]["location"], files_base, name)
        assert await download(frame[3]["location"]) == (200, image)
        await charger.answer([3, frame[1], {}])
        code, _, err = await finish(process, 30)
    assert code == 0, err


async def test_a_new_update_supersedes_and_failures_are_final(stack: Stack,
                                                              files_base: str) -> None:
    station = new_id("FW")
    await add_station(stack, station)
    url = "https://firmware.example.com/cp-9.bin"  # any server a charger can reach
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        command_ids = []
        for _ in range(2):
            process = await stack.start_cli("firmware", "update", station, url,
                                            files_public_url=files_base)
            frame = await charger.next_csms_call(timeout=20)
            assert frame[3]["location"] == url
            await charger.answer([3, frame[1], {}])
            code, out, err = await finish(process, 30)
            assert code == 0, err
            command_ids.append(json.loads(out)["commandId"])
            await charger.result("FirmwareStatusNotification", {"status": "Downloading"})
        await charger.result("FirmwareStatusNotification", {"status": "DownloadFailed"})
        await charger.result("FirmwareStatusNotification", {"status": "Downloaded"})
    first, second = [await job(stack, command_id) for command_id in command_ids]
    assert first["status"] == "Superseded"
    assert second["status"] == "DownloadFailed" and second["location"] == url


@pytest.mark.parametrize(("args", "code", "message"), [
    (["command", "{station}", "UpdateFirmware",
      '{"location": "gopher://x/fw.bin", "retrieveDate": "2026-11-23T00:00:00Z"}'],
     1, "invalid command: PropertyConstraintViolation location: unsupported scheme"),
    (["command", "{station}", "UpdateFirmware",
      '{"location": "https://x/fw.bin", "retrieveDate": "2026-11-23T00:00:00Z", '
      '"retries": -1}'], 1, "invalid command: PropertyConstraintViolation retries"),
    (["command", "{station}", "UpdateFirmware", '{"location": "https://x/fw.bin"}'],
     1, "invalid command: OccurenceConstraintViolation"),
    (["command", "{station}", "UpdateFirmware",
      '{"location": "https://x/fw.bin", "retrieveDate": "soon"}'],
     1, "invalid command: TypeConstraintViolation"),
    (["firmware", "update", "{station}", "never-added.bin"], 1, "no firmware 'never-added.bin'"),
    (["command", "{station}", "UpdateFirmware",
      '{"location": "http://127.0.0.1:1/firmware/' + "k" * 32 + '/x.bin", '
      '"retrieveDate": "2026-11-23T00:00:00Z"}'], 1, "invalid command: UnknownFirmware"),
    (["firmware", "update", "{station}", "x.bin", "--install-date", "2026-11-23T00:00:00Z"], 2,
     "--install-date needs --signed"),
    (["firmware", "update", "{station}", "https://x/fw.bin", "--signed"], 2,
     "--signed needs the NAME of an image"),
    (["firmware", "update", "{station}", "x.bin", "--retrieve-date", "tomorrow"], 2,
     "--retrieve-date: not an ISO 8601 date-time"),
    (["firmware", "update", "{station}", "https://x/fw.bin", "--retries", "-2"], 2,
     "--retries must not be negative"),
])
async def test_bad_updates_never_reach_the_charger(stack: Stack, files_base: str,
                                                   args: list[str], code: int,
                                                   message: str) -> None:
    await refused_before_the_charger(stack, "FWBAD", args, code, message,
                                     files_public_url=files_base)


@pytest.mark.parametrize(("answer", "message"), [
    ([4, "{id}", "InternalError", "flash busy", {}], "CALLERROR: InternalError flash busy"),
    ([3, "{id}", {"status": "Accepted"}], "CALLERROR: FormationViolation"),  # not the PDU
])
async def test_charger_errors_fail_the_command_and_start_no_job(
        stack: Stack, files_base: str, answer: list[Any], message: str) -> None:
    station = new_id("FWERR")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("firmware", "update", station,
                                        "ftp://fw.example.com/cp.bin", files_public_url=files_base)
        frame = await charger.next_csms_call(timeout=20)
        await charger.answer([frame[1] if part == "{id}" else part for part in answer])
        code, out, err = await finish(process, 30)
    assert (code, out) == (1, "")
    assert message in err and len(err.strip().splitlines()) == 1
    command = await stack.db().commands.find_one({"station": station})
    assert command["status"] == "callerror" and command["error_code"]
    assert await stack.db()[repository.FIRMWARE_JOBS].count_documents({"station": station}) == 0
