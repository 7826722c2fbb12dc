"""Diagnostics and firmware over FTP end to end: a commands replica with its FTP listener,
the CLI handing the charger ftp:// locations (by ``--protocol`` or the station's default),
and the simulated charger transferring with Python's ftplib as an FTP-only charger does.
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from commands.files import repository, rules
from tests.charger import Charger
from tests.helpers import add_station, new_id
from tests.processes import Stack, finish, free_port, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def ftp_env(stack: Stack) -> AsyncIterator[dict[str, Any]]:
    """A commands replica serving FTP; the settings the CLI needs to hand out its URLs."""
    port, passive = free_port(), free_port()
    env: dict[str, Any] = {"ftp_port": port, "ftp_passive_ports": f"{passive}-{passive}",
                           "ftp_public_host": "127.0.0.1", "ftp_protocols": '["ftp"]'}
    replica = stack.spawn("commands", **env)
    await stack.wait_ready(replica)

    def greets() -> bool:
        try:
            with ftplib.FTP() as ftp:
                return ftp.connect("127.0.0.1", port, timeout=5).startswith("220")
        except OSError:
            return False

    await wait_for(greets, what="the FTP listener")
    yield env
    await stack.stop_process(replica)


def login(location: str) -> tuple[ftplib.FTP, str]:
    """Connect and log in as a charger does with the URL's user and password; the path."""
    parts = urlsplit(location)
    assert parts.scheme == "ftp" and parts.hostname and parts.port
    ftp = ftplib.FTP()
    ftp.connect(parts.hostname, parts.port, timeout=30)
    ftp.login(unquote(parts.username or ""), unquote(parts.password or ""))
    return ftp, unquote(parts.path)


def upload(location: str, name: str, data: bytes) -> str:
    ftp, path = login(location)
    with ftp:
        return ftp.storbinary(f"STOR {path}{name}", io.BytesIO(data))  # as SAP's simulator


def download(location: str) -> bytes:
    ftp, path = login(location)
    out = io.BytesIO()
    with ftp:
        ftp.retrbinary(f"RETR {path}", out.write)
    return out.getvalue()


async def test_diagnostics_over_ftp_by_the_stations_default(
        stack: Stack, ftp_env: dict[str, Any]) -> None:
    station = new_id("FTPDG")
    await add_station(stack, station)
    code, out, err = await stack.cli("diagnostics", "protocol", station, "ftp", **ftp_env)
    assert code == 0, err
    assert json.loads(out)["uses"] == "ftp"
    data = os.urandom(150_000)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("diagnostics", "request", station, **ftp_env)
        frame = await charger.next_csms_call(timeout=20)
        location = frame[3]["location"]
        assert location.startswith(f"ftp://{rules.FTP_UPLOAD_USER}:")
        assert location.endswith(f"/diagnostics/{station}/")
        await charger.answer([3, frame[1], {"fileName": "diag.tar.gz"}])
        code, out, err = await finish(process, 30)
        assert code == 0, err
        assert json.loads(out)["location"] == location
        await charger.result("DiagnosticsStatusNotification", {"status": "Uploading"})
        assert (await asyncio.to_thread(upload, location, "diag.tar.gz", data)).startswith("226")
        await charger.result("DiagnosticsStatusNotification", {"status": "Uploaded"})
        with pytest.raises(ftplib.error_perm, match="530"):  # the token took its one upload
            await asyncio.to_thread(upload, location, "again.tar.gz", b"x")
    job = await stack.db()[repository.DIAGNOSTICS_JOBS].find_one(
        {"_id": json.loads(out)["commandId"]})
    assert job["status"] == "Uploaded" and job["uploaded_size"] == len(data)
    assert job["uploaded_file_name"] == "diag.tar.gz"
    # Back to the charger's own list (it reported none: HTTP).
    code, out, err = await stack.cli("diagnostics", "protocol", station, "auto", **ftp_env)
    assert code == 0 and json.loads(out) == {
        "station": station, "default": None, "supportedFileTransferProtocols": None,
        "uses": "http"}


async def test_firmware_over_ftp_with_the_protocol_option(
        stack: Stack, ftp_env: dict[str, Any], tmp_path: Path) -> None:
    name, image = f"fw-{uuid.uuid4().hex[:8]}.bin", os.urandom(200_000)
    (tmp_path / name).write_bytes(image)
    code, _, err = await stack.cli("firmware", "add", str(tmp_path / name), timeout=30)
    assert code == 0, err
    station = new_id("FTPFW")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("firmware", "update", station, name, "--protocol",
                                        "ftp", "--retries", "2", **ftp_env)
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2] == "UpdateFirmware"
        location = frame[3]["location"]
        assert location.startswith(f"ftp://{rules.FTP_DOWNLOAD_USER}:")
        assert location.endswith(f"/firmware/{name}")
        await charger.answer([3, frame[1], {}])
        code, out, err = await finish(process, 30)
        assert code == 0, err
        # Downloaded twice: a retry within the URL's validity works as over HTTP.
        assert await asyncio.to_thread(download, location) == image
        assert await asyncio.to_thread(download, location) == image
        await charger.result("FirmwareStatusNotification", {"status": "Downloaded"})
    job = await stack.db()[repository.FIRMWARE_JOBS].find_one(
        {"_id": json.loads(out)["commandId"]})
    assert job["status"] == "Downloaded" and job["firmware"] == name
    # An FTP protocol the file server does not serve is refused before anything is sent.
    code, _, err = await stack.cli("firmware", "update", station, name, "--protocol", "ftps",
                                   **ftp_env)
    assert code == 2 and "does not serve ftps" in err
