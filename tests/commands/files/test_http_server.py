"""The file server in-process against the real database (SecantusDB), plus the pure pieces.

Covers what the charger-driven integration tests cannot reach cheaply: size limits (by
Content-Length, while streaming, and before ``100 Continue``), token refusals, byte ranges,
a database outage (503), and job bookkeeping with notifications out of order.
"""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from commands.files import repository, rules
from commands.files.http_server import FileServer, parse_range
from commands.files.jobs import ACCEPTED
from services.ocpp16 import utcnow

LIMIT = 64 * 1024
TOKEN_A = "a" * 32


@pytest.fixture
async def base(db: repository.Db) -> AsyncIterator[str]:
    server = FileServer(db, max_upload_bytes=LIMIT)
    port = await server.start("127.0.0.1", 0)
    yield f"http://127.0.0.1:{port}"
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def slot(db: repository.Db, station: str = "CP/1", *, token: str = TOKEN_A,
               expires_in: timedelta = timedelta(hours=1)) -> str:
    """Register an upload token and an open diagnostics job; the command id."""
    command_id = uuid.uuid4().hex
    assert await repository.register_upload_token(db, token, station, command_id,
                                             utcnow() + expires_in)
    now = utcnow()
    await db[repository.DIAGNOSTICS_JOBS].insert_one({
        "_id": command_id, "station": station, "status": ACCEPTED, "since": now,
        "status_at": now, "updated_at": now, "history": []})
    return command_id


def upload_url(base: str, station: str = "CP/1", token: str = TOKEN_A, name: str = "") -> str:
    location = rules.diagnostics_location(base, station, token)
    return f"{location}/{name}" if name else location


async def stored(db: repository.Db, command_id: str) -> tuple[dict[str, Any], bytes]:
    document = await repository.latest_upload(db, command_id)
    assert document is not None
    data = b"".join([chunk async for chunk in repository.read_diagnostics(db, document["_id"])])
    return document, data


# --- uploads ----------------------------------------------------------------------------------


