"""One attempt over real sockets: https to the checked address still verifies the URL's
host name (the certificate below names ``localhost`` only, never 127.0.0.1, where the
request goes), an untrusted certificate fails, and an answer is read only so far."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.webhooks.sender import Sender

Served = tuple[int, list[bytes]]


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
           issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=1))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(path: Path, *items: x509.Certificate | ec.EllipticCurvePrivateKey) -> Path:
    data = b"".join(
        item.public_bytes(serialization.Encoding.PEM) if isinstance(item, x509.Certificate)
        else item.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        for item in items)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(the server's context: a certificate for DNS:localhost only, the client's: trusts
    its CA)."""
    directory = tmp_path_factory.mktemp("webhook-tls")
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Webhook Test CA")])
    ca = _issue("Webhook Test CA", ca_key, ca_name, ca_key, ca=True)
    leaf = _issue("localhost", key, ca_name, ca_key, ca=False)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(_pem(directory / "leaf.pem", leaf, key))
    client = ssl.create_default_context(cafile=str(_pem(directory / "ca.pem", ca)))
    return server, client


async def _serve(context: ssl.SSLContext | None, answer: bytes) -> AsyncIterator[Served]:
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            requests.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(answer)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1], requests
    server.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


@pytest.fixture
async def https(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> AsyncIterator[Served]:
    async for served in _serve(tls[0], OK):
        yield served


async def test_https_to_the_checked_address_verifies_the_url_host(
        https: Served, tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    port, requests = https
    sender = Sender(timeout_s=5, max_response_bytes=64, allow_private=True, verify=tls[1])
    try:
        outcome = await sender.attempt(f"https://localhost:{port}/hook?x=1", "{}",
                                       {"X-Test": "1"})
        assert (outcome.status, outcome.error, outcome.response) == (200, None, "ok")
        [head] = requests
        assert head.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
        assert f"host: localhost:{port}".encode() in head.lower()
        # the same server by its address: the certificate does not name 127.0.0.1
        refused = await sender.attempt(f"https://127.0.0.1:{port}/hook", "{}", {})
        assert refused.status is None and refused.error is not None
        assert "certificate" in refused.error.lower() or "ssl" in refused.error.lower()
    finally:
        await sender.close()
    untrusting = Sender(timeout_s=5, max_response_bytes=64, allow_private=True)
    try:  # the system's CAs do not know the test CA
        outcome = await untrusting.attempt(f"https://localhost:{port}/hook", "{}", {})
        assert outcome.status is None and "certificate" in (outcome.error or "").lower()
    finally:
        await untrusting.close()


async def test_a_long_answer_is_read_only_so_far() -> None:
    body = b"x" * 100_000
    answer = (b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
              % len(body)) + body
    async for port, _ in _serve(None, answer):
        sender = Sender(timeout_s=5, max_response_bytes=100, allow_private=True)
        try:
            outcome = await sender.attempt(f"http://127.0.0.1:{port}/", "{}", {})
        finally:
            await sender.close()
        assert outcome.status == 500 and outcome.response == "x" * 100
