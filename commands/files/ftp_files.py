"""What an FTP login sees and moves, for :mod:`commands.files.ftp_server`: the login
(:class:`TokenAuthorizer`: the token is the password), a virtual filesystem with no local
files (:class:`TokenFilesystem`), and the file objects pyftpdlib's data connection writes
and reads — a GridFS upload under a reserved upload token (:class:`UploadFile`) and a
firmware image (:class:`DownloadFile`).

They run in an FTP connection's thread; every database step is run on the service's
asyncio loop through a :class:`LoopBridge` and waited for (at most
GRIDLINK_FILES_IDLE_TIMEOUT_S), with the HTTP file server's token rules and GridFS code.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import posixpath
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from pyftpdlib.authorizers import AuthenticationFailed
from pyftpdlib.filesystems import AbstractedFS, FilesystemError
from pymongo.errors import ConnectionFailure

from commands.files import download_tokens, repository, rules, upload_tokens
from commands.files.transfers import (
    DIAGNOSTICS_UPLOAD,
    FIRMWARE_DOWNLOAD,
    TRANSFER_BYTES,
    TRANSFERS,
)
from commands.files.uploads import (
    ACTIONS,
    complete_upload,
    default_filename,
    open_upload_stream,
    upload_metadata,
)
from services.errors import StoreUnavailable
from services.ocpp16 import utcnow

log = logging.getLogger("gridlink.files.ftp")

T = TypeVar("T")


class LoopBridge:
    """Runs coroutines on the service's asyncio loop from an FTP connection's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self.loop = loop
        self.timeout_s = timeout_s

    def run(self, step: Coroutine[Any, Any, T]) -> T:
        """The result of ``step``, run on the loop; TimeoutError after ``timeout_s``."""
        future = asyncio.run_coroutine_threadsafe(step, self.loop)
        try:
            return future.result(self.timeout_s)
        except TimeoutError:
            future.cancel()
            raise


@dataclass
class Session:
    """What one FTP login may do: its token's document (and, for a download, the image)."""

    user: str
    token: str
    document: dict[str, Any]


# --- files the data connection reads and writes -----------------------------------------


class UploadFile:
    """A GridFS upload under a reserved upload token, written by pyftpdlib's data connection;
    :meth:`finish` stores it (complete) or removes it and frees the token (aborted)."""

    def __init__(self, bridge: LoopBridge, db: repository.Db, slot: dict[str, Any],
                 name: str, limit: int, deadline_s: float) -> None:
        self.bridge = bridge
        self.db = db
        self.slot = slot
        self.name = name  # pyftpdlib logs it: the path, never the token
        self.limit = limit
        self.deadline = time.monotonic() + deadline_s
        self.timed_out = False
        self.size = 0
        self.closed = False
        self.finished = False
        filename = rules.safe_filename(posixpath.basename(name)) or default_filename(slot)
        self.metadata = upload_metadata(slot, filename, "application/octet-stream")

        async def open_stream() -> Any:  # made on the loop that will drive it
            return open_upload_stream(db, slot, filename, self.metadata)

        self.stream = bridge.run(open_stream())

    def write(self, chunk: bytes) -> int:
        self.size += len(chunk)
        if self.size > self.limit:
            raise OSError(errno.EFBIG, f"larger than {self.limit} bytes")
        if time.monotonic() > self.deadline:  # GRIDLINK_FILES_REQUEST_TIMEOUT_S, as over HTTP
            self.timed_out = True
            raise OSError(errno.ETIMEDOUT, "upload took too long")
        self.bridge.run(self.stream.write(chunk))
        return len(chunk)

    def close(self) -> None:
        self.closed = True  # the outcome is settled by finish(), which knows it

    def finish(self, complete: bool) -> bool:
        """Store the upload (True) or, when incomplete or refused, remove what was written
        and release the token (False)."""
        if self.finished:
            return complete
        self.finished = True
        action = ACTIONS[self.slot.get("kind", upload_tokens.DIAGNOSTICS)]
        try:
            if complete:
                self.bridge.run(self._complete())
                TRANSFER_BYTES.labels(action).inc(self.size)
                return True
        except Exception as exc:
            log.warning("FTP upload could not be stored", extra={
                "station": self.slot["station"], "error": type(exc).__name__})
        outcome = "too_large" if self.size > self.limit else \
            "timeout" if self.timed_out else "aborted"
        TRANSFERS.labels(action, outcome).inc()
        with contextlib.suppress(Exception):
            self.bridge.run(self._abort())
        return False

    async def _complete(self) -> None:
        stream = self.stream
        await stream.set("metadata", {**self.metadata, "size": self.size})
        await stream.close()
        file = {"_id": stream._id, "filename": self.metadata["filename"], "length": self.size,
                "uploadDate": stream.upload_date, "metadata": self.metadata}
        await complete_upload(self.db, self.slot, self.slot["reservation"], file)

    async def _abort(self) -> None:
        with contextlib.suppress(Exception):
            await self.stream.abort()
        await upload_tokens.release(self.db, self.slot["_id"], self.slot["reservation"])


class DownloadFile:
    """A firmware image in GridFS, read by pyftpdlib's data connection (seekable: REST)."""

    def __init__(self, bridge: LoopBridge, stream: Any, name: str, deadline_s: float) -> None:
        self.bridge = bridge
        self.stream = stream
        self.name = name
        self.deadline = time.monotonic() + deadline_s
        self.closed = False

    def seek(self, position: int) -> None:
        self.bridge.run(self.stream.seek(position))

    def read(self, size: int = -1) -> bytes:
        if time.monotonic() > self.deadline:  # cut, as over HTTP (the charger may resume)
            TRANSFERS.labels(FIRMWARE_DOWNLOAD, "timeout").inc()
            raise OSError(errno.ETIMEDOUT, "download took too long")
        chunk: bytes = self.bridge.run(self.stream.read(size))
        TRANSFER_BYTES.labels(FIRMWARE_DOWNLOAD).inc(len(chunk))
        return chunk

    def close(self) -> None:
        self.closed = True


