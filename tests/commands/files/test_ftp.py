"""The file server's FTP and FTPS listener against a real FTP client (Python's ftplib) and
the real database (SecantusDB), in-process: uploads land in GridFS and are linked to their
job under a single-use token; downloads go through an expiring download token, resumable
(REST) and repeatable; FTPS is explicit TLS 1.2+ with the https certificate, and when only
ftps is enabled no login or data connection goes in clear; a stopping server finishes the
transfer in progress and takes no new connection.

Long on purpose: FTP and FTPS share one server set-up, one set of ftplib clients and the
token fixtures; split, they would need a helpers module of their own.

ftplib is blocking: each client runs in a thread (``asyncio.to_thread``) while the test's
loop serves the FTP server's database steps, as the commands service's loop does.
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import logging
import ssl
import threading
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from commands.files import download_tokens, repository, rules, upload_tokens
from commands.files.ftp_server import FtpServer
from commands.files.hooks import serve_ftp
from commands.files.jobs import ACCEPTED
from commands.files.transfers import Limits
from commands.service import SPEC
from services.errors import ConfigurationError
from services.memory import MemoryBus
from services.ocpp16 import utcnow
from services.runtime import ServiceRuntime
from services.store import Store
from services.tls import OpenSSLContext
from services.topology import Topology
from tests.helpers import ServerFiles, memory_settings, server_files
from tests.processes import free_port, wait_for

LIMIT = 256 * 1024
TOKEN = "f" * 32
IMAGE = bytes(range(256)) * 1024  # 256 KiB


def passive_ports() -> range:
    first = free_port()
    return range(first, first + 1)


@pytest.fixture
def files(tmp_path: Path) -> ServerFiles:
    return server_files(tmp_path)


async def start(db: repository.Db, schemes: tuple[str, ...] = ("ftp",),
                tls: OpenSSLContext | None = None, **limits: Any) -> FtpServer:
    server = FtpServer(db, Limits(LIMIT, **{"idle_timeout_s": 30.0, **limits}),
                       schemes=schemes, passive_ports=passive_ports(),
                       public_host="127.0.0.1", tls_context=tls, auth_failed_delay_s=0.01)
    await server.start("127.0.0.1", 0)
    return server


@pytest.fixture
async def ftp_port(db: repository.Db) -> AsyncIterator[int]:
    server = await start(db)
    assert server.port is not None
    yield server.port
    await server.stop(grace_s=1)


@pytest.fixture
async def ftps_port(db: repository.Db, files: ServerFiles) -> AsyncIterator[int]:
    """A listener that accepts ftps only (TLS required for logins and data)."""
    server = await start(db, ("ftps",), OpenSSLContext(str(files.cert_file),
                                                       str(files.key_file)))
    assert server.port is not None
    yield server.port
    await server.stop(grace_s=1)


async def slot(db: repository.Db, station: str = "CP/1", *, token: str = TOKEN,
               expires_in: timedelta = timedelta(hours=1),
               kind: str = upload_tokens.DIAGNOSTICS) -> str:
    """An upload token and its open job; the command id."""
    command_id = uuid.uuid4().hex
    assert await upload_tokens.register(db, token, station, command_id, utcnow() + expires_in,
                                        kind)
    now = utcnow()
    await db[repository.UPLOADS[kind][1]].insert_one({
        "_id": command_id, "station": station, "status": ACCEPTED, "since": now,
        "status_at": now, "updated_at": now, "history": []})
    return command_id


async def image(db: repository.Db, name: str = "fw-1.bin",
                expires_in: timedelta = timedelta(hours=1)) -> str:
    """A stored image and a download token for it."""
    if not await repository.firmware_exists(db, name):
        await repository.add_firmware(db, name, io.BytesIO(IMAGE))
    return await download_tokens.issue(db, name, station="CP1", command_id=None,
                                       expires_at=utcnow() + expires_in)


def connect(port: int, client: Callable[[], ftplib.FTP] = ftplib.FTP) -> ftplib.FTP:
    ftp = client()
    ftp.connect("127.0.0.1", port, timeout=30)
    return ftp


def store(port: int, path: str, data: bytes) -> str:
    """Log in with the upload token and STOR ``data`` at ``path``; the server's answer."""
    with connect(port) as ftp:
        ftp.login(rules.FTP_UPLOAD_USER, TOKEN)
        return ftp.storbinary(f"STOR {path}", io.BytesIO(data))


