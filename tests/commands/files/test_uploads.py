"""Uploads at the file server, in-process against the real database (SecantusDB).

Covers what the charger-driven integration tests cannot reach cheaply: single-use tokens
reserved atomically (two concurrent uploads with one token: exactly one succeeds), size
limits (by Content-Length, while streaming, and before ``100 Continue``), stalled clients
timed out (headers and body), aborted uploads releasing their token, and a database outage
(503).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from commands.files import repository, rules, upload_tokens
from commands.files.http_server import FileServer
from commands.files.jobs import ACCEPTED
from commands.files.transfers import Limits
from services.ocpp16 import utcnow
from tests.processes import wait_for

LIMIT = 64 * 1024
TOKEN_A = "a" * 32
IDLE_S = 0.5  # the stall tests' server gives up after this


async def serve(db: repository.Db, **limits: Any) -> AsyncIterator[str]:
    server = FileServer(db, Limits(LIMIT, **{"idle_timeout_s": 30.0, **limits}))
    port = await server.start("127.0.0.1", 0)
    yield f"http://127.0.0.1:{port}"
    await server.stop()


@pytest.fixture
async def base(db: repository.Db) -> AsyncIterator[str]:
    async for url in serve(db):
        yield url


@pytest.fixture
async def impatient(db: repository.Db) -> AsyncIterator[str]:
    """A file server that waits IDLE_S for a request head or the next body bytes."""
    async for url in serve(db, idle_timeout_s=IDLE_S):
        yield url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def slot(db: repository.Db, station: str = "CP/1", *, token: str = TOKEN_A,
               expires_in: timedelta = timedelta(hours=1), kind: str = upload_tokens.DIAGNOSTICS,
               details: dict[str, Any] | None = None) -> str:
    """Register an upload token and an open job for it; the command id."""
    command_id = uuid.uuid4().hex
    assert await upload_tokens.register(db, token, station, command_id, utcnow() + expires_in,
                                        kind, details)
    now = utcnow()
    await db[repository.UPLOADS[kind][1]].insert_one({
        "_id": command_id, "station": station, "status": ACCEPTED, "since": now,
        "status_at": now, "updated_at": now, "history": []})
    return command_id


def upload_url(base: str, station: str = "CP/1", token: str = TOKEN_A, name: str = "") -> str:
    location = rules.diagnostics_location(base, station, token)
    return f"{location}/{name}" if name else location


async def stored(db: repository.Db, command_id: str, kind: str = upload_tokens.DIAGNOSTICS
                 ) -> tuple[dict[str, Any], bytes]:
    document = await repository.latest_upload(db, kind, command_id)
    assert document is not None
    bucket = repository.UPLOADS[kind][0]
    data = b"".join([c async for c in repository.read_upload(db, bucket, document["_id"])])
    return document, data


async def files_stored(db: repository.Db) -> int:
    return await db[f"{repository.DIAGNOSTICS_BUCKET}.files"].count_documents({})


async def token_is_free(db: repository.Db, token: str = TOKEN_A) -> bool:
    document = await upload_tokens.get(db, token)
    return document is not None and document.get("reserved_until") is None \
        and document.get("used_at") is None


async def raw_connection(base: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = base.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def raw_request(base: str, head: str) -> bytes:
    """Send request headers only; the first line the server answers."""
    reader, writer = await raw_connection(base)
    try:
        writer.write(head.encode())
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


def put_head(base: str, length: int, token: str = TOKEN_A, extra: str = "") -> str:
    path = upload_url(base, token=token).removeprefix(base)
    return f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n{extra}\r\n"


# --- uploads ----------------------------------------------------------------------------------


async def test_raw_put_is_stored_linked_and_uses_the_token_up(
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
    token = await upload_tokens.get(db, TOKEN_A)
    assert token is not None and token["file_id"] == document["_id"] and token["used_at"]
    assert "reservation" not in token
    async with http.put(upload_url(base), data=b"again") as response:  # single use
        assert response.status == 403
    assert await files_stored(db) == 1


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


async def test_a_log_token_stores_into_the_logs_bucket_with_its_request(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    command_id = await slot(db, "CP2", kind=upload_tokens.LOG,
                            details={"log_type": "SecurityLog", "request_id": 7})
    async with http.post(upload_url(base, "CP2"), data=b"security log") as response:
        assert response.status == 200
    document, data = await stored(db, command_id, upload_tokens.LOG)
    assert data == b"security log" and document["filename"].startswith("log-CP2-")
    assert (document["metadata"]["log_type"], document["metadata"]["request_id"]) == (
        "SecurityLog", 7)
    job = await db[repository.LOG_JOBS].find_one({"_id": command_id})
    assert job["file_id"] == document["_id"]
    assert await files_stored(db) == 0  # not with the diagnostics


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
    assert await files_stored(db) == 0


async def test_expired_tokens_are_refused(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    await slot(db, token="e" * 32, expires_in=timedelta(seconds=-1))
    async with http.put(upload_url(base, token="e" * 32), data=b"data") as response:
        assert response.status == 403
    assert await files_stored(db) == 0


# --- one upload per token ---------------------------------------------------------------------


async def test_while_one_upload_holds_the_token_another_is_refused(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    command_id = await slot(db)
    go_on = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"first half, "
        await go_on.wait()
        yield b"second half"

    first = asyncio.ensure_future(http.put(upload_url(base), data=slow_body()))
    await wait_for(lambda: _reserved(db), what="the first upload's reservation")
    async with http.put(upload_url(base), data=b"intruder") as response:
        assert response.status == 409 and response.headers["Retry-After"]
    go_on.set()
    async with await first as response:
        assert response.status == 200
    _, data = await stored(db, command_id)
    assert data == b"first half, second half"
    assert await files_stored(db) == 1


async def _reserved(db: repository.Db) -> bool:
    document = await upload_tokens.get(db, TOKEN_A)
    return document is not None and document.get("reserved_until") is not None


async def test_two_concurrent_uploads_with_one_token_exactly_one_succeeds(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    await slot(db)

    async def put(body: bytes) -> int:
        async with http.put(upload_url(base), data=body) as response:
            return response.status

    statuses = await asyncio.gather(put(b"a" * 30_000), put(b"b" * 30_000))
    assert sorted(statuses)[0] == 200 and sorted(statuses)[1] in (403, 409), statuses
    assert await files_stored(db) == 1


async def test_an_aborted_upload_releases_the_token(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    command_id = await slot(db)
    _, writer = await raw_connection(base)
    writer.write(put_head(base, 1000).encode() + b"only ten b")
    await writer.drain()
    await wait_for(lambda: _reserved(db), what="the upload's reservation")
    writer.close()  # the charger goes away mid-body
    await wait_for(lambda: token_is_free(db), what="the reservation released")
    assert await files_stored(db) == 0
    async with http.put(upload_url(base), data=b"the retry") as response:
        assert response.status == 200
    assert (await stored(db, command_id))[1] == b"the retry"


# --- slow clients -----------------------------------------------------------------------------


async def test_a_stalled_upload_times_out_and_may_be_retried(
        db: repository.Db, impatient: str, http: aiohttp.ClientSession) -> None:
    await slot(db)
    reader, writer = await raw_connection(impatient)
    try:
        writer.write(put_head(impatient, 1000).encode() + b"only ten b")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # read to the end: it closes
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert await token_is_free(db) and await files_stored(db) == 0
    async with http.put(upload_url(impatient), data=b"x" * 1000) as response:
        assert response.status == 200


async def test_an_upload_past_the_request_deadline_times_out(
        db: repository.Db, http: aiohttp.ClientSession) -> None:
    await slot(db)
    never = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"a first chunk, then nothing"
        await never.wait()
        yield b"never sent"

    async for base in serve(db, request_timeout_s=0.5):  # idle allowance: 30 s
        async with http.put(upload_url(base), data=body()) as response:
            assert response.status == 408
    assert await token_is_free(db) and await files_stored(db) == 0


async def test_a_request_head_that_never_ends_is_cut_off(impatient: str) -> None:
    reader, writer = await raw_connection(impatient)
    try:
        writer.write(b"PUT /diagnostics/CP1/" + TOKEN_A.encode() + b" HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, nothing answered
    finally:
        writer.close()


# --- size limits ------------------------------------------------------------------------------


async def test_too_large_by_content_length(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    await slot(db)
    async with http.put(upload_url(base), data=b"x" * (LIMIT + 1)) as response:
        assert response.status == 413
    assert await files_stored(db) == 0 and await token_is_free(db)


async def test_too_large_while_streaming_leaves_nothing_behind(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    await slot(db)

    async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length to check
        for _ in range(40):
            yield b"y" * 4096

    async with http.put(upload_url(base), data=chunks()) as response:
        assert response.status == 413
    assert await files_stored(db) == 0
    assert await db[f"{repository.DIAGNOSTICS_BUCKET}.chunks"].count_documents({}) == 0
    assert await token_is_free(db)  # a smaller file may follow


async def test_expect_100_continue_is_refused_before_the_body(
        db: repository.Db, base: str) -> None:
    await slot(db)
    expect = "Expect: 100-continue\r\n"
    assert (await raw_request(base, put_head(base, LIMIT + 1, extra=expect))).startswith(
        b"HTTP/1.1 413")
    assert (await raw_request(base, put_head(base, 10, "c" * 32, expect))).startswith(
        b"HTTP/1.1 404")
    assert (await raw_request(base, put_head(base, 10, extra=expect))).startswith(
        b"HTTP/1.1 100")


async def test_malformed_multipart_is_a_bad_request(
        db: repository.Db, base: str, http: aiohttp.ClientSession) -> None:
    await slot(db)
    headers = {"Content-Type": "multipart/form-data; boundary=zzz"}
    async with http.post(upload_url(base), data=b"no parts here", headers=headers) as response:
        assert response.status == 400
    assert await token_is_free(db)


async def test_database_outage_answers_503_so_the_charger_retries(
        http: aiohttp.ClientSession) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200&directConnection=true")
    server = FileServer(client["down"], Limits(LIMIT))
    port = await server.start("127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{port}"
        async with http.put(upload_url(base), data=b"data") as response:
            assert response.status == 503 and response.headers["Retry-After"]
        async with http.get(f"{base}/firmware/{TOKEN_A}/fw.bin") as response:
            assert response.status == 503
    finally:
        await server.stop()
        await client.close()
