"""TLS for a simulated charger: its client contexts for ``wss://`` (security profiles 2, 3).

What the OCPP 1.6 Security Whitepaper ed. 2 asks of a charge point's TLS, and how:

- TLS 1.2 or later only (A00.FR.312, A00.FR.416): ``minimum_version`` is TLS 1.2, so a
  server that offers less fails the handshake ("TLS: protocol version refused" in the
  report, and an InvalidTLSVersion security event, A00.FR.315);
- for TLS 1.2 the AES-GCM suites of A00.FR.318/422 (ECDHE-ECDSA, RSA, and ECDHE-RSA for
  forward secrecy with RSA certificates), nothing unsuitable (A00.FR.319), no TLS
  compression (A00.FR.320); TLS 1.3 suites are OpenSSL's (all AEAD);
- the server certificate's path verified against ``--ca-file`` (or the system store) and
  its name against the URL's host (A00.FR.307/308); when it fails, the handshake does
  (A00.FR.310), reported as "TLS: server certificate not verified (...)".  ``--insecure``
  skips both checks: a TEST-ONLY switch, never for a CSMS that matters;
- profile 3: the charger's certificate and key as the TLS client certificate (A00.FR.402),
  from files or, after a CertificateSigned, the key pair and chain it holds in memory.

:class:`ClientContexts` builds each context once and shares it between the chargers whose
trust and identity are the same (one context per charger only when each has its own
certificate).  A context holds its CA certificates: with per-charger certificates give
``--ca-file`` rather than the system store, which costs every context its whole bundle.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Hashable

from simulator.certificate_store import Identity, Trust
from simulator.errors import TlsSetupError

#: TLS 1.2 suites (OpenSSL names): A00.FR.318's AES-GCM ones, ECDHE first.
TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
    )
)


def client_context(
    *,
    ca_file: str | None = None,
    insecure: bool = False,
    cadata: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
) -> ssl.SSLContext:
    """A charger's client context (see the module docstring).

    Trust: ``cadata`` when given (added to the system store when there is no ``ca_file``),
    else ``ca_file``, else the system store; ``insecure`` verifies nothing.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cadata is not None:
        if ca_file is None:
            context.load_default_certs()
        if cadata:
            context.load_verify_locations(cadata=cadata)
    elif ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    else:
        context.load_default_certs()
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


def load_identity(context: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    """Load a certificate chain and key held in memory (``ssl`` only reads them from files:
    they are written to a private temporary directory for the call, then removed)."""
    with tempfile.TemporaryDirectory(prefix="gridlink-sim-") as folder:
        paths = []
        for name, data in (("chain.pem", chain_pem), ("key.pem", key_pem)):
            path = os.path.join(folder, name)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            paths.append(path)
        context.load_cert_chain(paths[0], paths[1])


class ClientContexts:
    """The client contexts of one process's chargers, built once per trust and identity."""

    def __init__(self, *, ca_file: str | None = None, insecure: bool = False) -> None:
        self.ca_file = ca_file
        self.insecure = insecure
        self._contexts: dict[Hashable, ssl.SSLContext] = {}

    def get(
        self,
        *,
        files: tuple[str, str] | None = None,
        trust: Trust | None = None,
        identity: Identity | None = None,
    ) -> ssl.SSLContext:
        """The context for a charger: its certificate ``files`` or in-memory ``identity``
        (which wins), and its in-memory ``trust`` (None: ``ca_file`` or the system store).

        Raises :class:`~simulator.errors.TlsSetupError` when a file cannot be loaded.
        """
        key = (
            files if identity is None else None,
            None if trust is None or self.insecure else trust[0],
            None if identity is None else identity[0],
        )
        context = self._contexts.get(key)
        if context is None:
            try:
                context = client_context(
                    ca_file=self.ca_file,
                    insecure=self.insecure,
                    cadata=None if trust is None else trust[1],
                    cert_file=files[0] if files is not None and identity is None else None,
                    key_file=files[1] if files is not None and identity is None else None,
                )
                if identity is not None:
                    load_identity(context, identity[1], identity[2])
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise TlsSetupError(_describe(exc)) from exc
            self._contexts[key] = context
        return context


def _describe(exc: OSError | ValueError) -> str:
    """A short, stable account of a TLS file that did not load (no path: it keys a report)."""
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)


__all__ = ["TLS12_CIPHERS", "ClientContexts", "client_context", "load_identity"]