def retrieve(port: int, token: str, path: str, rest: int | None = None) -> bytes:
    with connect(port) as ftp:
        ftp.login(rules.FTP_DOWNLOAD_USER, token)
        out = io.BytesIO()
        ftp.retrbinary(f"RETR {path}", out.write, rest=rest)
        return out.getvalue()


async def stored(db: repository.Db, command_id: str) -> list[dict[str, Any]]:
    return await db[f"{repository.DIAGNOSTICS_BUCKET}.files"].find(
        {"metadata.command_id": command_id}).to_list()


# --- plain FTP ----------------------------------------------------------------------------


async def test_an_upload_lands_in_gridfs_once_per_token(db: repository.Db, ftp_port: int
                                                        ) -> None:
    command_id = await slot(db)
    data = b"diagnostics\n" * 5000
    # As SAP's simulator does: STOR {location path}{fileName}.
    answer = await asyncio.to_thread(store, ftp_port, "/diagnostics/CP%2F1/diag.tar.gz", data)
    assert answer.startswith("226")
    [file] = await stored(db, command_id)
    assert (file["filename"], file["length"]) == ("diag.tar.gz", len(data))
    assert file["metadata"]["station"] == "CP/1"
    job = await db[repository.DIAGNOSTICS_JOBS].find_one({"_id": command_id})
    assert job["file_id"] == file["_id"] and job["uploaded_size"] == len(data)
    token = await upload_tokens.get(db, TOKEN)
    assert token["used_at"] is not None and token["file_id"] == file["_id"]
    # One upload per token: a second login is refused.
    with pytest.raises(ftplib.error_perm, match=r"530 .*used already"):
        await asyncio.to_thread(store, ftp_port, "again.tar.gz", b"x")
    assert len(await stored(db, command_id)) == 1


async def test_an_upload_into_the_current_directory_and_a_log_upload(
        db: repository.Db, ftp_port: int) -> None:
    command_id = await slot(db, kind=upload_tokens.LOG)

    def cwd_then_store() -> str:
        with connect(ftp_port) as ftp:
            ftp.login(rules.FTP_UPLOAD_USER, TOKEN)
            ftp.mkd("/diagnostics/CP1")  # some chargers make the directory first
            ftp.cwd("/diagnostics/CP1")
            return ftp.storbinary("STOR security.log", io.BytesIO(b"log line\n"))

    assert (await asyncio.to_thread(cwd_then_store)).startswith("226")
    files = await db[f"{repository.LOG_BUCKET}.files"].find(
        {"metadata.command_id": command_id}).to_list()
    assert [f["filename"] for f in files] == ["security.log"]


async def test_too_large_an_upload_is_refused_and_frees_its_token(db: repository.Db,
                                                                   ftp_port: int) -> None:
    command_id = await slot(db)
    with pytest.raises(ftplib.error_temp, match="426"):
        await asyncio.to_thread(store, ftp_port, "huge.bin", b"z" * (LIMIT + 1))
    assert await stored(db, command_id) == []
    assert await db[f"{repository.DIAGNOSTICS_BUCKET}.chunks"].count_documents({}) == 0
    token = await upload_tokens.get(db, TOKEN)
    assert token.get("used_at") is None and token.get("reservation") is None
    # The charger may try again (smaller).
    assert (await asyncio.to_thread(store, ftp_port, "small.bin", b"ok")).startswith("226")