# --- the virtual filesystem ---------------------------------------------------------------


class TokenFilesystem(AbstractedFS):
    """What a logged-in charger sees: any directory to change into, and — for a download
    token — its one image (in every directory, so ``RETR name`` works wherever it is)."""

    @property
    def _handler(self) -> Any:
        return self.cmd_channel

    @property
    def _session(self) -> Session:
        return self._handler.gridlink_session  # type: ignore[no-any-return]

    def _image_name(self) -> str | None:
        session = self._session
        return session.document["firmware"] if session.user == rules.FTP_DOWNLOAD_USER \
            else None

    def _is_image(self, path: str) -> bool:
        name = self._image_name()
        return name is not None and posixpath.basename(path) == name

    # paths are virtual: nothing on the local disk is consulted
    def realpath(self, path: str) -> str:
        return posixpath.normpath(path)

    def validpath(self, path: str) -> bool:
        return True

    def chdir(self, path: str) -> None:
        self.cwd = self.fs2ftp(path)

    def mkdir(self, path: str) -> None:
        """Chargers may create the upload directory first: it exists already."""

    def isdir(self, path: str) -> bool:
        return not self._is_image(path)

    def isfile(self, path: str) -> bool:
        return self._is_image(path)

    def islink(self, path: str) -> bool:
        return False

    def lexists(self, path: str) -> bool:
        return True

    def listdir(self, path: str) -> list[str]:
        name = self._image_name()
        return [name] if name else []

    def _image(self) -> dict[str, Any]:
        image: dict[str, Any] | None = self._handler.gridlink_bridge.run(
            repository.firmware_image(self._handler.gridlink_db, self._session.document[
                "firmware"]))
        if image is None:
            raise FilesystemError("no such file")
        return image

    def getsize(self, path: str) -> int:
        if not self._is_image(path):
            raise FilesystemError("no such file")
        return int(self._image()["length"])

    def getmtime(self, path: str) -> float:
        if not self._is_image(path):
            raise FilesystemError("no such file")
        return float(self._image()["uploadDate"].timestamp())

    def open(self, filename: str, mode: str) -> Any:
        handler, session = self._handler, self._session
        if session.user == rules.FTP_DOWNLOAD_USER:
            if "r" not in mode or "+" in mode:
                raise FilesystemError("read-only: this login downloads one image")
            return handler.gridlink_open_download(filename)
        if mode != "wb":
            raise FilesystemError("resuming or appending an upload is not supported: "
                                  "STOR the file whole")
        return handler.gridlink_open_upload(filename)

    def remove(self, path: str) -> None:
        raise FilesystemError("not permitted")

    def rename(self, src: str, dst: str) -> None:
        raise FilesystemError("not permitted")

    def mkstemp(self, *args: Any, **kwargs: Any) -> Any:
        raise FilesystemError("STOU is not supported: STOR a name")


# --- logins -------------------------------------------------------------------------------


class StoreDown(Exception):
    """MongoDB did not answer a login's question: the charger should try again later (421),
    not take it for a refusal (530)."""

    def __init__(self, username: str) -> None:
        super().__init__("database unavailable")
        self.username = username


class TokenAuthorizer:
    """Logins are tokens (the password) for one purpose (the user name):
    ``diagnostics`` + upload token, ``firmware`` + download token."""

    PERMS = {rules.FTP_UPLOAD_USER: "emw", rules.FTP_DOWNLOAD_USER: "elr"}

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        if username not in self.PERMS or not rules.token_is_well_formed(password):
            TRANSFERS.labels(ftp_action(username), "unknown_token").inc()
            raise AuthenticationFailed("unknown login")
        bridge, db = handler.gridlink_bridge, handler.gridlink_db
        now = utcnow()
        try:
            if username == rules.FTP_UPLOAD_USER:
                document = bridge.run(upload_tokens.get(db, password))
                refusal = rules.ftp_upload_refusal(document, now)
            else:
                document = bridge.run(download_tokens.get(db, password))
                refusal = rules.ftp_download_refusal(document, now)
        except (ConnectionFailure, StoreUnavailable, TimeoutError) as exc:
            raise StoreDown(username) from exc
        if refusal is not None:
            TRANSFERS.labels(ftp_action(username, document), refusal[1]).inc()
            raise AuthenticationFailed(refusal[2])
        handler.gridlink_session = Session(username, password, document)

    def get_home_dir(self, username: str) -> str:
        return "/"

    def has_user(self, username: str) -> bool:
        return username in self.PERMS

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        return perm in self.PERMS.get(username, "")

    def get_perms(self, username: str) -> str:
        return self.PERMS.get(username, "")

    def get_msg_login(self, username: str) -> str:
        return "Logged in."

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."

    def impersonate_user(self, username: str, password: str) -> None:
        """Nothing to impersonate: there are no local files."""

    def terminate_impersonation(self, username: str) -> None:
        """Nothing to impersonate: there are no local files."""


def ftp_action(username: str, document: dict[str, Any] | None = None) -> str:
    """The metric's action of a login: a firmware download, or the token's kind of upload."""
    if username == rules.FTP_DOWNLOAD_USER:
        return FIRMWARE_DOWNLOAD
    if document is not None:
        return ACTIONS[document.get("kind", upload_tokens.DIAGNOSTICS)]
    return DIAGNOSTICS_UPLOAD
