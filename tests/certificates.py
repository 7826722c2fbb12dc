"""Certificates for tests, made in the test session (:func:`gridlink.dev_pki.issue`): a CSMS
root CA and the server certificate it signs (127.0.0.1, localhost), a charger CA and client
certificates it signs, and a CA nobody trusts. Files are PEM in one directory;
:meth:`Pki.client_context` gives a charger's TLS context.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import quote

from gridlink.dev_pki import Issued, issue
from gridlink.dev_pki import subject as _name

ORGANIZATION = "GridLink Test CPO"


def escaped_pem(issued: Issued) -> str:
    """A certificate as nginx's ``$ssl_client_escaped_cert`` forwards it."""
    return quote(issued.pem(), safe="")


class Pki:
    """The test session's certificate authorities and the certificates they issued."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.root = issue(directory, "csms-root", _name("GridLink Test Root"), ca=True)
        self.server = issue(directory, "csms-server", _name("127.0.0.1", ORGANIZATION),
                            issuer=self.root, server=True)
        self.charger_ca = issue(directory, "charger-ca", _name("GridLink Test Charger CA",
                                                               ORGANIZATION), ca=True)
        self.stranger_ca = issue(directory, "stranger-ca", _name("Somebody Else's CA"),
                                 ca=True)
        self._count = 0

    def client(self, common_name: str, *organizations: str, stranger: bool = False,
               **options: object) -> Issued:
        """A charger certificate (O defaults to the test CPO's)."""
        self._count += 1
        names = organizations or (ORGANIZATION,)
        return issue(self.directory, f"client-{self._count}", _name(common_name, *names),
                     issuer=self.stranger_ca if stranger else self.charger_ca,
                     **options)  # type: ignore[arg-type]

    def server_copy(self, stem: str) -> Issued:
        """Another server certificate of the same root (to rotate to)."""
        return issue(self.directory, stem, _name("127.0.0.1", ORGANIZATION), issuer=self.root,
                     server=True)

    def client_context(self, certificate: Issued | None = None, *,
                       maximum: ssl.TLSVersion | None = None,
                       minimum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        """A charger's context: trusts the CSMS root, shows ``certificate`` if given."""
        context = ssl.create_default_context(cafile=str(self.root.cert))
        if minimum is not None:
            context.minimum_version = minimum
        if maximum is not None:
            context.maximum_version = maximum
        if certificate is not None:
            context.load_cert_chain(str(certificate.cert), str(certificate.key))
        return context