@pytest.mark.parametrize(("user", "password"), [
    (rules.FTP_UPLOAD_USER, "u" * 32),    # unknown token
    (rules.FTP_UPLOAD_USER, "short"),     # not a token at all
    ("anonymous", TOKEN),                 # not a GridLink user
    (rules.FTP_DOWNLOAD_USER, TOKEN),     # an upload token is no download token
])
async def test_logins_are_tokens(db: repository.Db, ftp_port: int, user: str,
                                 password: str) -> None:
    await slot(db)

    def login() -> None:
        with connect(ftp_port) as ftp:
            ftp.login(user, password)

    with pytest.raises(ftplib.error_perm, match="530"):
        await asyncio.to_thread(login)


async def test_an_expired_upload_token_is_refused(db: repository.Db, ftp_port: int) -> None:
    await slot(db, expires_in=timedelta(seconds=-1))
    with pytest.raises(ftplib.error_perm, match=r"530 .*expired"):
        await asyncio.to_thread(store, ftp_port, "late.bin", b"x")


async def test_a_download_resumes_and_repeats_until_the_token_expires(
        db: repository.Db, ftp_port: int) -> None:
    token = await image(db)
    assert await asyncio.to_thread(retrieve, ftp_port, token, "/firmware/fw-1.bin") == IMAGE
    # A retry within expiry, resuming where a broken download stopped (REST).
    assert await asyncio.to_thread(retrieve, ftp_port, token, "/firmware/fw-1.bin",
                                   100_000) == IMAGE[100_000:]

    def size_and_listing() -> tuple[int | None, list[str]]:
        with connect(ftp_port) as ftp:
            ftp.login(rules.FTP_DOWNLOAD_USER, token)
            ftp.voidcmd("TYPE I")
            return ftp.size("/firmware/fw-1.bin"), ftp.nlst("/firmware")

    size, names = await asyncio.to_thread(size_and_listing)
    assert size == len(IMAGE) and names == ["fw-1.bin"]
    assert (await download_tokens.get(db, token))["downloads"] == 2
    # Another image's name through this token: no such file.
    await repository.add_firmware(db, "other.bin", io.BytesIO(b"other"))
    with pytest.raises(ftplib.error_perm, match="550"):
        await asyncio.to_thread(retrieve, ftp_port, token, "/firmware/other.bin")
    # Read-only: a download login stores nothing.
    def overwrite() -> None:
        with connect(ftp_port) as ftp:
            ftp.login(rules.FTP_DOWNLOAD_USER, token)
            ftp.storbinary("STOR /firmware/fw-1.bin", io.BytesIO(b"x"))

    with pytest.raises(ftplib.error_perm, match="550"):
        await asyncio.to_thread(overwrite)
    expired = await image(db, expires_in=timedelta(seconds=-1))
    with pytest.raises(ftplib.error_perm, match=r"530 .*expired"):
        await asyncio.to_thread(retrieve, ftp_port, expired, "/firmware/fw-1.bin")


async def test_active_mode_is_refused(db: repository.Db, ftp_port: int) -> None:
    token = await image(db)

    def active() -> None:
        with connect(ftp_port) as ftp:
            ftp.login(rules.FTP_DOWNLOAD_USER, token)
            ftp.set_pasv(False)
            ftp.retrbinary("RETR /firmware/fw-1.bin", lambda _: None)

    with pytest.raises(ftplib.error_perm, match="502"):
        await asyncio.to_thread(active)


async def test_an_upload_past_the_request_timeout_is_cut_and_frees_its_token(
        db: repository.Db) -> None:
    server = await start(db, request_timeout_s=0.0)  # every write is past the deadline
    assert server.port is not None
    command_id = await slot(db)
    try:
        with pytest.raises(ftplib.error_temp, match="426"):
            await asyncio.to_thread(store, server.port, "slow.bin", b"s" * 1000)
    finally:
        await server.stop(grace_s=1)
    assert await stored(db, command_id) == []
    assert (await upload_tokens.get(db, TOKEN)).get("reservation") is None


