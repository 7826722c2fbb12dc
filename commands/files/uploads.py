"""Uploads at the file server: ``PUT|POST /diagnostics/{station}/{token}[/{filename}]``, raw
body or multipart/form-data, for GetDiagnostics and GetLog alike (the token says which).

1. The token is checked and the size announced (Content-Length) compared with
   ``GRIDLINK_MAX_UPLOAD_BYTES`` before the body is read — also when ``Expect:
   100-continue`` asks first: 404 unknown (or another station's), 403 expired or used,
   409 another upload with it is in progress, 413 too large.
2. The token is reserved in one atomic operation (:func:`upload_tokens.reserve`) before any
   body byte is read: of two concurrent uploads with one token exactly one proceeds.
3. The body streams into GridFS (bucket ``diagnostics`` or ``logs``) within the size limit
   (413 when it grows past it), within GRIDLINK_FILES_IDLE_TIMEOUT_S between two reads and
   GRIDLINK_FILES_REQUEST_TIMEOUT_S in all (408, and the connection closes).
4. A completed upload consumes the token and is linked to its job; an aborted one (too
   large, timed out, malformed, the charger gone) leaves nothing behind and releases the
   reservation, so the charger may retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from aiohttp.multipart import parse_content_disposition
from pymongo.errors import ConnectionFailure

from commands.files import repository, rules, upload_tokens
from commands.files.transfers import (
    ACTION,
    DIAGNOSTICS_UPLOAD,
    LOG_UPLOAD,
    TRANSFER_BYTES,
    TRANSFERS,
    Limits,
    TransferRefused,
    chunks_within,
    store_unavailable,
    timed_out,
    within,
)
from services.errors import StoreUnavailable
from services.ocpp16 import utcnow

log = logging.getLogger("gridlink.files")

READ_CHUNK = 64 * 1024
MULTIPART_OVERHEAD = 16 * 1024  # boundaries and part headers around the file in a form
LEASE_MARGIN = timedelta(minutes=1)  # a reservation outlives the longest request by this
ACTIONS = {upload_tokens.DIAGNOSTICS: DIAGNOSTICS_UPLOAD, upload_tokens.LOG: LOG_UPLOAD}


class Uploads:
    """The upload handlers over one database."""

    def __init__(self, db: repository.Db, limits: Limits) -> None:
        self.db = db
        self.limits = limits

    async def expect(self, request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue``: refuse before the body is sent, or let it come."""
        if request.headers.get("Expect", "").lower() != "100-continue":
            return web.Response(status=417, text="unknown Expect\n")
        try:
            await self._admit(request)
        except TransferRefused as exc:
            TRANSFERS.labels(request.get(ACTION, DIAGNOSTICS_UPLOAD), exc.outcome).inc()
            return exc.response()
        except (ConnectionFailure, StoreUnavailable):
            TRANSFERS.labels(DIAGNOSTICS_UPLOAD, "store_unavailable").inc()
            return store_unavailable().response()
        if request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0
        return None

    async def _admit(self, request: web.Request) -> dict[str, Any]:
        """The token document, if this request may upload now; else raise TransferRefused."""
        station, token = request.match_info["station"], request.match_info["token"]
        document = None
        if rules.token_is_well_formed(token):
            document = await upload_tokens.get(self.db, token)
        if document is not None:
            request[ACTION] = ACTIONS[document.get("kind", upload_tokens.DIAGNOSTICS)]
        refusal = rules.upload_refusal(document, station, utcnow())
        if refusal is not None:
            raise TransferRefused.of(refusal)
        assert document is not None
        allowance = MULTIPART_OVERHEAD if request.content_type.startswith("multipart/") else 0
        limit = self.limits.max_upload_bytes
        if request.content_length is not None and request.content_length > limit + allowance:
            raise TransferRefused(413, "too_large", f"larger than {limit} bytes")
        return document

    async def upload(self, request: web.Request) -> web.StreamResponse:
        await self._admit(request)  # says why cheaply, before anything is reserved
        station, token = request.match_info["station"], request.match_info["token"]
        now = utcnow()
        lease = timedelta(seconds=self.limits.request_timeout_s) + LEASE_MARGIN
        slot = await upload_tokens.reserve(self.db, token, station, now, now + lease)
        if slot is None:  # another upload took it since: say what it is now
            current = await upload_tokens.get(self.db, token)
            raise TransferRefused.of(rules.upload_refusal(current, station, utcnow())
                                     or (409, "in_use", "upload location busy"))
        reservation = slot["reservation"]
        try:
            file = await self._receive(request, slot)
        except BaseException:
            with contextlib.suppress(Exception):  # unreachable database: the lease ends
                await upload_tokens.release(self.db, token, reservation)
            raise
        await complete_upload(self.db, slot, reservation, file)
        return web.json_response({"id": str(file["_id"]), "fileName": file["filename"],
                                  "size": file["length"]})

    async def _receive(self, request: web.Request, slot: dict[str, Any]) -> dict[str, Any]:
        """Read the body into GridFS within the limits; the files document."""
        idle_s = self.limits.idle_timeout_s
        url_name = request.match_info.get("filename")
        content_type = request.headers.get("Content-Type", "application/octet-stream")
        try:
            async with asyncio.timeout(self.limits.request_timeout_s):
                if request.content_type == "multipart/form-data":
                    part = await within(idle_s, self._file_part(request))
                    # Some clients (aiohttp among them) percent-encode the name in the form.
                    name = unquote(part.filename) if part.filename else url_name
                    content_type = part.headers.get("Content-Type", "application/octet-stream")
                    chunks = chunks_within(idle_s, _part_chunks(part))
                else:
                    name = url_name or _disposition_filename(request)
                    chunks = chunks_within(idle_s, aiter(request.content.iter_chunked(READ_CHUNK)))
                filename = rules.safe_filename(name) or default_filename(slot)
                return await self._store(chunks, filename, slot, content_type)
        except TimeoutError:
            raise timed_out("upload") from None

    async def _file_part(self, request: web.Request) -> BodyPartReader:
        """The form's file: the first part with a file name (or named ``file``)."""
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if isinstance(part, BodyPartReader) and (part.filename or part.name == "file"):
                    return part
        except (ValueError, AssertionError) as exc:
            raise TransferRefused(400, "bad_request", f"malformed multipart body: {exc}") from None
        raise TransferRefused(400, "bad_request", "multipart body without a file")

    async def _store(self, chunks: AsyncIterator[bytes], filename: str, slot: dict[str, Any],
                     content_type: str) -> dict[str, Any]:
        """Stream the body into GridFS within the size limit; the files document. Nothing is
        left behind when it fails."""
        kind = slot.get("kind", upload_tokens.DIAGNOSTICS)
        metadata = upload_metadata(slot, filename, content_type)
        stream = open_upload_stream(self.db, slot, filename, metadata)
        size, limit = 0, self.limits.max_upload_bytes
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TransferRefused(413, "too_large", f"larger than {limit} bytes")
                await stream.write(chunk)
            await stream.set("metadata", {**metadata, "size": size})
            await stream.close()
        except ValueError as exc:  # a malformed multipart body
            await _abort(stream)
            raise TransferRefused(400, "bad_request", f"malformed body: {exc}") from None
        except BaseException:  # too large, too slow, the charger gone, or we are stopping
            await _abort(stream)
            raise
        TRANSFER_BYTES.labels(ACTIONS[kind]).inc(size)
        return {"_id": stream._id, "filename": filename, "length": size,
                "uploadDate": stream.upload_date, "metadata": metadata}


