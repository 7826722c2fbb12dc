"""TLS for GridLink's listeners (the gateway's wss://, the file server's https://) and what a
charger's client certificate says (OCPP 1.6 Security Whitepaper ed. 2, A00.FR.3xx/4xx).

- :func:`server_context`: TLS 1.2 or later only, the whitepaper's cipher suites (A00.FR.317:
  ECDHE-ECDSA and RSA with AES-GCM; ECDHE-RSA-AES-GCM too; nothing marked unsuitable,
  A00.FR.319), no TLS compression (A00.FR.320), and — when a client CA is configured —
  client certificates requested and verified against it (security profile 3). A client
  without a certificate may still connect (security profile 2 on the same port); which
  profile a station needs is authz's decision.
- :class:`ReloadingContext`: the same context, its certificate and key loaded again when
  their files change (certificate rotation without a restart; new handshakes get the new
  certificate).
- :class:`OpenSSLContext`: the same settings for the FTP server's explicit TLS (pyftpdlib's
  FTPS speaks pyOpenSSL, not :mod:`ssl`), its certificate loaded again when its files change.
- :class:`ClientCertificate` from a TLS connection (:func:`peer_certificate`) or from the
  header a trusted TLS-terminating proxy sets (:func:`certificate_from_header`, verified
  again against the client CA when one is configured).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from services.errors import ConfigurationError

log = logging.getLogger("gridlink.tls")

#: TLS 1.2 suites: the four A00.FR.317 requires, and ECDHE-RSA with AES-GCM (forward secrecy
#: for RSA certificates). TLS 1.3 suites are OpenSSL's defaults (all AEAD).
TLS12_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
    "AES128-GCM-SHA256", "AES256-GCM-SHA384",
))


def server_context(cert_file: str, key_file: str, client_ca_file: str | None = None
                   ) -> ssl.SSLContext:
    """A server context for GridLink's listeners (see the module docstring)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    context.load_cert_chain(cert_file, key_file)
    if client_ca_file:
        context.load_verify_locations(cafile=client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL  # verified when given; profile 2 gives none
    return context


#: Why TLS handshakes fail, as OpenSSL names it (a metric label: a bounded set).
HANDSHAKE_FAILURES = {
    "UNSUPPORTED_PROTOCOL": "protocol_version", "WRONG_VERSION_NUMBER": "protocol_version",
    "TLSV1_ALERT_PROTOCOL_VERSION": "protocol_version", "NO_SHARED_CIPHER": "no_shared_cipher",
    "CERTIFICATE_VERIFY_FAILED": "client_certificate", "TLSV1_ALERT_UNKNOWN_CA": "unknown_ca",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "client_certificate", "HTTP_REQUEST": "plain_http",
    "SSLV3_ALERT_BAD_CERTIFICATE": "client_certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "unknown_ca",
}


def handshake_failure_reason(exc: ssl.SSLError) -> str:
    """A bounded name for why a handshake failed."""
    return HANDSHAKE_FAILURES.get(str(exc.reason or ""), "other")


def _reporting(on_failure: Callable[[str], None]) -> type[ssl.SSLObject]:
    """An SSLObject class that reports failed server handshakes (asyncio logs them only in
    debug mode, so nothing else would count them)."""

    class ReportingSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLError as exc:
                on_failure(handshake_failure_reason(exc))
                raise

    return ReportingSSLObject


def files_stamp(*paths: str | None) -> tuple[tuple[int, int], ...]:
    """(mtime, size) of each file given (a missing one as (-1, -1)): what tells a reloading
    context that its certificate files changed."""
    stamps = []
    for path in filter(None, paths):
        try:
            stat = os.stat(path)
        except OSError:
            stamps.append((-1, -1))
            continue
        stamps.append((stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)

class ReloadingContext:
    """A server context that follows its certificate and key files; ``on_failure`` hears of
    every failed handshake (its reason)."""

    def __init__(self, cert_file: str, key_file: str, client_ca_file: str | None = None, *,
                 on_failure: Callable[[str], None] | None = None) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = client_ca_file
        try:
            self.context = server_context(cert_file, key_file, client_ca_file)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot load TLS files (GRIDLINK_TLS_CERT_FILE {cert_file}, "
                f"GRIDLINK_TLS_KEY_FILE {key_file}, GRIDLINK_TLS_CLIENT_CA_FILE "
                f"{client_ca_file or 'unset'}): {exc}") from None
        if on_failure is not None:
            self.context.sslobject_class = _reporting(on_failure)
        self._seen = self._stamp()
        self.reloads = 0

    def _stamp(self) -> tuple[tuple[int, int], ...]:
        return files_stamp(self.cert_file, self.key_file, self.client_ca_file)

    def reload_if_changed(self) -> bool:
        """Load the files again if they changed; True when the new ones are in use. A broken
        pair (the key of another certificate, a half-written file) keeps the old ones."""
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        try:
            self.context.load_cert_chain(self.cert_file, self.key_file)
            if self.client_ca_file:
                # Adds the new CA certificates; removed ones stay trusted until a restart.
                self.context.load_verify_locations(cafile=self.client_ca_file)
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.error("TLS files changed but cannot be loaded; keeping the previous ones",
                      extra={"cert_file": self.cert_file, "error": str(exc)})
            return False
        self._seen = stamp
        self.reloads += 1
        log.info("TLS certificate reloaded", extra={"cert_file": self.cert_file})
        return True

    async def watch(self, stopping: asyncio.Event, interval_s: float = 5.0) -> None:
        """Check the files every ``interval_s`` until ``stopping`` is set."""
        while not stopping.is_set():
            self.reload_if_changed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval_s)


class OpenSSLContext:
    """A pyOpenSSL server context with :func:`server_context`'s rules (TLS 1.2 or later, the
    whitepaper's TLS 1.2 suites, no compression or renegotiation), built again by
    :meth:`current` when the certificate or key file changed (a broken pair keeps the old
    context). No client certificates: FTPS logins are the token's."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._stamp = self._files_stamp()
        try:
            self._context = self._build()
        except Exception as exc:  # OpenSSL.SSL.Error, OSError
            raise ConfigurationError(
                f"cannot load TLS files for FTPS (GRIDLINK_TLS_CERT_FILE {cert_file}, "
                f"GRIDLINK_TLS_KEY_FILE {key_file}): {exc}") from None

    def _files_stamp(self) -> tuple[tuple[int, int], ...]:
        return files_stamp(self.cert_file, self.key_file)

    def _build(self) -> object:
        from OpenSSL import SSL

        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_cipher_list(TLS12_CIPHERS.encode())
        context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE
                            | getattr(SSL, "OP_NO_RENEGOTIATION", 0))
        context.use_certificate_chain_file(self.cert_file)
        context.use_privatekey_file(self.key_file)
        context.check_privatekey()
        # Data connections may resume the control connection's TLS session, which FTPS
        # clients that insist on it (vsftpd's require_ssl_reuse peers) need.
        context.set_session_id(b"gridlink-ftps")
        return context

    def current(self) -> object:
        """The context for a new connection (the files read again if they changed)."""
        stamp = self._files_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._context = self._build()
                log.info("TLS certificate reloaded (FTPS)", extra={"cert_file": self.cert_file})
            except Exception as exc:
                log.error("TLS files changed but cannot be loaded; keeping the previous ones",
                          extra={"cert_file": self.cert_file, "error": str(exc)})
        return self._context


# --- client certificates --------------------------------------------------------------------


@dataclass(frozen=True)
class ClientCertificate:
    """What GridLink checks of a charger's certificate (A00.FR.403-405)."""

    common_name: str | None
    organizations: tuple[str, ...]
    serial: str  # hexadecimal
    fingerprint: str  # SHA-256 of the DER form, hexadecimal
    not_after: datetime


def describe(certificate: x509.Certificate) -> ClientCertificate:
    subject = certificate.subject
    names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    organizations = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    der = certificate.public_bytes(serialization.Encoding.DER)
    return ClientCertificate(
        common_name=str(names[0].value) if names else None,
        organizations=tuple(str(o.value) for o in organizations),
        serial=format(certificate.serial_number, "x"),
        fingerprint=hashlib.sha256(der).hexdigest(),
        not_after=certificate.not_valid_after_utc,
    )


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> ClientCertificate | None:
    """The client certificate a TLS connection presented (already verified by the handshake
    against the client CA), or None."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return describe(x509.load_der_x509_certificate(der))


class UntrustedCertificate(ValueError):
    """A forwarded certificate that does not parse or does not verify."""


def certificate_from_header(value: str, client_ca_file: str | None,
                            now: datetime | None = None) -> ClientCertificate:
    """The certificate a TLS-terminating proxy forwarded (URL-encoded PEM, as nginx's
    ``$ssl_client_escaped_cert``), verified against the client CA when one is configured."""
    try:
        certificate = x509.load_pem_x509_certificate(unquote(value).encode())
    except ValueError as exc:
        raise UntrustedCertificate(f"forwarded client certificate is not PEM: {exc}") from None
    if client_ca_file:
        verify_client(certificate, client_ca_file, now or datetime.now(UTC))
    return describe(certificate)


def verify_client(certificate: x509.Certificate, ca_file: str, now: datetime) -> None:
    """Verify a client certificate's chain against the CA certificates in ``ca_file``.

    The Web PKI profile, except that a charger certificate needs no subjectAltName: the
    whitepaper identifies a charger by its subject (CN, O), as OpenSSL's check of a direct
    TLS connection does."""
    from cryptography.x509.verification import (
        Criticality,
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    with open(ca_file, "rb") as handle:
        roots = x509.load_pem_x509_certificates(handle.read())
    leaf = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    verifier = (PolicyBuilder().store(Store(roots)).time(now)
                .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                                    ee_policy=leaf)
                .build_client_verifier())
    try:
        verifier.verify(certificate, [])
    except VerificationError as exc:
        raise UntrustedCertificate(f"client certificate does not verify: {exc}") from None


def trusted(address: str | None, proxies: Iterable[str]) -> bool:
    """Is ``address`` (a peer's IP) one of the trusted proxies (addresses or CIDR networks)?"""
    if not address:
        return False
    try:
        peer = ipaddress.ip_address(address)
    except ValueError:
        return False
    for proxy in proxies:
        try:
            if peer in ipaddress.ip_network(proxy, strict=False):
                return True
        except ValueError:
            continue
    return False