async def test_tokens_are_never_logged(db: repository.Db, ftp_port: int,
                                       caplog: pytest.LogCaptureFixture) -> None:
    for name in ("gridlink", "pyftpdlib"):  # pyftpdlib even at DEBUG (it logs commands)
        caplog.set_level(logging.DEBUG, logger=name)
    await slot(db)
    token = await image(db)
    await asyncio.to_thread(store, ftp_port, "diag.bin", b"d" * 100)
    await asyncio.to_thread(retrieve, ftp_port, token, "/firmware/fw-1.bin")
    with pytest.raises(ftplib.error_perm):
        await asyncio.to_thread(store, ftp_port, "again.bin", b"x")  # refused: used
    ours = [r for r in caplog.records if r.name.split(".")[0] in ("gridlink", "pyftpdlib")]
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in ours)
    assert "file uploaded" in text and "PASS ******" in text  # logged, the password masked
    assert TOKEN not in text and token not in text


async def test_a_database_outage_says_try_again_later() -> None:
    """MongoDB unreachable: 421 (a charger retries), not 530 (a refused login)."""
    unreachable: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{free_port()}/", serverSelectionTimeoutMS=200,
        connectTimeoutMS=200)
    server = await start(unreachable["nowhere"])
    assert server.port is not None
    try:
        with pytest.raises(ftplib.error_temp, match="421 Database unavailable"):
            await asyncio.to_thread(store, server.port, "x.bin", b"x")
    finally:
        await server.stop(grace_s=1)
        await unreachable.close()


# --- FTPS ---------------------------------------------------------------------------------


def tls_client(files: ServerFiles, context: ssl.SSLContext | None = None
               ) -> Callable[[], ftplib.FTP]:
    return lambda: ftplib.FTP_TLS(context=context or ssl.create_default_context(
        cafile=str(files.ca_file)))


async def test_ftps_upload_and_download_over_tls(db: repository.Db, files: ServerFiles,
                                                 ftps_port: int) -> None:
    command_id = await slot(db)
    token = await image(db)
    data = b"secure diagnostics" * 1000

    def transfers() -> tuple[str, str, bytes]:
        with connect(ftps_port, tls_client(files)) as ftp:
            assert isinstance(ftp, ftplib.FTP_TLS)
            ftp.login(rules.FTP_UPLOAD_USER, TOKEN)  # AUTH TLS first, then USER/PASS
            version = ftp.sock.version()  # type: ignore[union-attr]
            ftp.prot_p()
            answer = ftp.storbinary("STOR /diagnostics/CP%2F1/diag.zip", io.BytesIO(data))
        with connect(ftps_port, tls_client(files)) as ftp:
            assert isinstance(ftp, ftplib.FTP_TLS)
            ftp.login(rules.FTP_DOWNLOAD_USER, token)
            ftp.prot_p()
            out = io.BytesIO()
            ftp.retrbinary("RETR /firmware/fw-1.bin", out.write)
        return version or "", answer, out.getvalue()

    version, answer, downloaded = await asyncio.to_thread(transfers)
    assert version in ("TLSv1.2", "TLSv1.3") and answer.startswith("226")
    assert downloaded == IMAGE
    [file] = await stored(db, command_id)
    assert file["length"] == len(data)


async def test_ftps_only_refuses_anything_in_clear(db: repository.Db, files: ServerFiles,
                                                   ftps_port: int) -> None:
    await slot(db)

    def plain_login() -> None:
        with connect(ftps_port) as ftp:
            ftp.login(rules.FTP_UPLOAD_USER, TOKEN)

    with pytest.raises(ftplib.error_perm, match="550 SSL/TLS required"):
        await asyncio.to_thread(plain_login)

    def clear_data_channel() -> None:
        with connect(ftps_port, tls_client(files)) as ftp:
            ftp.login(rules.FTP_UPLOAD_USER, TOKEN)  # no PROT P
            ftp.storbinary("STOR x.bin", io.BytesIO(b"x"))

    with pytest.raises(ftplib.error_perm, match="550 SSL/TLS required on the data"):
        await asyncio.to_thread(clear_data_channel)
    assert (await upload_tokens.get(db, TOKEN)).get("used_at") is None


