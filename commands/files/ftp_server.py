"""The file server's FTP and FTPS listener (pyftpdlib), for chargers that upload diagnostics
and download firmware only that way (SupportedFileTransferProtocols ``FTP``/``FTPS``): its
handlers and server here; the login, the virtual filesystem and the GridFS files in
:mod:`commands.files.ftp_files`.

::

    USER diagnostics  PASS {upload token}     STOR any name (under /diagnostics/{station}/):
                                              one GetDiagnostics or GetLog upload
    USER firmware     PASS {download token}   RETR /firmware/{name} (REST supported), SIZE,
                                              MDTM, NLST, until the token expires

The URLs chargers are given carry the credentials (:func:`commands.files.rules.
diagnostics_location`, :func:`commands.files.rules.firmware_url`); the tokens, their
expiry, single use of upload tokens (reserved atomically at STOR, consumed when the upload
completes, released when it is aborted) and the GridFS buckets are the HTTP file server's
(:mod:`commands.files.uploads`, :mod:`commands.files.downloads`). Nothing is written to the
local disk: the filesystem chargers see is virtual.

**Threads.** pyftpdlib's ThreadedFTPServer gives each connection a thread of its own, with
its own pyftpdlib ioloop (control and data connection together); its acceptor runs in one
more thread. Database work is not done with a second, synchronous client: each step (a
token lookup, a GridFS chunk) is handed to the service's asyncio loop and its
AsyncMongoClient (:class:`LoopBridge`, ``run_coroutine_threadsafe``) and the connection's
thread waits for it — at most GRIDLINK_FILES_IDLE_TIMEOUT_S. So the token rules and the
GridFS code are the HTTP server's, one pool of connections to MongoDB is used, and waiting
blocks only the one charger's thread, never the service's loop.

**FTPS** is explicit (AUTH TLS, RFC 4217) with the certificate of the https file server
(GRIDLINK_TLS_CERT_FILE, GRIDLINK_TLS_KEY_FILE; reloaded when they change), TLS 1.2 or
later and the whitepaper's cipher suites (:class:`services.tls.OpenSSLContext`). When only
ftps is enabled (GRIDLINK_FTP_PROTOCOLS), USER/PASS before AUTH TLS and a data connection
before PROT P are refused: a token never crosses the network in clear.

**Passive mode** only (PASV/EPSV; PORT is refused: a charger behind NAT cannot be dialled
back), on GRIDLINK_FTP_PASSIVE_PORTS, announcing GRIDLINK_FTP_PUBLIC_HOST (resolved once).

**Stopping** (:meth:`FtpServer.stop`): no new connections, transfers in progress get the
grace period, then every connection is closed.

Tokens are never logged: pyftpdlib's own log (which would name the user, never the
password) is kept at WARNING; GridLink logs uploads with the station id.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import socket
import threading
import time
from datetime import timedelta
from typing import Any

from pyftpdlib.filesystems import FilesystemError
from pyftpdlib.handlers import DTPHandler, FTPHandler, TLS_DTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import ThreadedFTPServer

from commands.files import download_tokens, repository, rules, upload_tokens
from commands.files.ftp_files import (
    DownloadFile,
    LoopBridge,
    Session,
    StoreDown,
    TokenAuthorizer,
    TokenFilesystem,
    UploadFile,
    ftp_action,
)
from commands.files.transfers import FIRMWARE_DOWNLOAD, TRANSFERS, Limits
from commands.files.uploads import LEASE_MARGIN
from services.ocpp16 import utcnow
from services.tls import OpenSSLContext

log = logging.getLogger("gridlink.files.ftp")

MAX_CONNECTIONS = 256
MAX_CONNECTIONS_PER_ADDRESS = 64  # chargers behind one carrier NAT share an address


# --- handlers -------------------------------------------------------------------------------


class _FinishingDTP:
    """A data connection that stores (or discards) an upload before it answers 226."""

    file_obj: Any
    transfer_finished: bool
    _closed: bool
    _resp: Any

    def close(self) -> None:
        upload = self.file_obj
        if not self._closed and isinstance(upload, UploadFile) and not upload.finished:
            if not upload.finish(self.transfer_finished) and self.transfer_finished:
                self.transfer_finished = False
                self._resp = ("451 The file could not be stored; try again.", log.warning)
        super().close()  # type: ignore[misc]


class GridFSDTPHandler(_FinishingDTP, DTPHandler):
    pass


class GridFSTLSDTPHandler(_FinishingDTP, TLS_DTPHandler):
    pass


class _GridLinkFTP:
    """What GridLink adds to pyftpdlib's control connection (its class attributes are set
    per server by :class:`FtpServer`)."""

    gridlink_db: repository.Db
    gridlink_bridge: LoopBridge
    gridlink_limits: Limits
    gridlink_session: Session | None = None
    _current_type: str
    respond: Any
    close_when_done: Any

    def gridlink_open_upload(self, name: str) -> UploadFile:
        session = self.gridlink_session
        assert session is not None
        bridge, db, limits = self.gridlink_bridge, self.gridlink_db, self.gridlink_limits
        now = utcnow()
        lease = now + timedelta(seconds=limits.request_timeout_s) + LEASE_MARGIN
        station = session.document["station"]
        slot = bridge.run(upload_tokens.reserve(db, session.token, station, now, lease))
        if slot is None:
            current = bridge.run(upload_tokens.get(db, session.token))
            refusal = rules.ftp_upload_refusal(current, utcnow()) or \
                (409, "in_use", "upload location busy")
            TRANSFERS.labels(ftp_action(session.user, current), refusal[1]).inc()
            raise FilesystemError(refusal[2])
        return UploadFile(bridge, db, slot, name, limits.max_upload_bytes,
                          limits.request_timeout_s)

    def gridlink_open_download(self, name: str) -> DownloadFile:
        session = self.gridlink_session
        assert session is not None
        bridge, db = self.gridlink_bridge, self.gridlink_db
        document = bridge.run(download_tokens.get(db, session.token))
        refusal = rules.download_refusal(document, posixpath.basename(name), utcnow())
        if refusal is not None:
            TRANSFERS.labels(FIRMWARE_DOWNLOAD, refusal[1]).inc()
            raise FilesystemError(refusal[2])
        try:
            stream = bridge.run(repository.firmware_bucket(db).open_download_stream_by_name(
                document["firmware"]))  # type: ignore[index]
        except Exception as exc:  # gridfs.errors.NoFile: the image is gone
            TRANSFERS.labels(FIRMWARE_DOWNLOAD, "not_found").inc()
            raise FilesystemError("no such download") from exc
        bridge.run(download_tokens.count_download(db, session.token))
        return DownloadFile(bridge, stream, name, self.gridlink_limits.request_timeout_s)

    def ftp_PASS(self, line: str) -> None:
        try:
            super().ftp_PASS(line)  # type: ignore[misc]
        except StoreDown as exc:
            TRANSFERS.labels(ftp_action(exc.username), "store_unavailable").inc()
            log.warning("FTP login: mongodb unreachable")
            self.respond("421 Database unavailable, try again later.")
            self.close_when_done()

    def ftp_PORT(self, line: str) -> None:
        self.respond("502 Active mode is not supported: use PASV or EPSV.")

    def ftp_EPRT(self, line: str) -> None:
        self.respond("502 Active mode is not supported: use PASV or EPSV.")

    def on_file_sent(self, file: str) -> None:
        TRANSFERS.labels(FIRMWARE_DOWNLOAD, "ok").inc()

    def on_incomplete_file_sent(self, file: str) -> None:
        TRANSFERS.labels(FIRMWARE_DOWNLOAD, "aborted").inc()


class GridLinkFTPHandler(_GridLinkFTP, FTPHandler):
    dtp_handler = GridFSDTPHandler
    abstracted_fs = TokenFilesystem


class GridLinkFTPSHandler(_GridLinkFTP, TLS_FTPHandler):
    dtp_handler = GridFSTLSDTPHandler
    abstracted_fs = TokenFilesystem
    tls_context: OpenSSLContext | None = None

    @classmethod
    def get_ssl_context(cls) -> Any:
        assert cls.tls_context is not None
        return cls.tls_context.current()

    def ftp_AUTH(self, line: str) -> None:
        self.ssl_context = self.get_ssl_context()  # a certificate renewed since the start
        super().ftp_AUTH(line)


# --- the server -----------------------------------------------------------------------------


class _Server(ThreadedFTPServer):
    """pyftpdlib's threaded server with its stop flag and lock per instance (pyftpdlib keeps
    them on the class, so two servers in one process would stop each other)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._exit = threading.Event()
        self._lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def active(self) -> int:
        with self._lock:
            return sum(1 for task in self._active_tasks if task.is_alive())


