"""One charger's certificates, without I/O: the roots it has installed, and its own.

Installed certificates (OCPP 1.6 Security Whitepaper ed. 2, M03-M05), each kept with its
use (``CentralSystemRootCertificate`` or ``ManufacturerRootCertificate``):

- :meth:`CertificateStore.install` (M05): Accepted; Rejected when the text is not exactly one
  certificate, is not valid now, is not a CA, names an issuer the charger does not have (a
  root signs itself; another CA's issuer must be installed: the hash data need its key), or
  the store is full (``CertificateStoreMaxLength``, M05.FR.03).  Installing a certificate
  that is already there is Accepted and keeps one copy.
- :meth:`CertificateStore.hash_data` (M03): the ``CertificateHashDataType`` of each.
- :meth:`CertificateStore.delete` (M04): Failed for the charger's own certificate (M04.FR.05)
  and for the CentralSystemRootCertificate in use for the current connection (M04.FR.06:
  the one that issued the server's certificate, or the only one there is), NotFound, or
  Accepted.

A charger starts with the roots of ``--ca-file`` as its CentralSystemRootCertificates (the
file's other certificates are trusted, not listed), and its TLS trust follows what is
installed: a root installed joins the trust of its next connections, a root deleted leaves
it (:meth:`CertificateStore.trust`; without ``--ca-file`` the system store stays trusted
too).

Its own certificate (A02/A03): :meth:`CertificateStore.new_csr` makes a key pair and the
CSR; :meth:`CertificateStore.accept_chain` takes a CertificateSigned chain whose leaf is for
the key of the last CSR and is not expired; :meth:`CertificateStore.identity` is then the
key and chain its next TLS connections present.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from simulator import certificates as certs

CENTRAL_SYSTEM_ROOT = "CentralSystemRootCertificate"
MANUFACTURER_ROOT = "ManufacturerRootCertificate"

#: A certificate and key held in memory: (cache key, certificate chain PEM, key PEM).
Identity = tuple[Hashable, bytes, bytes]
#: CA certificates held in memory: (cache key, PEM text; "" trusts nothing).
Trust = tuple[Hashable, str]


@dataclass(frozen=True, slots=True)
class Installed:
    """An installed certificate, its use and the certificate that issued it."""

    use: str
    certificate: x509.Certificate
    issuer: x509.Certificate


class CertificateStore:
    """One charger's certificates; see the module docstring."""

    def __init__(
        self,
        owner: str,
        central_system_roots: Sequence[x509.Certificate] = (),
        max_length: int = 20,
    ) -> None:
        self.owner = owner
        self.max_length = max_length
        self.installed: list[Installed] = []
        self.also_trusted: list[x509.Certificate] = []  # --ca-file certificates not roots
        for certificate in central_system_roots:
            if certificate.issuer == certificate.subject:
                self.installed.append(Installed(CENTRAL_SYSTEM_ROOT, certificate, certificate))
            else:
                self.also_trusted.append(certificate)
        self.csr_key: ec.EllipticCurvePrivateKey | None = None  # of the last CSR sent
        self.own_key: ec.EllipticCurvePrivateKey | None = None
        self.own_chain: tuple[x509.Certificate, ...] = ()
        self.server_certificate: bytes | None = None  # DER, of the verified TLS connection
        self._trust_version = 0  # trust changed by installs and deletes (0: as it started)
        self._identity_version = 0

    # --- installed certificates ---------------------------------------------------------------

    def roots(self, use: str) -> list[x509.Certificate]:
        """The installed certificates of ``use``."""
        return [entry.certificate for entry in self.installed if entry.use == use]

    def _issuer_of(self, certificate: x509.Certificate) -> x509.Certificate | None:
        candidates = [certificate, *(e.certificate for e in self.installed), *self.own_chain]
        for candidate in candidates:
            if candidate.subject == certificate.issuer and certs.issued_by(certificate, candidate):
                return candidate
        return None

    def install(self, use: str, pem: str, now: datetime) -> str:
        """Install a root (M05); the CertificateStatus: Accepted, Rejected."""
        try:
            loaded = certs.load_certificates(pem)
        except ValueError:
            return "Rejected"
        if len(loaded) != 1:
            return "Rejected"
        (certificate,) = loaded
        if any(e.use == use and e.certificate == certificate for e in self.installed):
            return "Accepted"
        issuer = self._issuer_of(certificate)
        if not certs.is_current(certificate, now) or not certs.is_ca(certificate) or not issuer:
            return "Rejected"
        if len(self.installed) >= self.max_length:
            return "Rejected"
        self.installed.append(Installed(use, certificate, issuer))
        if use == CENTRAL_SYSTEM_ROOT:
            self._trust_version += 1
        return "Accepted"

    def hash_data(self, use: str) -> list[dict[str, str]]:
        """The ``CertificateHashDataType`` of every installed certificate of ``use`` (M03)."""
        return [certs.hash_data(e.certificate, e.issuer) for e in self.installed if e.use == use]

    def delete(self, wanted: dict[str, str]) -> str:
        """Delete the certificate ``wanted`` names (M04); Accepted, Failed or NotFound."""
        algorithm = wanted["hashAlgorithm"]
        own = self.own_chain[0] if self.own_chain else None
        own_issuer = self._issuer_of(own) if own is not None else None
        if own is not None and own_issuer is not None:
            if certs.same_hash_data(wanted, certs.hash_data(own, own_issuer, algorithm)):
                return "Failed"  # M04.FR.05: not the charger's own certificate
        for entry in self.installed:
            have = certs.hash_data(entry.certificate, entry.issuer, algorithm)
            if not certs.same_hash_data(wanted, have):
                continue
            if entry.use == CENTRAL_SYSTEM_ROOT and self._in_use(entry.certificate):
                return "Failed"  # M04.FR.06
            self.installed.remove(entry)
            if entry.use == CENTRAL_SYSTEM_ROOT:
                self._trust_version += 1
            return "Accepted"
        return "NotFound"

    def _in_use(self, root: x509.Certificate) -> bool:
        """Whether ``root`` verified the current TLS connection (see the module docstring)."""
        if self.server_certificate is None:
            return False
        server = x509.load_der_x509_certificate(self.server_certificate)
        roots = self.roots(CENTRAL_SYSTEM_ROOT)
        direct = [r for r in roots if r == server or certs.issued_by(server, r)]
        return root in direct if direct else len(roots) == 1

    def trust(self) -> Trust | None:
        """The CA certificates its TLS connections trust, when installs or deletes changed them
        (None: as it started, ``--ca-file`` or the system store)."""
        if self._trust_version == 0:
            return None
        trusted = [*self.roots(CENTRAL_SYSTEM_ROOT), *self.also_trusted]
        key = tuple(c.fingerprint(hashes.SHA256()) for c in trusted)
        return key, "".join(certs.certificate_pem(c) for c in trusted)

    # --- its own certificate -------------------------------------------------------------------

    def new_csr(self, common_name: str, organization: str) -> str:
        """A new key pair and the CSR for it (A02.FR.02/03); the key is kept for the answer."""
        self.csr_key = certs.new_key()
        return certs.csr_pem(self.csr_key, common_name, organization)

    def accept_chain(self, pem: str, now: datetime) -> str | None:
        """Take a CertificateSigned chain (A02.FR.06); None when accepted, else why not."""
        try:
            chain = certs.load_certificates(pem)
        except ValueError:
            return "not PEM certificates"
        if self.csr_key is None or not certs.has_key(chain[0], self.csr_key):
            return "not for the key of the last CSR"
        if now > chain[0].not_valid_after_utc:
            return "expired"
        self.own_key, self.own_chain = self.csr_key, chain
        self._identity_version += 1
        return None

    def identity(self) -> Identity | None:
        """The key and chain its TLS connections present (None: the ``--cert-file`` ones)."""
        if self.own_key is None:
            return None
        chain = "".join(certs.certificate_pem(c) for c in self.own_chain).encode()
        return (self.owner, self._identity_version), chain, certs.key_pem(self.own_key)


__all__ = [
    "CENTRAL_SYSTEM_ROOT",
    "MANUFACTURER_ROOT",
    "CertificateStore",
    "Identity",
    "Installed",
    "Trust",
]