async def test_ftps_refuses_tls_1_1_and_untrusted_clients_see_the_certificate(
        db: repository.Db, files: ServerFiles, ftps_port: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname = False
        old.verify_mode = ssl.CERT_NONE
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")

    def handshake(context: ssl.SSLContext) -> None:
        with connect(ftps_port, tls_client(files, context)) as ftp:
            assert isinstance(ftp, ftplib.FTP_TLS)
            ftp.auth()

    with pytest.raises((ssl.SSLError, ConnectionError, EOFError)):
        await asyncio.to_thread(handshake, old)
    with pytest.raises(ssl.SSLCertVerificationError):  # the test CA's, not a public one
        await asyncio.to_thread(handshake, ssl.create_default_context())


# --- stopping -----------------------------------------------------------------------------


class Paced(io.RawIOBase):
    """A body that sends its first part, then waits for ``go`` before the rest."""

    def __init__(self, first: bytes, rest: bytes) -> None:
        self.parts = [first, rest]
        self.go = threading.Event()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self.parts:
            return b""
        if len(self.parts) == 1:
            assert self.go.wait(30), "never told to go on"
        return self.parts.pop(0)


async def test_stopping_finishes_the_upload_in_progress_and_takes_no_new_one(
        db: repository.Db) -> None:
    server = await start(db)
    port = server.port
    assert port is not None
    command_id = await slot(db)
    body = Paced(b"a" * 1000, b"b" * 1000)
    upload = asyncio.create_task(asyncio.to_thread(store_paced, port, body))
    await wait_for(lambda: _reserved(db), what="the upload under way")
    stopping = asyncio.create_task(server.stop(grace_s=30))
    await wait_for(lambda: _refused(port), what="no new connections")
    assert not stopping.done()
    body.go.set()
    assert (await upload).startswith("226")
    await stopping
    [file] = await stored(db, command_id)
    assert file["length"] == 2000


def store_paced(port: int, body: Paced) -> str:
    with connect(port) as ftp:
        ftp.login(rules.FTP_UPLOAD_USER, TOKEN)
        return ftp.storbinary("STOR paced.bin", body, blocksize=1000)  # type: ignore[arg-type]


async def _reserved(db: repository.Db) -> bool:
    token = await upload_tokens.get(db, TOKEN)
    return bool(token and token.get("reservation"))


async def _refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


async def test_the_ftp_job_serves_ftps_until_the_service_stops(mongo_client: object,
                                                               files: ServerFiles) -> None:
    port = free_port()
    settings = memory_settings(ftp_port=port, files_host="127.0.0.1",
                               ftp_passive_ports=f"{port + 1}-{port + 1}",
                               tls_cert_file=str(files.cert_file),
                               tls_key_file=str(files.key_file))
    assert settings.ftp_schemes == ("ftps",)  # a certificate: no plain FTP by default
    assert rules.public_base_url(settings, "ftps") == f"ftps://127.0.0.1:{port}"
    runtime = ServiceRuntime(SPEC, settings, bus=MemoryBus(Topology.from_settings(settings)),
                             store=Store.over(mongo_client, "ftp_job", component="test"))
    job = asyncio.create_task(serve_ftp(runtime))
    try:
        def greeting() -> str:
            with connect(port, tls_client(files)) as ftp:
                assert isinstance(ftp, ftplib.FTP_TLS)
                return ftp.auth()

        async def answers() -> bool:
            try:
                return (await asyncio.to_thread(greeting)).startswith("234")
            except OSError:
                return False

        await wait_for(answers, timeout=10, what="the FTPS listener")
    finally:
        runtime.stopping.set()
        await asyncio.wait_for(job, 15)
    assert await _refused(port)


def test_ftps_without_a_certificate_is_a_configuration_error() -> None:
    settings = memory_settings(ftp_port=2121, ftp_protocols=["ftps"])
    with pytest.raises(ConfigurationError, match="no TLS certificate"):
        SPEC.build(ServiceRuntime(SPEC, settings,
                                  bus=MemoryBus(Topology.from_settings(settings))))