class FtpServer:
    """FTP (and FTPS) over one database; :meth:`start` in the service's loop, :meth:`stop`."""

    def __init__(self, db: repository.Db, limits: Limits, *, schemes: tuple[str, ...],
                 passive_ports: range, public_host: str | None = None,
                 tls_context: OpenSSLContext | None = None,
                 auth_failed_delay_s: float = 3.0) -> None:
        if "ftps" in schemes and tls_context is None:
            raise ValueError("ftps needs a TLS certificate (GRIDLINK_TLS_CERT_FILE and "
                             "GRIDLINK_TLS_KEY_FILE)")
        self.db = db
        self.limits = limits
        self.schemes = schemes
        self.passive_ports = passive_ports
        self.public_host = public_host
        self.tls_context = tls_context
        self.auth_failed_delay_s = auth_failed_delay_s
        self.port: int | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()

    def _handler_class(self, bridge: LoopBridge) -> type:
        base: type = GridLinkFTPSHandler if "ftps" in self.schemes else GridLinkFTPHandler
        attributes: dict[str, Any] = {
            "gridlink_db": self.db, "gridlink_bridge": bridge, "gridlink_limits": self.limits,
            "authorizer": TokenAuthorizer(), "passive_ports": list(self.passive_ports),
            "masquerade_address": masquerade_address(self.public_host),
            "permit_foreign_addresses": False, "timeout": self.limits.idle_timeout_s,
            "auth_failed_timeout": self.auth_failed_delay_s, "max_login_attempts": 3,
            "banner": "GridLink file server ready.", "use_sendfile": False,
        }
        if base is GridLinkFTPSHandler:
            attributes["tls_context"] = self.tls_context
            required = "ftp" not in self.schemes
            attributes["tls_control_required"] = required
            attributes["tls_data_required"] = required
        handler = type("ConfiguredFTPHandler", (base,), attributes)
        dtp = type("ConfiguredDTPHandler", (handler.dtp_handler,),
                   {"timeout": self.limits.idle_timeout_s})
        handler.dtp_handler = dtp
        return handler

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port) and serve in threads; the port bound."""
        logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
        bridge = LoopBridge(asyncio.get_running_loop(), self.limits.idle_timeout_s)
        server = _Server((host, port), self._handler_class(bridge), ioloop=IOLoop())
        server.max_cons = MAX_CONNECTIONS
        server.max_cons_per_ip = MAX_CONNECTIONS_PER_ADDRESS
        self._server = server
        self.port = int(server.address[1])
        self._running.set()
        self._thread = threading.Thread(target=self._serve, name="gridlink-ftp", daemon=True)
        self._thread.start()
        return self.port

    def _serve(self) -> None:
        server = self._server
        assert server is not None
        while self._running.is_set():
            server.serve_forever(timeout=0.2, blocking=False, handle_exit=False)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Accept no more connections; let transfers in progress finish within ``grace_s``
        (the loop keeps serving their database steps meanwhile); then close them all."""
        if self._server is None:
            return
        await asyncio.to_thread(self._stop, grace_s)

    def _stop(self, grace_s: float) -> None:
        server = self._server
        assert server is not None
        self._running.clear()
        if self._thread is not None:
            self._thread.join()
        server.close()  # the listening socket: no new connections
        deadline = time.monotonic() + grace_s
        while server.active() and time.monotonic() < deadline:
            time.sleep(0.1)
        left = server.active()
        server.join_timeout = 5
        server.close_all()
        if left:
            log.warning("FTP connections closed at shutdown", extra={"connections": left})
        self._server = None


def masquerade_address(host: str | None) -> str | None:
    """The IPv4 address passive-mode replies announce: GRIDLINK_FTP_PUBLIC_HOST, resolved
    once if it is a name; None (the address the charger connected to) when unset or
    unresolvable."""
    if not host:
        return None
    try:
        return socket.gethostbyname(host)
    except OSError:
        log.warning("GRIDLINK_FTP_PUBLIC_HOST does not resolve: passive replies carry the "
                    "server's own address", extra={"host": host})
        return None


