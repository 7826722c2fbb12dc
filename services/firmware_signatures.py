"""Firmware signatures as the Security Whitepaper defines them, without I/O (L01.FR.04,
L01.FR.09, L01.FR.11, L01.FR.12; certificate properties A00.FR.501-507).

The signature is computed over the entire firmware file, with SHA-256 as the hash: RSA-PSS
(MGF1 with SHA-256, a salt as long as the digest) for an RSA key, ECDSA for an elliptic
curve key (the whitepaper names "ECSchnorr", which no common library implements; OCPP
2.0.1's errata and A00.FR.505 name ECDSA). It travels base64-encoded
(``firmware.signature``, at most 800 characters) with the PEM Firmware Signing Certificate
(``firmware.signingCertificate``, at most 5500 characters) in SignedUpdateFirmware.req.

Files are hashed in chunks (:func:`file_digest`) and the digest is signed or verified as a
prehashed SHA-256 value, which yields exactly the signature over the file itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from typing import IO

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

MAX_CERTIFICATE_CHARS = 5500
MAX_SIGNATURE_CHARS = 800
MIN_RSA_BITS = 2048  # A00.FR.502
MIN_EC_BITS = 224  # A00.FR.503
READ_CHUNK = 1 << 20
RSA_PSS_SHA256 = "RSA-PSS-SHA256"
ECDSA_SHA256 = "ECDSA-SHA256"


class SignatureError(ValueError):
    """A certificate, key or signature GridLink cannot use, with the reason."""


def file_digest(source: IO[bytes]) -> bytes:
    """SHA-256 of everything ``source`` holds from its position on (read in chunks)."""
    digest = hashlib.sha256()
    while chunk := source.read(READ_CHUNK):
        digest.update(chunk)
    return digest.digest()


def load_certificate(pem: str | bytes) -> x509.Certificate:
    """The one PEM X.509 certificate in ``pem``; SignatureError if it is not one."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise SignatureError(f"signing certificate: not a PEM X.509 certificate ({exc})") \
            from None
    if len(certificates) != 1:  # L01 remarks: no intermediate certificates
        raise SignatureError("signing certificate: exactly one certificate expected, "
                             f"found {len(certificates)}")
    return certificates[0]


def certificate_pem(certificate: x509.Certificate) -> str:
    """The certificate as PEM text (what GridLink stores and sends)."""
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def certificate_problem(pem: str, now: datetime) -> str | None:
    """Why ``pem`` cannot be sent as a Firmware Signing Certificate, or None."""
    if len(pem) > MAX_CERTIFICATE_CHARS:
        return f"signing certificate: longer than {MAX_CERTIFICATE_CHARS} characters"
    try:
        certificate = load_certificate(pem)
        algorithm(certificate)
    except SignatureError as exc:
        return str(exc)
    if certificate.not_valid_after_utc <= now:
        return f"signing certificate: expired on {certificate.not_valid_after_utc:%Y-%m-%d}"
    if certificate.not_valid_before_utc > now:
        return ("signing certificate: not valid before "
                f"{certificate.not_valid_before_utc:%Y-%m-%d}")
    return None


def algorithm(certificate: x509.Certificate) -> str:
    """The signature algorithm of the certificate's key; SignatureError for a key the
    whitepaper does not allow (RSA under 2048 bits, elliptic curves under 224 bits, others)."""
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise SignatureError(f"signing certificate: RSA key of {key.key_size} bits "
                                 f"(at least {MIN_RSA_BITS})")
        return RSA_PSS_SHA256
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.key_size < MIN_EC_BITS:
            raise SignatureError(f"signing certificate: {key.curve.name} key "
                                 f"(at least {MIN_EC_BITS} bits)")
        return ECDSA_SHA256
    raise SignatureError("signing certificate: neither an RSA nor an elliptic curve key")


def sign_digest(key_pem: bytes, certificate: x509.Certificate, digest: bytes) -> bytes:
    """Sign a file's SHA-256 digest with the private key of ``certificate``."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"signing key: not an unencrypted PEM private key ({exc})") \
            from None
    if key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            certificate.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise SignatureError("signing key: not the key of the signing certificate")
    prehashed = Prehashed(hashes.SHA256())
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(digest, _pss(padding.PSS.DIGEST_LENGTH), prehashed)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(digest, ec.ECDSA(prehashed))
    raise SignatureError("signing key: neither an RSA nor an elliptic curve key")


def verifies(certificate: x509.Certificate, digest: bytes, signature: bytes) -> bool:
    """Does ``signature`` sign the file with this SHA-256 digest, under the certificate's key
    (RSA-PSS with any salt length, or ECDSA)?"""
    key = certificate.public_key()
    prehashed = Prehashed(hashes.SHA256())
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, _pss(padding.PSS.AUTO), prehashed)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(prehashed))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _pss(salt_length: int) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt_length)


def encode(signature: bytes) -> str:
    """A signature as SignedUpdateFirmware carries it (base64); SignatureError if too long."""
    text = base64.b64encode(signature).decode()
    if len(text) > MAX_SIGNATURE_CHARS:
        raise SignatureError(f"signature: {len(text)} base64 characters, at most "
                             f"{MAX_SIGNATURE_CHARS} fit in SignedUpdateFirmware")
    return text


def decode(text: str) -> bytes:
    """A base64 signature's bytes; SignatureError if it is not base64."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("signature: not base64") from None


def read_signature_file(content: bytes) -> bytes:
    """A signature file's signature: base64 text (whitespace ignored) or the raw bytes."""
    try:
        text = content.decode("ascii")
    except UnicodeDecodeError:
        return content
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return content


def signature_problem(text: str) -> str | None:
    """Why ``text`` is not a signature to send, or None."""
    if len(text) > MAX_SIGNATURE_CHARS:
        return f"signature: longer than {MAX_SIGNATURE_CHARS} characters"
    try:
        if not decode(text):
            return "signature: empty"
    except SignatureError as exc:
        return str(exc)
    return None
