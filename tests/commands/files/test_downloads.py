"""Firmware downloads at the file server through download tokens, in-process against the real
database (SecantusDB): ranges, HEAD, tokens that expire, no image name enumeration, the
tokenless URLs of earlier releases gone, a reader that stops reading cut off."""

from __future__ import annotations

import asyncio
import io
import os
import socket
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from multidict import CIMultiDict

from commands.files import download_tokens, repository, rules
from commands.files.downloads import parse_range
from commands.files.http_server import FileServer
from commands.files.transfers import FIRMWARE_DOWNLOAD, TRANSFERS, Limits
from services.ocpp16 import utcnow
from tests.processes import wait_for


@pytest.fixture
async def base(db: repository.Db) -> AsyncIterator[str]:
    server = FileServer(db, Limits(1 << 20))
    port = await server.start("127.0.0.1", 0)
    yield f"http://127.0.0.1:{port}"
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def image(db: repository.Db, name: str, size: int = 300_000,
                expires_in: timedelta = timedelta(hours=1)) -> tuple[bytes, str]:
    """Store an image and issue a download token for it; (bytes, token)."""
    data = os.urandom(size)
    await repository.add_firmware(db, name, io.BytesIO(data))
    token = await download_tokens.issue(db, name, station="CP1", command_id="c1",
                                        expires_at=utcnow() + expires_in)
    return data, token


async def fetch(http: aiohttp.ClientSession, url: str, **headers: str
                ) -> tuple[int, bytes, CIMultiDict[str]]:
    async with http.get(url, headers=headers) as response:
        return response.status, await response.read(), response.headers.copy()


async def test_download_head_and_ranges_through_a_token(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    data, token = await image(db, "cp-1.2.bin")  # more than one GridFS chunk
    url = rules.firmware_url(base, token, "cp-1.2.bin")
    status, body, headers = await fetch(http, url)
    assert (status, body, headers["Accept-Ranges"]) == (200, data, "bytes")
    etag = headers["ETag"]
    async with http.head(url) as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == len(data)
        assert await response.read() == b""
    status, body, headers = await fetch(http, url, Range="bytes=261000-261999")
    assert (status, body) == (206, data[261000:262000])
    assert headers["Content-Range"] == f"bytes 261000-261999/{len(data)}"
    assert (await fetch(http, url, Range="bytes=-10"))[:2] == (206, data[-10:])
    assert (await fetch(http, url, Range="bytes=1-2", **{"If-Range": '"old"'}))[:2] == (
        200, data)
    assert (await fetch(http, url, Range="bytes=1-2", **{"If-Range": etag}))[:2] == (
        206, data[1:3])
    status, _, headers = await fetch(http, url, Range=f"bytes={len(data)}-")
    assert (status, headers["Content-Range"]) == (416, f"bytes */{len(data)}")
    token_document = await download_tokens.get(db, token)
    assert token_document is not None
    assert token_document["downloads"] == 5  # the GETs served (not HEAD, not the 416)


async def test_a_token_opens_its_own_image_only_and_says_nothing_of_others(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    _, token = await image(db, "a.bin", 100)
    await repository.add_firmware(db, "b.bin", io.BytesIO(b"other image"))
    unknown = await fetch(http, rules.firmware_url(base, "u" * 32, "a.bin"))
    other_image = await fetch(http, rules.firmware_url(base, token, "b.bin"))
    no_image = await fetch(http, rules.firmware_url(base, token, "missing.bin"))
    malformed = await fetch(http, rules.firmware_url(base, "short", "a.bin"))
    assert {(s, b) for s, b, _ in (unknown, other_image, no_image, malformed)} == {
        (404, b"no such download\n")}


async def test_an_expired_download_url_is_refused(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    _, token = await image(db, "old.bin", 100, expires_in=timedelta(seconds=-1))
    status, body, _ = await fetch(http, rules.firmware_url(base, token, "old.bin"))
    assert status == 403 and b"expired" in body


async def test_tokenless_urls_are_gone_for_every_name(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    await image(db, "held.bin", 100)
    held = await fetch(http, f"{base}/firmware/held.bin")
    missing = await fetch(http, f"{base}/firmware/never-added.bin")
    assert held[:2] == missing[:2] and held[0] == 410
    async with http.head(f"{base}/firmware/held.bin") as response:
        assert response.status == 410


async def test_a_reader_that_stops_reading_is_cut_off(db: repository.Db) -> None:
    data, token = await image(db, "big.bin", 8 << 20)
    server = FileServer(db, Limits(1 << 20, idle_timeout_s=0.5))
    port = await server.start("127.0.0.1", 0)
    timeouts = TRANSFERS.labels(FIRMWARE_DOWNLOAD, "timeout")
    before = timeouts._value.get()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(f"GET /firmware/{token}/big.bin HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        await wait_for(lambda: timeouts._value.get() > before, what="the download cut off")
        received = await asyncio.wait_for(reader.read(), 10)  # what was in flight, then EOF
    except ConnectionResetError:
        received = b""
    finally:
        writer.close()
        await server.stop()
    assert len(received) < len(data)


@pytest.mark.parametrize(("header", "expected"), [
    (None, None),
    ("bytes=0-9", (0, 9)),
    ("bytes=5-", (5, 99)),
    ("bytes=-20", (80, 99)),
    ("bytes=-500", (0, 99)),
    ("bytes=90-500", (90, 99)),
    ("bytes=0-1,5-6", None),   # several ranges: ignored, the whole file
    ("items=0-1", None),
    ("bytes=abc", None),
    ("bytes=9-3", None),
])
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=-0", "bytes=200-300"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(ValueError):
        parse_range(header, 100)


async def test_firmware_names_are_unique(db: repository.Db) -> None:
    await repository.add_firmware(db, "fw.bin", io.BytesIO(b"1"))
    with pytest.raises(ValueError, match="exists already"):
        await repository.add_firmware(db, "fw.bin", io.BytesIO(b"2"))
    with pytest.raises(ValueError, match="invalid firmware name"):
        await repository.add_firmware(db, "../fw.bin", io.BytesIO(b"2"))
