"""TLS contexts of GridLink's listeners and what client certificates say, with certificates
made here (:mod:`tests.certificates`)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services import tls
from services.errors import ConfigurationError
from tests.certificates import Pki, escaped_pem


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(Path(tmp_path_factory.mktemp("pki")))


def test_only_tls_12_and_later_with_aead_suites(pki: Pki) -> None:
    context = tls.server_context(str(pki.server.cert), str(pki.server.key))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    tls12 = [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 and all("GCM" in name for name in tls12)
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.verify_mode == ssl.CERT_NONE  # no client CA: certificates not asked for
    with_ca = tls.server_context(str(pki.server.cert), str(pki.server.key),
                                 str(pki.charger_ca.cert))
    assert with_ca.verify_mode == ssl.CERT_OPTIONAL  # profile 2 shows none, 3 one


def test_unloadable_files_are_a_one_line_configuration_error(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot load TLS files"):
        tls.ReloadingContext(str(tmp_path / "missing.pem"), str(pki.server.key))
    with pytest.raises(ConfigurationError):  # the key of another certificate
        tls.ReloadingContext(str(pki.server.cert), str(pki.root.key))


def test_reload_follows_the_files_and_keeps_the_old_pair_when_broken(
        pki: Pki, tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "c.key"
    cert.write_bytes(pki.server.cert.read_bytes())
    key.write_bytes(pki.server.key.read_bytes())
    reloading = tls.ReloadingContext(str(cert), str(key))
    assert not reloading.reload_if_changed()
    other = pki.server_copy("other")
    cert.write_bytes(other.cert.read_bytes())  # the key does not match yet
    assert not reloading.reload_if_changed() and reloading.reloads == 0
    key.write_bytes(other.key.read_bytes())
    assert reloading.reload_if_changed() and reloading.reloads == 1


def test_a_forwarded_certificate_is_verified_against_the_client_ca(pki: Pki) -> None:
    good = tls.certificate_from_header(escaped_pem(pki.client("CP-1")),
                                       str(pki.charger_ca.cert))
    assert (good.common_name, good.organizations) == ("CP-1", ("GridLink Test CPO",))
    with pytest.raises(tls.UntrustedCertificate):
        tls.certificate_from_header(escaped_pem(pki.client("CP-1", stranger=True)),
                                    str(pki.charger_ca.cert))
    expired = pki.client("CP-1", not_before=datetime.now(UTC) - timedelta(days=60), days=30)
    with pytest.raises(tls.UntrustedCertificate):
        tls.certificate_from_header(escaped_pem(expired), str(pki.charger_ca.cert))
    with pytest.raises(tls.UntrustedCertificate, match="not PEM"):
        tls.certificate_from_header("garbage", str(pki.charger_ca.cert))


@pytest.mark.parametrize(("address", "trusted"), [
    ("10.0.0.7", True), ("10.255.1.1", True), ("192.0.2.1", True), ("192.0.2.2", False),
    ("11.0.0.1", False), ("not-an-address", False), (None, False),
])
def test_trusted_proxies_by_address_or_network(address: str | None, trusted: bool) -> None:
    assert tls.trusted(address, ["10.0.0.0/8", "192.0.2.1", "bogus"]) is trusted


def test_handshake_failures_have_bounded_names() -> None:
    error = ssl.SSLError(1, "x")
    error.reason = "UNSUPPORTED_PROTOCOL"
    assert tls.handshake_failure_reason(error) == "protocol_version"
    error.reason = "SOMETHING_NEW"
    assert tls.handshake_failure_reason(error) == "other"


async def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str:
    """Connect ``client`` to a server with ``server``: the cipher agreed on."""
    import asyncio

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client,
                                                  server_hostname="127.0.0.1")
        cipher = writer.get_extra_info("ssl_object").cipher()[0]
        writer.close()
        return str(cipher)
    finally:
        listener.close()


async def test_a_client_with_only_cbc_suites_is_refused(pki: Pki) -> None:
    server = tls.server_context(str(pki.server.cert), str(pki.server.key))
    cbc = pki.client_context(maximum=ssl.TLSVersion.TLSv1_2)
    cbc.set_ciphers("AES128-SHA:ECDHE-ECDSA-AES128-SHA")  # what A00.FR.321/425 rule out
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await handshake(server, cbc)
    gcm = pki.client_context(maximum=ssl.TLSVersion.TLSv1_2)
    assert "GCM" in await handshake(server, gcm)
