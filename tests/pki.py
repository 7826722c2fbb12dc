"""Keys, CSRs and certificates for tests, made on the spot with ``cryptography`` (no fixture
files to expire)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.ocpp16 import utcnow

Key = Any  # a private key of any type cryptography makes


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def name(cn: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if organization is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _usage(**set_: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment",
                           "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                           "encipher_only", "decipher_only"), False)
    return x509.KeyUsage(**{**flags, **set_})


def make_ca(cn: str = "GridLink Test CA", *, key: Key | None = None, days: float = 3650,
            issuer: tuple[x509.Certificate, Key] | None = None, serial: int | None = None
            ) -> tuple[x509.Certificate, Key]:
    """A CA certificate (self-signed unless ``issuer`` = (certificate, key) signs it)."""
    key = key or ec_key()
    now = utcnow()
    subject = name(cn, "GridLink Tests")
    issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
        .public_key(key.public_key()).serial_number(serial or x509.random_serial_number())
        .not_valid_before(min(now - timedelta(hours=1), now + timedelta(days=days - 1)))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(signer, hashes.SHA256()))
    return certificate, key


def make_csr(key: Key, cn: str, organization: str | None = None
             ) -> x509.CertificateSigningRequest:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (x509.CertificateSigningRequestBuilder().subject_name(name(cn, organization))
            .sign(key, algorithm))


def _der(tag: int, value: bytes) -> bytes:
    length = len(value)
    if length < 0x80:
        return bytes([tag, length]) + value
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + value


SHA1_WITH_RSA = bytes.fromhex("06092a864886f70d010105") + bytes.fromhex("0500")


def sha1_csr_pem(key: rsa.RSAPrivateKey, cn: str, organization: str) -> str:
    """A CSR signed with SHA-1 (which cryptography's builders no longer make)."""
    info = make_csr(key, cn, organization).tbs_certrequest_bytes
    signature = key.sign(info, padding.PKCS1v15(), hashes.SHA1())
    der = _der(0x30, info + _der(0x30, SHA1_WITH_RSA) + _der(0x03, b"\0" + signature))
    return csr_pem(x509.load_der_x509_csr(der))


def csr_pem(csr: x509.CertificateSigningRequest) -> str:
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def tampered_csr_pem(key: Key, cn: str, organization: str) -> str:
    """A CSR for ``cn`` whose O was changed after signing: it parses, its signature fails."""
    der = make_csr(key, cn, organization).public_bytes(serialization.Encoding.DER)
    changed = organization[:-1] + chr(ord(organization[-1]) ^ 1)
    forged = x509.load_der_x509_csr(der.replace(organization.encode(), changed.encode()))
    return csr_pem(forged)


def issue(ca: tuple[x509.Certificate, Key], public_key: Any, subject: x509.Name, *,
          days: float = 365, not_before: datetime | None = None, client_auth: bool = True
          ) -> x509.Certificate:
    """A charger certificate signed by ``ca`` (an external CA, as an operator's)."""
    end = utcnow() + timedelta(days=days)
    start = not_before or min(utcnow() - timedelta(minutes=1), end - timedelta(days=1))
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca[0].subject)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client_auth else ExtendedKeyUsageOID.SERVER_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(ca[1], hashes.SHA256())


def pem(*certificates: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


def key_pem(key: Key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_ca(directory: Path, ca: tuple[x509.Certificate, Key]) -> tuple[Path, Path]:
    """The CA's certificate and key as PEM files in ``directory``: (cert file, key file)."""
    cert_file, key_file = directory / "charger-ca.pem", directory / "charger-ca.key"
    cert_file.write_text(pem(ca[0]))
    key_file.write_bytes(key_pem(ca[1]))
    return cert_file, key_file