async def test_raw_put_is_stored_with_metadata_and_linked_to_its_job(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    command_id = await slot(db)
    body = os.urandom(40_000)
    async with http.put(upload_url(base, name="diag 1.log"), data=body) as response:
        assert response.status == 200
        answer = await response.json()
    assert answer["size"] == len(body) and answer["fileName"] == "diag 1.log"
    document, data = await stored(db, command_id)
    assert data == body
    metadata = document["metadata"]
    assert metadata["station"] == "CP/1" and metadata["command_id"] == command_id
    assert metadata["filename"] == "diag 1.log" and metadata["size"] == len(body)
    assert isinstance(metadata["uploaded_at"], datetime)
    job = await db[repository.DIAGNOSTICS_JOBS].find_one({"_id": command_id})
    assert job["file_id"] == document["_id"] and job["uploaded_size"] == len(body)
    token = await repository.upload_token(db, TOKEN_A)
    assert token is not None and token["uploads"] == 1


async def test_multipart_post_stores_the_file_part(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    command_id = await slot(db)
    form = aiohttp.FormData()
    form.add_field("note", "not the file")
    form.add_field("uploadedfile", b"log line\n" * 100, filename="../../etc/diag.txt",
                   content_type="text/plain")
    async with http.post(upload_url(base), data=form) as response:
        assert response.status == 200
    document, data = await stored(db, command_id)
    assert data == b"log line\n" * 100
    assert document["filename"] == "diag.txt"  # no directories from the charger
    assert document["metadata"]["content_type"] == "text/plain"


async def test_raw_body_without_a_name_gets_one(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    command_id = await slot(db, "CP2")
    async with http.post(upload_url(base, "CP2"), data=b"x") as response:
        assert response.status == 200
    document, _ = await stored(db, command_id)
    assert document["filename"].startswith("diagnostics-CP2-")


@pytest.mark.parametrize(("station", "token", "status"), [
    ("CP/1", "b" * 32, 404),    # never handed out
    ("CP9", TOKEN_A, 404),      # another station's location
    ("CP/1", "short", 404),     # not even a token
])
async def test_uploads_need_the_stations_token(
        db: repository.Db, base: str, http: aiohttp.ClientSession, station: str, token: str,
        status: int) -> None:
    await slot(db)
    async with http.put(upload_url(base, station, token), data=b"data") as response:
        assert response.status == status
    assert await db[f"{repository.DIAGNOSTICS_BUCKET}.files"].count_documents({}) == 0


async def test_expired_and_exhausted_tokens_are_refused(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    await slot(db, token="e" * 32, expires_in=timedelta(seconds=-1))
    async with http.put(upload_url(base, token="e" * 32), data=b"data") as response:
        assert response.status == 403
    await slot(db)
    for _ in range(rules.MAX_UPLOADS_PER_TOKEN):
        async with http.put(upload_url(base), data=b"data") as response:
            assert response.status == 200
    async with http.put(upload_url(base), data=b"data") as response:
        assert response.status == 403


async def test_too_large_by_content_length(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    await slot(db)
    async with http.put(upload_url(base), data=b"x" * (LIMIT + 1)) as response:
        assert response.status == 413
    assert await db[f"{repository.DIAGNOSTICS_BUCKET}.files"].count_documents({}) == 0


async def test_too_large_while_streaming_leaves_nothing_behind(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    await slot(db)

    async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length to check
        for _ in range(40):
            yield b"y" * 4096

    async with http.put(upload_url(base), data=chunks()) as response:
        assert response.status == 413
    assert await db[f"{repository.DIAGNOSTICS_BUCKET}.files"].count_documents({}) == 0
    assert await db[f"{repository.DIAGNOSTICS_BUCKET}.chunks"].count_documents({}) == 0


async def raw_request(base: str, head: str) -> bytes:
    """Send request headers only; the first line the server answers."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode())
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


async def test_expect_100_continue_is_refused_before_the_body(
        db: repository.Db, base: str) -> None:
    await slot(db)
    path = upload_url(base).removeprefix(base)
    too_big = (f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {LIMIT + 1}\r\n"
               "Expect: 100-continue\r\n\r\n")
    assert (await raw_request(base, too_big)).startswith(b"HTTP/1.1 413")
    unknown = too_big.replace(TOKEN_A, "c" * 32).replace(str(LIMIT + 1), "10")
    assert (await raw_request(base, unknown)).startswith(b"HTTP/1.1 404")
    fine = too_big.replace(str(LIMIT + 1), "10")
    assert (await raw_request(base, fine)).startswith(b"HTTP/1.1 100")


async def test_malformed_multipart_is_a_bad_request(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    await slot(db)
    headers = {"Content-Type": "multipart/form-data; boundary=zzz"}
    async with http.post(upload_url(base), data=b"no parts here", headers=headers) as response:
        assert response.status == 400


async def test_database_outage_answers_503_so_the_charger_retries(
        http: aiohttp.ClientSession) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200&directConnection=true")
    server = FileServer(client["down"], max_upload_bytes=LIMIT)
    port = await server.start("127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{port}"
        async with http.put(upload_url(base), data=b"data") as response:
            assert response.status == 503 and response.headers["Retry-After"]
        async with http.get(f"{base}/firmware/fw.bin") as response:
            assert response.status == 503
    finally:
        await server.stop()
        await client.close()


# --- firmware downloads -----------------------------------------------------------------------


async def test_firmware_download_head_and_ranges(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    image = os.urandom(300_000)  # more than one GridFS chunk
    await repository.add_firmware(db, "cp-1.2.bin", io.BytesIO(image))
    url = rules.firmware_url(base, "cp-1.2.bin")
    async with http.get(url) as response:
        assert response.status == 200 and await response.read() == image
        etag = response.headers["ETag"]
        assert response.headers["Accept-Ranges"] == "bytes"
    async with http.head(url) as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == len(image)
        assert await response.read() == b""
    async with http.get(url, headers={"Range": "bytes=261000-261999"}) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 261000-261999/{len(image)}"
        assert await response.read() == image[261000:262000]
    async with http.get(url, headers={"Range": "bytes=-10"}) as response:
        assert response.status == 206 and await response.read() == image[-10:]
    async with http.get(url, headers={"Range": "bytes=1-2", "If-Range": '"old"'}) as response:
        assert response.status == 200 and await response.read() == image
    async with http.get(url, headers={"Range": "bytes=1-2", "If-Range": etag}) as response:
        assert response.status == 206 and await response.read() == image[1:3]
    async with http.get(url, headers={"Range": f"bytes={len(image)}-"}) as response:
        assert response.status == 416
        assert response.headers["Content-Range"] == f"bytes */{len(image)}"
    async with http.get(rules.firmware_url(base, "nope.bin")) as response:
        assert response.status == 404


async def test_firmware_names_are_unique(db: repository.Db) -> None:
    await repository.add_firmware(db, "fw.bin", io.BytesIO(b"1"))
    with pytest.raises(ValueError, match="exists already"):
        await repository.add_firmware(db, "fw.bin", io.BytesIO(b"2"))
    with pytest.raises(ValueError, match="invalid firmware name"):
        await repository.add_firmware(db, "../fw.bin", io.BytesIO(b"2"))


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


# --- locations and request checks -------------------------------------------------------------


# --- jobs: notifications out of order ---------------------------------------------------------