def default_filename(slot: dict[str, Any]) -> str:
    """The name of an upload the charger gave none: ``{kind}-{station}-{time}``."""
    return (f"{slot.get('kind', 'diagnostics')}-{rules.safe_filename(slot['station'])}"
            f"-{utcnow():%Y%m%dT%H%M%SZ}")


def upload_metadata(slot: dict[str, Any], filename: str, content_type: str
                    ) -> dict[str, Any]:
    """The GridFS ``metadata`` of an upload with this (reserved) token."""
    return {"station": slot["station"], "command_id": slot["command_id"],
            "filename": filename, "size": 0, "uploaded_at": utcnow(),
            "content_type": content_type, **slot.get("details", {})}


def open_upload_stream(db: repository.Db, slot: dict[str, Any], filename: str,
                       metadata: dict[str, Any]) -> Any:
    """A GridFS upload stream in the bucket of the token's kind (diagnostics or logs)."""
    bucket_name = repository.UPLOADS[slot.get("kind", upload_tokens.DIAGNOSTICS)][0]
    return repository.bucket(db, bucket_name).open_upload_stream(filename, metadata=metadata)


async def complete_upload(db: repository.Db, slot: dict[str, Any], reservation: str,
                          file: dict[str, Any]) -> None:
    """A stored upload (``file``: its files document): the token is used up, the file
    linked to its job, counted and logged (HTTP and FTP alike)."""
    kind = slot.get("kind", upload_tokens.DIAGNOSTICS)
    station = slot["station"]
    if not await upload_tokens.consume(db, slot["_id"], reservation, file["_id"]):
        log.warning("upload outlived its reservation", extra={"station": station})
    await repository.link_uploaded_file(db, kind, slot["command_id"], file)
    TRANSFERS.labels(ACTIONS[kind], "ok").inc()
    log.info("file uploaded", extra={"station": station, "kind": kind,
                                     "command_id": slot["command_id"],
                                     "size": file["length"]})


async def _abort(stream: Any) -> None:
    """Remove the chunks written so far (if the database lets us)."""
    with contextlib.suppress(Exception):
        await stream.abort()


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(READ_CHUNK):
        yield chunk


def _disposition_filename(request: web.Request) -> str | None:
    header = request.headers.get("Content-Disposition")
    if not header:
        return None
    _, params = parse_content_disposition(header)
    return params.get("filename")
