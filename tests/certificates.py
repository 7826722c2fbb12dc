"""Certificates for tests, made in the test session with ``cryptography``: a CSMS root CA and
the server certificate it signs (127.0.0.1, localhost), a charger CA and client certificates
it signs, and a CA nobody trusts. Files are PEM in one directory; :meth:`Pki.client_context`
gives a charger's TLS context.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ORGANIZATION = "GridLink Test CPO"


@dataclass(frozen=True)
class Issued:
    """A certificate and its key on disk."""

    cert: Path
    key: Path
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def escaped_pem(self) -> str:
        """As nginx's ``$ssl_client_escaped_cert`` forwards it."""
        return quote(self.pem(), safe="")


def _name(common_name: str, *organizations: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name(attributes)


def _write(directory: Path, stem: str, certificate: x509.Certificate,
           key: ec.EllipticCurvePrivateKey) -> Issued:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Issued(cert_path, key_path, certificate, key)


def issue(directory: Path, stem: str, subject: x509.Name, *, issuer: Issued | None = None,
          ca: bool = False, server: bool = False, days: int = 30,
          not_before: datetime | None = None) -> Issued:
    """A certificate signed by ``issuer`` (self-signed without one)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.certificate.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(start + timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False))
    if issuer is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.private_key.public_key()), critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=False, crl_sign=False,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=True, encipher_only=False, decipher_only=False), critical=True)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    signer = issuer.private_key if issuer else key
    return _write(directory, stem, builder.sign(signer, hashes.SHA256()), key)


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
