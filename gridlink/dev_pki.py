"""Certificates for trying security profiles 2 and 3 on one machine (``gridlink security
dev-pki``): a CA, a server certificate for localhost / 127.0.0.1 that it signs, and a client
certificate per station (CN = the station id, O = the organisation). Development only: the CA
key lies next to the certificates, unencrypted.

:func:`issue` makes one certificate; the tests build their own authorities with it.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, on disk."""

    cert: Path
    key: Path
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


def subject(common_name: str, *organizations: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name(attributes)


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, key_cert_sign=ca, crl_sign=ca,
                         content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=not ca, encipher_only=False,
                         decipher_only=False)


def issue(directory: Path, stem: str, name: x509.Name, *, issuer: Issued | None = None,
          ca: bool = False, server: bool = False, days: int = 30,
          not_before: datetime | None = None) -> Issued:
    """An EC P-256 certificate signed by ``issuer`` (self-signed without one), written as
    ``stem.pem`` and ``stem.key`` (mode 0600) in ``directory``. A server certificate is for
    localhost and 127.0.0.1; others are client certificates, or CAs."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    builder = (x509.CertificateBuilder()
               .subject_name(name)
               .issuer_name(issuer.certificate.subject if issuer else name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(start + timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(_usage(ca=ca), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False))
    if issuer is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.private_key.public_key()), critical=False)
    if not ca:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    certificate = builder.sign(issuer.private_key if issuer else key, hashes.SHA256())
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    os.chmod(key_path, 0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Issued(cert_path, key_path, certificate, key)


def make_dev_pki(directory: Path, stations: list[str], organization: str,
                 days: int = 365) -> dict[str, Issued]:
    """``ca``, ``server`` and one certificate per station, in ``directory``."""
    ca = issue(directory, "ca", subject("GridLink development CA", organization), ca=True,
               days=days)
    issued = {"ca": ca, "server": issue(directory, "server", subject("localhost",
                                                                     organization),
                                        issuer=ca, server=True, days=days)}
    for station in stations:
        issued[station] = issue(directory, station, subject(station, organization),
                                issuer=ca, days=days)
    return issued
