"""The file server over real TLS, with a test CA and certificates generated here: an https
download verifies against the CA, TLS 1.1 is refused, a replaced certificate is served to
new handshakes, and the commands service's file server job serves https with the reloading
context when GridLink has a certificate."""

from __future__ import annotations

import asyncio
import io
import ssl
import warnings
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509

from commands.files import download_tokens, repository, rules
from commands.files.hooks import serve_files
from commands.files.http_server import FileServer
from commands.files.transfers import Limits
from commands.service import SPEC
from services.memory import MemoryBus
from services.ocpp16 import utcnow
from services.runtime import ServiceRuntime
from services.store import Store
from services.tls import ReloadingContext
from services.topology import Topology
from tests.helpers import ServerFiles, memory_settings, server_files
from tests.processes import free_port, wait_for


@pytest.fixture
def files(tmp_path: Path) -> ServerFiles:
    return server_files(tmp_path)


@pytest.fixture
async def served(db: repository.Db, files: ServerFiles
                 ) -> AsyncIterator[tuple[int, ReloadingContext]]:
    context = ReloadingContext(str(files.cert_file), str(files.key_file))
    server = FileServer(db, Limits(1 << 20), ssl_context=context.context)
    port = await server.start("127.0.0.1", 0)
    yield port, context
    await server.stop()


def client_context(files: ServerFiles) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(files.ca_file))


async def served_certificate(port: int, files: ServerFiles) -> x509.Certificate:
    """The certificate a new handshake gets (verified against the test CA)."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(files),
                                              server_hostname="localhost")
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return x509.load_der_x509_certificate(der)


async def test_an_https_download_verifies_against_the_ca(
        db: repository.Db, files: ServerFiles, served: tuple[int, ReloadingContext]) -> None:
    port, _ = served
    await repository.add_firmware(db, "fw.bin", io.BytesIO(b"firmware image"))
    token = await download_tokens.issue(db, "fw.bin", station=None, command_id=None,
                                        expires_at=utcnow() + timedelta(hours=1))
    url = rules.firmware_url(f"https://127.0.0.1:{port}", token, "fw.bin")
    async with aiohttp.ClientSession() as http:
        async with http.get(url, ssl=client_context(files)) as response:
            assert response.connection is not None and response.connection.transport
            tls = response.connection.transport.get_extra_info("ssl_object")
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert response.status == 200 and await response.read() == b"firmware image"
        with pytest.raises(aiohttp.ClientConnectorCertificateError):  # not trusted otherwise
            await http.get(url, ssl=ssl.create_default_context())
        with pytest.raises(aiohttp.ClientError):  # and never plain http
            await http.get(url.replace("https://", "http://"))


def tls_1_1_client() -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


async def test_tls_1_1_is_refused(files: ServerFiles,
                                  served: tuple[int, ReloadingContext]) -> None:
    port, _ = served
    # The client can speak TLS 1.1: a server that allows it completes the handshake ...
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        permissive.minimum_version = ssl.TLSVersion.TLSv1_1
    permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
    permissive.load_cert_chain(files.cert_file, files.key_file)
    control = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=permissive)
    try:
        control_port = control.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", control_port,
                                                  ssl=tls_1_1_client())
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.1"
        writer.close()
    finally:
        control.close()
    # ... GridLink's file server does not.
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        await asyncio.open_connection("127.0.0.1", port, ssl=tls_1_1_client())


async def test_a_replaced_certificate_is_served_to_new_handshakes(
        files: ServerFiles, served: tuple[int, ReloadingContext]) -> None:
    port, context = served
    first = await served_certificate(port, files)
    assert first.serial_number == files.certificate.serial_number
    stopping = asyncio.Event()
    watcher = asyncio.create_task(context.watch(stopping, interval_s=0.05))
    try:
        second = files.issue("file server two")  # the files replaced, as a rotation does
        serials: list[int] = []

        async def rotated() -> bool:
            serials.append((await served_certificate(port, files)).serial_number)
            return serials[-1] == second.serial_number

        await wait_for(rotated, timeout=10, what="the new certificate served")
    finally:
        stopping.set()
        await watcher
    assert context.reloads == 1 and set(serials) <= {first.serial_number, second.serial_number}


async def test_the_file_server_job_serves_https_and_follows_the_certificate(
        mongo_client: object, files: ServerFiles) -> None:
    port = free_port()
    settings = memory_settings(files_port=port, files_host="127.0.0.1",
                               tls_cert_file=str(files.cert_file),
                               tls_key_file=str(files.key_file))
    assert rules.public_base_url(settings) == f"https://127.0.0.1:{port}"
    runtime = ServiceRuntime(SPEC, settings, bus=MemoryBus(Topology.from_settings(settings)),
                             store=Store.over(mongo_client, "tls_job", component="test"))
    job = asyncio.create_task(serve_files(runtime))
    try:
        async def answers() -> bool:
            try:
                async with aiohttp.ClientSession() as http, http.get(
                        f"https://127.0.0.1:{port}/firmware/x.bin",
                        ssl=client_context(files)) as response:
                    return response.status == 410
            except aiohttp.ClientConnectorError:
                return False

        await wait_for(answers, timeout=10, what="the https file server")
        second = files.issue("file server two")
        await wait_for(lambda: _serves(port, files, second), timeout=20,
                       what="the rotated certificate (watched every 5 s)")
    finally:
        runtime.stopping.set()
        await asyncio.wait_for(job, 15)


async def _serves(port: int, files: ServerFiles, wanted: x509.Certificate) -> bool:
    return (await served_certificate(port, files)).serial_number == wanted.serial_number
