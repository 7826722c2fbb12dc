"""The commands service's HTTP file server: chargers upload diagnostics, download firmware.

::

    PUT|POST /diagnostics/{station}/{token}[/{filename}]   raw body or multipart/form-data
    GET|HEAD /firmware/{name}                               single byte ranges supported

An upload is accepted only for a token GridLink handed out for that station (404 otherwise,
403 once it expired or was used too often) and up to ``GRIDLINK_MAX_UPLOAD_BYTES`` (413,
checked from Content-Length before the body is read, also when ``Expect: 100-continue``
asks first, and again while streaming). The file streams into GridFS bucket
``diagnostics`` with its station, command id, name and size, and is linked to the
diagnostics job. While MongoDB is unreachable the server answers 503 with Retry-After, so
the charger retries. Requests are not logged: upload URLs carry their token.

URLs and tokens: :mod:`commands.files.rules`; documents: :mod:`commands.files.repository`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from aiohttp.multipart import parse_content_disposition
from gridfs.errors import NoFile
from prometheus_client import Counter
from pymongo.errors import ConnectionFailure

from commands.files import repository, rules
from services.errors import GridLinkError, StoreUnavailable
from services.ocpp16 import utcnow

log = logging.getLogger("gridlink.files")

UPLOAD = "diagnostics_upload"
DOWNLOAD = "firmware_download"
READ_CHUNK = 64 * 1024
MULTIPART_OVERHEAD = 16 * 1024  # boundaries and part headers around the file in a form
RETRY_AFTER_S = 30

TRANSFERS = Counter(
    "gridlink_commands_file_transfers_total",
    "Diagnostics uploads and firmware downloads at the file server, by action and outcome.",
    ["action", "outcome"],
)
TRANSFER_BYTES = Counter(
    "gridlink_commands_file_transfer_bytes_total",
    "Bytes received (uploads) and sent (downloads) by the file server, by action.",
    ["action"],
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TransferRefused(GridLinkError):
    """An HTTP error answer, counted as ``outcome``."""

    def __init__(self, status: int, outcome: str, reason: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.outcome = outcome
        self.reason = reason
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.Response(status=self.status, text=self.reason + "\n", headers=self.headers)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte of a single ``bytes=`` range, inclusive; None: the whole file.

    A header this server does not understand (other units, several ranges, bad syntax) is
    ignored, as RFC 9110 allows; an unsatisfiable range raises ValueError (416).
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash or not (first_text or last_text):
        return None
    if not (first_text.isdigit() or not first_text) or not (last_text.isdigit() or not last_text):
        return None
    if not first_text:  # the last N bytes
        length = int(last_text)
        if length == 0 or size == 0:
            raise ValueError("unsatisfiable range")
        return max(size - length, 0), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None
    if first >= size:
        raise ValueError("unsatisfiable range")
    return first, min(last, size - 1)


class FileServer:
    """The aiohttp application over one database; :meth:`start` / :meth:`stop` serve it."""

    def __init__(self, db: repository.Db, *, max_upload_bytes: int,
                 shutdown_timeout_s: float = 10.0) -> None:
        self.db = db
        self.max_upload_bytes = max_upload_bytes
        self.app = web.Application(middlewares=[self._outcomes])
        for method in ("PUT", "POST"):
            for path in ("/diagnostics/{station}/{token}",
                         "/diagnostics/{station}/{token}/{filename}"):
                self.app.router.add_route(method, path, self._upload,
                                          expect_handler=self._expect)
        self.app.router.add_get("/firmware/{name}", self._download, allow_head=True)
        self._runner = web.AppRunner(self.app, access_log=None,
                                     shutdown_timeout=shutdown_timeout_s)
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); the port bound."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        """Stop listening; let requests in progress finish (within the shutdown timeout)."""
        await self._runner.cleanup()

    # --- plumbing ---------------------------------------------------------------------------

    @web.middleware
    async def _outcomes(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        action = UPLOAD if request.path.startswith("/diagnostics/") else DOWNLOAD
        try:
            return await handler(request)
        except TransferRefused as exc:
            TRANSFERS.labels(action, exc.outcome).inc()
            return exc.response()
        except (ConnectionFailure, StoreUnavailable):
            TRANSFERS.labels(action, "store_unavailable").inc()
            log.warning("file server: mongodb unreachable", extra={"action": action})
            return TransferRefused(503, "store_unavailable", "database unavailable, retry later",
                           {"Retry-After": str(RETRY_AFTER_S)}).response()

    async def _expect(self, request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue``: refuse before the body is sent, or let it come."""
        if request.headers.get("Expect", "").lower() != "100-continue":
            return web.Response(status=417, text="unknown Expect\n")
        try:
            await self._admit(request)
        except TransferRefused as exc:
            TRANSFERS.labels(UPLOAD, exc.outcome).inc()
            return exc.response()
        except (ConnectionFailure, StoreUnavailable):
            TRANSFERS.labels(UPLOAD, "store_unavailable").inc()
            return TransferRefused(503, "store_unavailable", "database unavailable, retry later",
                           {"Retry-After": str(RETRY_AFTER_S)}).response()
        if request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0
        return None

    # --- diagnostics upload -----------------------------------------------------------------

    async def _admit(self, request: web.Request) -> dict[str, Any]:
        """The token document, if this request may upload; else raise TransferRefused."""
        station, token = request.match_info["station"], request.match_info["token"]
        document = None
        if rules.token_is_well_formed(token):
            document = await repository.upload_token(self.db, token)
        refusal = rules.token_refusal(document, station, utcnow())
        if refusal is not None:
            status, reason = refusal
            raise TransferRefused(status, "unknown_token" if status == 404 else "expired", reason)
        assert document is not None
        allowance = MULTIPART_OVERHEAD if request.content_type.startswith("multipart/") else 0
        length = request.content_length
        if length is not None and length > self.max_upload_bytes + allowance:
            raise TransferRefused(413, "too_large", f"larger than {self.max_upload_bytes} bytes")
        return document

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        slot = await self._admit(request)
        station = slot["station"]
        url_name = request.match_info.get("filename")
        content_type = request.headers.get("Content-Type", "application/octet-stream")
        if request.content_type == "multipart/form-data":
            part = await self._file_part(request)
            # Some clients (aiohttp among them) percent-encode the name in the form.
            name = unquote(part.filename) if part.filename else url_name
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            chunks = _part_chunks(part)
        else:
            name = url_name or _disposition_filename(request)
            chunks = request.content.iter_chunked(READ_CHUNK)
        filename = (rules.safe_filename(name)
                    or f"diagnostics-{rules.safe_filename(station)}-{utcnow():%Y%m%dT%H%M%SZ}")
        file = await self._store(chunks, filename, slot, content_type)
        await repository.count_upload(self.db, slot["_id"])
        await repository.link_diagnostics_file(self.db, slot["command_id"], file)
        TRANSFERS.labels(UPLOAD, "ok").inc()
        log.info("diagnostics uploaded", extra={
            "station": station, "command_id": slot["command_id"], "size": file["length"]})
        return web.json_response({"id": str(file["_id"]), "fileName": filename,
                                  "size": file["length"]})

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
        """Stream the body into GridFS within the size limit; the files document."""
        now = utcnow()
        metadata = {"station": slot["station"], "command_id": slot["command_id"],
                    "filename": filename, "size": 0, "uploaded_at": now,
                    "content_type": content_type}
        stream = repository.diagnostics_bucket(self.db).open_upload_stream(
            filename, metadata=metadata)
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > self.max_upload_bytes:
                    raise TransferRefused(413, "too_large",
                                          f"larger than {self.max_upload_bytes} bytes")
                await stream.write(chunk)
            await stream.set("metadata", {**metadata, "size": size})
            await stream.close()
        except TransferRefused:
            await stream.abort()
            raise
        except ValueError as exc:  # a malformed multipart body
            await stream.abort()
            raise TransferRefused(400, "bad_request", f"malformed body: {exc}") from None
        except (ConnectionFailure, StoreUnavailable):
            raise
        except BaseException:  # the charger went away mid-upload, or we are stopping
            TRANSFERS.labels(UPLOAD, "aborted").inc()
            with contextlib.suppress(Exception):
                await stream.abort()
            raise
        TRANSFER_BYTES.labels(UPLOAD).inc(size)
        return {"_id": stream._id, "filename": filename, "length": size,
                "uploadDate": stream.upload_date, "metadata": metadata}

    # --- firmware download ------------------------------------------------------------------

    async def _download(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        try:
            image = await repository.firmware_bucket(self.db).open_download_stream_by_name(name)
        except NoFile:
            raise TransferRefused(404, "not_found", f"no firmware {name!r}") from None
        size = int(image.length)
        etag = f'"{image._id}"'
        wanted = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        if if_range is not None and if_range != etag:
            wanted = None  # the image changed since the client's partial copy: send it whole
        try:
            span = parse_range(wanted, size)
        except ValueError:
            raise TransferRefused(416, "bad_range", "range not satisfiable",
                          {"Content-Range": f"bytes */{size}"}) from None
        first, last = span if span is not None else (0, size - 1)
        response = web.StreamResponse(status=206 if span is not None else 200)
        response.content_type = "application/octet-stream"
        response.content_length = last - first + 1
        response.headers["Accept-Ranges"] = "bytes"
        response.headers["ETag"] = etag
        response.last_modified = image.upload_date
        if span is not None:
            response.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        await response.prepare(request)
        outcome = "partial" if span is not None else "ok"
        if request.method == "HEAD":
            TRANSFERS.labels(DOWNLOAD, "head").inc()
            return response
        await image.seek(first)
        remaining = last - first + 1
        try:
            while remaining > 0:
                chunk = await image.read(min(remaining, READ_CHUNK))
                if not chunk:
                    break
                await response.write(chunk)
                remaining -= len(chunk)
                TRANSFER_BYTES.labels(DOWNLOAD).inc(len(chunk))
            await response.write_eof()
        except ConnectionError:  # the charger went away (it may resume with a Range)
            TRANSFERS.labels(DOWNLOAD, "aborted").inc()
            return response
        TRANSFERS.labels(DOWNLOAD, outcome).inc()
        return response


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(READ_CHUNK):
        yield chunk


def _disposition_filename(request: web.Request) -> str | None:
    header = request.headers.get("Content-Disposition")
    if not header:
        return None
    _, params = parse_content_disposition(header)
    return params.get("filename")
