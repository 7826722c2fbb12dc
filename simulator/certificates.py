"""The X.509 work a simulated charger does, without I/O (``cryptography``).

- keys and CSRs (whitepaper A02.FR.02/03): :func:`new_key` (EC P-256, for the ECDHE-ECDSA
  suites), :func:`csr_pem` (CN and O in the subject, signed with the key);
- reading certificates: :func:`load_certificates` (PEM, cached by text: a fleet's chargers
  share one parsed copy of their roots), :func:`is_current`, :func:`is_ca`,
  :func:`issued_by`, :func:`has_key`;
- :func:`hash_data`: a certificate's ``CertificateHashDataType`` (whitepaper 6.1) as OCSP
  computes a CertID (RFC 6960 4.1.1): the hash of the issuer's DER-encoded name, the hash of
  the issuer's public key (the BIT STRING of its SubjectPublicKeyInfo), the serial number
  (lowercase hexadecimal without leading zeroes, as OCPP 2.0.1 writes it);
- :func:`verify_signature`: a firmware signature (base64) over the whole image with the
  signing certificate's key, SHA-256 (L01.FR.04): RSA-PSS for RSA keys, ECDSA for EC keys
  (the whitepaper names "ECSchnorr"; ECDSA is what EC firmware signing uses in practice).
"""

from __future__ import annotations

import base64
import binascii
import functools
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

#: The hash algorithms of ``CertificateHashDataType`` (HashAlgorithmEnumType).
HASH_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}


def new_key() -> ec.EllipticCurvePrivateKey:
    """A new key pair for the charger's certificate (EC P-256)."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A private key as unencrypted PKCS#8 PEM (it never leaves the process, A02.FR.05)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificate_pem(certificate: x509.Certificate) -> str:
    """A certificate as PEM text."""
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def csr_pem(key: ec.EllipticCurvePrivateKey, common_name: str, organization: str) -> str:
    """A PEM certificate signing request (RFC 2986) for ``key``: CN and O (A02.FR.13)."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )
    request = x509.CertificateSigningRequestBuilder().subject_name(subject)
    return request.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


@functools.lru_cache(maxsize=64)
def load_certificates(text: str) -> tuple[x509.Certificate, ...]:
    """The certificates of a PEM text, in order; ``ValueError`` when there are none or one
    does not parse.  Cached: the same text gives the same (immutable) objects."""
    return tuple(x509.load_pem_x509_certificates(text.encode()))


def is_current(certificate: x509.Certificate, when: datetime) -> bool:
    """Whether ``when`` is within the certificate's validity period."""
    return certificate.not_valid_before_utc <= when <= certificate.not_valid_after_utc


def is_ca(certificate: x509.Certificate) -> bool:
    """Whether the certificate's basic constraints make it a CA."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` signed ``certificate`` (names chained, signature verified)."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _public_der(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def has_key(certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    """Whether the certificate is for ``key``'s public half."""
    return _public_der(certificate.public_key()) == _public_der(key.public_key())


def hash_data(
    certificate: x509.Certificate, issuer: x509.Certificate, algorithm: str = "SHA256"
) -> dict[str, str]:
    """The certificate's ``CertificateHashDataType`` (see the module docstring)."""
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(certificate, issuer, HASH_ALGORITHMS[algorithm]())
        .build()
    )
    return {
        "hashAlgorithm": algorithm,
        "issuerNameHash": request.issuer_name_hash.hex(),
        "issuerKeyHash": request.issuer_key_hash.hex(),
        "serialNumber": format(request.serial_number, "x"),
    }


def same_hash_data(wanted: dict[str, str], have: dict[str, str]) -> bool:
    """Whether two ``CertificateHashDataType`` name the same certificate (hexadecimal in any
    case, serial numbers with or without leading zeroes)."""
    try:
        serials_match = int(wanted["serialNumber"], 16) == int(have["serialNumber"], 16)
    except ValueError:
        serials_match = False
    return (
        serials_match
        and wanted["hashAlgorithm"] == have["hashAlgorithm"]
        and wanted["issuerNameHash"].lower() == have["issuerNameHash"]
        and wanted["issuerKeyHash"].lower() == have["issuerKeyHash"]
    )


def verify_signature(certificate: x509.Certificate, data: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) signs ``data`` with the certificate's key, SHA-256."""
    try:
        raw = base64.b64decode("".join(signature.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    key = certificate.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            key.verify(raw, data, pss, hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(raw, data, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


__all__ = [
    "HASH_ALGORITHMS",
    "certificate_pem",
    "csr_pem",
    "has_key",
    "hash_data",
    "is_ca",
    "is_current",
    "issued_by",
    "key_pem",
    "load_certificates",
    "new_key",
    "same_hash_data",
    "verify_signature",
]
