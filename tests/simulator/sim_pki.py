"""Certificates for the simulator's TLS tests, made here with ``cryptography``.

A CA (:func:`make_ca`, :func:`make_sub_ca`), certificates it issues (:func:`issue`: a server
certificate for ``localhost`` and 127.0.0.1, a charger's client certificate, or a certificate
for the key of a CSR the simulator sent, :func:`sign_csr`), a signature over a firmware image
(:func:`sign`), and server TLS contexts (:func:`server_context`).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def write(self, folder: Path, name: str) -> tuple[str, str]:
        """Write ``{name}.pem`` and ``{name}.key`` into ``folder``; their paths."""
        cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
        cert_path.write_text(self.cert_pem)
        key_path.write_text(self.key_pem)
        return str(cert_path), str(key_path)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: object, days: float
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    end = now + dt.timedelta(days=days)  # days < 0: expired already
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now, end) - dt.timedelta(hours=1))
        .not_valid_after(end)
    )


def make_ca(common_name: str, *, rsa_key: bool = False) -> Issued:
    """A self-signed CA certificate."""
    key: PrivateKey = (
        rsa.generate_private_key(65537, 2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = _name(common_name)
    certificate = (
        _builder(name, name, key.public_key(), 30)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


def make_sub_ca(parent: Issued, common_name: str = "Sub CA") -> Issued:
    """A CA certificate that ``parent`` issued."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        _builder(_name(common_name), parent.certificate.subject, key.public_key(), 30)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(parent.key, hashes.SHA256())
    )
    return Issued(certificate, key)


def issue(
    ca: Issued,
    common_name: str,
    *,
    server: bool = False,
    organization: str | None = None,
    public_key: object | None = None,
    days: float = 1,
) -> Issued:
    """A certificate signed by ``ca``: a server's (for localhost), or a client's; for a key of
    its own unless ``public_key`` is given (then ``key`` is the CA's, unused)."""
    key: PrivateKey = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(
            _name(common_name, organization),
            ca.certificate.subject,
            public_key or key.public_key(),
            days,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key if public_key is None else ca.key)


def sign_csr(ca: Issued, csr_pem: str, *, days: float = 1) -> str:
    """What a CA answers to a charger's CSR: a certificate for its key, then the CA's (PEM)."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    common_name = str(csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    leaf = issue(ca, common_name, public_key=csr.public_key(), days=days)
    return leaf.cert_pem + ca.cert_pem


def sign(key: PrivateKey, data: bytes) -> str:
    """A firmware signature (base64): RSA-PSS or ECDSA, both over SHA-256."""
    if isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
        signature = key.sign(data, pss, hashes.SHA256())
    else:
        signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


def server_context(
    server: Issued, folder: Path, *, client_ca: Issued | None = None
) -> ssl.SSLContext:
    """A TLS server context with ``server``'s certificate; requiring client certificates
    issued by ``client_ca`` when given (security profile 3)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*server.write(folder, "server"))
    if client_ca is not None:
        context.load_verify_locations(cadata=client_ca.cert_pem)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
