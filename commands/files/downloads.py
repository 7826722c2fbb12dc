"""Firmware downloads at the file server: ``GET|HEAD /firmware/{token}/{name}``.

The token must be a download token GridLink issued for that image and not yet expired
(:mod:`commands.files.download_tokens`): an unknown token, a token of another image and an
image that is gone all answer 404 alike; an expired token 403. Single byte ranges are
supported (206, ``If-Range`` with the ETag, 416 when unsatisfiable), so a charger resumes
a broken download. The tokenless ``/firmware/{name}`` of earlier releases answers 410 for
every name, existing or not. Writing the image waits at most GRIDLINK_FILES_IDLE_TIMEOUT_S
for a slow reader, and all of it GRIDLINK_FILES_REQUEST_TIMEOUT_S; then the connection is
cut (the charger may resume with Range).
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from gridfs.errors import NoFile

from commands.files import download_tokens, repository, rules
from commands.files.transfers import (
    FIRMWARE_DOWNLOAD,
    TRANSFER_BYTES,
    TRANSFERS,
    Limits,
    TransferRefused,
    within,
)
from services.ocpp16 import utcnow

READ_CHUNK = 64 * 1024


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


class Downloads:
    """The download handlers over one database."""

    def __init__(self, db: repository.Db, limits: Limits) -> None:
        self.db = db
        self.limits = limits

    async def tokenless(self, request: web.Request) -> web.StreamResponse:
        """``/firmware/{name}``: gone, whatever the name (nothing to learn about images)."""
        raise TransferRefused(410, "tokenless", "firmware is downloaded through a URL with a "
                              "download token: send a new firmware update")

    async def download(self, request: web.Request) -> web.StreamResponse:
        token, name = request.match_info["token"], request.match_info["name"]
        document = None
        if rules.token_is_well_formed(token):
            document = await download_tokens.get(self.db, token)
        refusal = rules.download_refusal(document, name, utcnow())
        if refusal is not None:
            raise TransferRefused.of(refusal)
        try:
            image = await repository.firmware_bucket(self.db).open_download_stream_by_name(name)
        except NoFile:
            raise TransferRefused(404, "not_found", "no such download") from None
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
        if request.method == "HEAD":
            TRANSFERS.labels(FIRMWARE_DOWNLOAD, "head").inc()
            return response
        await download_tokens.count_download(self.db, token)
        await image.seek(first)
        remaining, idle_s = last - first + 1, self.limits.idle_timeout_s
        try:
            async with asyncio.timeout(self.limits.request_timeout_s):
                while remaining > 0:
                    chunk = await within(idle_s, image.read(min(remaining, READ_CHUNK)))
                    if not chunk:
                        break
                    await within(idle_s, response.write(chunk))
                    remaining -= len(chunk)
                    TRANSFER_BYTES.labels(FIRMWARE_DOWNLOAD).inc(len(chunk))
            await response.write_eof()
        except ConnectionError:  # the charger went away (it may resume with a Range)
            TRANSFERS.labels(FIRMWARE_DOWNLOAD, "aborted").inc()
            return response
        except TimeoutError:  # a reader too slow: cut it off (it may resume with a Range)
            TRANSFERS.labels(FIRMWARE_DOWNLOAD, "timeout").inc()
            if request.transport is not None:
                request.transport.abort()
            return response
        TRANSFERS.labels(FIRMWARE_DOWNLOAD, "partial" if span is not None else "ok").inc()
        return response
