"""The reasons that key the report's connect failures, which are definite, and the security
events they make a charger log; the TLS contexts and the Basic header a charger connects with."""

from __future__ import annotations

import base64
import socket
import ssl
from pathlib import Path

import pytest
from websockets.exceptions import InvalidMessage

from simulator.connections import (
    backoff,
    connect_failure_reason,
    is_definite,
    security_event_for,
)
from simulator.credentials import basic_authorization, headers, read_password_file
from simulator.errors import TlsSetupError
from simulator.tls import ClientContexts, client_context


def test_failure_reasons_are_short_and_stable() -> None:
    assert connect_failure_reason(ConnectionRefusedError()) == "connection refused"
    assert connect_failure_reason(TimeoutError()) == "timeout"
    assert connect_failure_reason(socket.gaierror()) == "name resolution failed"
    assert connect_failure_reason(OSError(99, "Cannot assign requested address")) == (
        "Cannot assign requested address"
    )
    assert connect_failure_reason(RuntimeError("x")) == "RuntimeError"


def _ssl_error(cls: type[ssl.SSLError], reason: str) -> ssl.SSLError:
    error = cls(1, f"[SSL: {reason}] ...")
    error.reason = reason  # type: ignore[misc]
    return error


def test_tls_failure_reasons() -> None:
    unverified = _ssl_error(ssl.SSLCertVerificationError, "CERTIFICATE_VERIFY_FAILED")
    unverified.verify_message = "unable to get local issuer certificate"  # type: ignore[attr-defined]
    reason = connect_failure_reason(unverified)
    assert reason == "TLS: server certificate not verified (unable to get local issuer certificate)"
    assert is_definite(reason) and security_event_for(reason) == "InvalidCentralSystemCertificate"
    for openssl in ("TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL"):
        reason = connect_failure_reason(_ssl_error(ssl.SSLError, openssl))
        assert reason == "TLS: protocol version refused" and is_definite(reason)
        assert security_event_for(reason) == "InvalidTLSVersion"
    alert = connect_failure_reason(_ssl_error(ssl.SSLError, "SSLV3_ALERT_HANDSHAKE_FAILURE"))
    assert alert == "TLS: SSLV3_ALERT_HANDSHAKE_FAILURE" and is_definite(alert)
    eof = connect_failure_reason(_ssl_error(ssl.SSLEOFError, "UNEXPECTED_EOF_WHILE_READING"))
    assert not is_definite(eof) and security_event_for(eof) is None
    closed = InvalidMessage("did not receive a valid HTTP response")
    closed.__cause__ = EOFError("connection closed while reading HTTP status line")
    assert connect_failure_reason(closed) == "handshake failed (InvalidMessage)"
    refused = connect_failure_reason(closed, tls=True)
    assert refused.startswith("TLS: closed before the HTTP response") and is_definite(refused)
    loading = connect_failure_reason(TlsSetupError("No such file or directory"))
    assert loading == "TLS files not loaded (No such file or directory)" and is_definite(loading)
    assert security_event_for("HTTP 401") == "FailedToAuthenticateAtCentralSystem"


def test_definite_failures_and_backoff() -> None:
    assert is_definite("connection refused") and is_definite("HTTP 404")
    assert not is_definite("timeout") and not is_definite("HTTP 503")
    assert all(0.25 <= backoff(1) <= 1.0 for _ in range(20))
    assert all(15.0 <= backoff(20) <= 30.0 for _ in range(20))


def test_basic_authorization_and_password_files(tmp_path: Path) -> None:
    value = basic_authorization("CP/1", "s3cret:x")
    assert base64.b64decode(value.removeprefix("Basic ")) == b"CP/1:s3cret:x"
    assert headers("CP1", None) is None and headers("CP1", "") is None
    assert headers("CP1", "p") == {"Authorization": basic_authorization("CP1", "p")}
    listing = tmp_path / "passwords"
    listing.write_text("# comment\n\nCP1  first password \nCP2\tsecond\n")
    assert read_password_file(str(listing)) == {"CP1": "first password", "CP2": "second"}
    listing.write_text("CP1 ok\nlonely\n")
    with pytest.raises(ValueError, match="passwords:2: expected 'ID PASSWORD'"):
        read_password_file(str(listing))


def test_client_contexts_follow_the_whitepaper_and_are_shared() -> None:
    context = client_context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.options & ssl.OP_NO_COMPRESSION
    tls12 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 and all("GCM" in name for name in tls12)
    insecure = client_context(insecure=True)
    assert insecure.verify_mode == ssl.CERT_NONE and not insecure.check_hostname
    contexts = ClientContexts()
    assert contexts.get() is contexts.get()
    assert contexts.get(trust=("k", "")) is not contexts.get()
    with pytest.raises(TlsSetupError, match="No such file or directory"):
        contexts.get(files=("/nowhere/cert.pem", "/nowhere/key.pem"))
