"""The commands service's HTTP file server: chargers upload diagnostics and logs, download
firmware.

::

    PUT|POST /diagnostics/{station}/{token}[/{filename}]   raw body or multipart/form-data
    GET|HEAD /firmware/{token}/{name}                       single byte ranges supported
    GET|HEAD /firmware/{name}                               410: downloads need a token

Uploads: :mod:`commands.files.uploads`; downloads: :mod:`commands.files.downloads`. With a
TLS context (GRIDLINK_TLS_CERT_FILE and GRIDLINK_TLS_KEY_FILE, :mod:`services.tls`) it serves
https only: TLS 1.2 or later, the whitepaper's cipher suites, the certificate reloaded when
its files change. A client has GRIDLINK_FILES_IDLE_TIMEOUT_S to send a complete request head
(from connecting, or from the previous answer on a kept-alive connection) before the
connection is closed. While MongoDB is unreachable the server answers 503 with Retry-After,
so the charger retries. Requests are not logged: their URLs carry tokens.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web
from pymongo.errors import ConnectionFailure

from commands.files import repository
from commands.files.downloads import Downloads
from commands.files.transfers import (
    ACTION,
    DIAGNOSTICS_UPLOAD,
    FIRMWARE_DOWNLOAD,
    TRANSFERS,
    Limits,
    TransferRefused,
    store_unavailable,
)
from commands.files.uploads import Uploads
from services.errors import StoreUnavailable

log = logging.getLogger("gridlink.files")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FileServer:
    """The aiohttp application over one database; :meth:`start` / :meth:`stop` serve it."""

    def __init__(self, db: repository.Db, limits: Limits, *,
                 ssl_context: ssl.SSLContext | None = None,
                 shutdown_timeout_s: float = 10.0) -> None:
        self.db = db
        self.limits = limits
        self.ssl_context = ssl_context
        uploads, downloads = Uploads(db, limits), Downloads(db, limits)
        self.app = web.Application(middlewares=[self._outcomes])
        for method in ("PUT", "POST"):
            for path in ("/diagnostics/{station}/{token}",
                         "/diagnostics/{station}/{token}/{filename}"):
                self.app.router.add_route(method, path, uploads.upload,
                                          expect_handler=uploads.expect)
        self.app.router.add_get("/firmware/{token}/{name}", downloads.download, allow_head=True)
        self.app.router.add_get("/firmware/{name}", downloads.tokenless, allow_head=True)
        # keepalive_timeout also bounds the wait for a request head: aiohttp closes a
        # connection that has not sent a complete one within it (slow headers included).
        self._runner = web.AppRunner(self.app, access_log=None,
                                     shutdown_timeout=shutdown_timeout_s,
                                     keepalive_timeout=limits.idle_timeout_s)
        self.port: int | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); the port bound."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self.ssl_context)
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

    @web.middleware
    async def _outcomes(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refusals as answers, counted; a database outage as 503 with Retry-After."""
        default = DIAGNOSTICS_UPLOAD if request.path.startswith("/diagnostics/") \
            else FIRMWARE_DOWNLOAD
        try:
            return await handler(request)
        except TransferRefused as exc:
            TRANSFERS.labels(request.get(ACTION, default), exc.outcome).inc()
            response = exc.response()
            if exc.status == 408 and request.transport is not None:
                # A stalled client: answer, then close at once rather than wait for the rest
                # of its body (aiohttp would linger reading it).
                await response.prepare(request)
                await response.write_eof()
                request.transport.close()
            return response
        except (ConnectionFailure, StoreUnavailable):
            TRANSFERS.labels(request.get(ACTION, default), "store_unavailable").inc()
            log.warning("file server: mongodb unreachable", extra={"action": default})
            return store_unavailable().response()
        except ConnectionError:  # the charger went away mid-transfer
            TRANSFERS.labels(request.get(ACTION, default), "aborted").inc()
            raise
