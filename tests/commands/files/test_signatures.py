"""Firmware signatures without I/O, with keys and certificates generated here: RSA-PSS and
ECDSA with SHA-256 over the whole file (checked against an independent computation with
``cryptography``), base64 as SignedUpdateFirmware carries it, and the certificates and keys
the whitepaper does not allow."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from datetime import timedelta

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from services import firmware_signatures as signatures
from services.ocpp16 import utcnow
from tests.helpers import certificate, ec_key, pem, rsa_key

IMAGE = os.urandom(3 * signatures.READ_CHUNK + 17)  # more than one read


def test_the_digest_is_sha256_of_the_whole_file() -> None:
    assert signatures.file_digest(io.BytesIO(IMAGE)) == hashlib.sha256(IMAGE).digest()


def test_rsa_keys_sign_with_pss_over_the_image() -> None:
    key = rsa_key()
    cert = certificate(key, "firmware signing")
    digest = signatures.file_digest(io.BytesIO(IMAGE))
    signature = signatures.sign_digest(pem(key), cert, digest)
    # What a charger does (L01.FR.04): RSA-PSS, SHA-256, over the file itself.
    cert.public_key().verify(  # type: ignore[union-attr,call-arg]
        signature, IMAGE, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
        hashes.SHA256())
    assert signatures.algorithm(cert) == signatures.RSA_PSS_SHA256
    assert signatures.verifies(cert, digest, signature)
    assert not signatures.verifies(cert, hashlib.sha256(b"other").digest(), signature)
    with pytest.raises(InvalidSignature):  # not PKCS #1 v1.5
        cert.public_key().verify(signature, IMAGE, padding.PKCS1v15(),  # type: ignore
                                 hashes.SHA256())


def test_ec_keys_sign_with_ecdsa_over_the_image() -> None:
    key = ec_key(ec.SECP384R1())
    cert = certificate(key, "firmware signing")
    digest = signatures.file_digest(io.BytesIO(IMAGE))
    signature = signatures.sign_digest(pem(key), cert, digest)
    key.public_key().verify(signature, IMAGE, ec.ECDSA(hashes.SHA256()))
    assert signatures.algorithm(cert) == signatures.ECDSA_SHA256
    assert signatures.verifies(cert, digest, signature)
    assert not signatures.verifies(certificate(ec_key(), "another"), digest, signature)


def test_a_key_must_be_the_certificates() -> None:
    cert = certificate(ec_key(), "firmware signing")
    with pytest.raises(signatures.SignatureError, match="not the key of the signing"):
        signatures.sign_digest(pem(ec_key()), cert, hashlib.sha256(IMAGE).digest())
    with pytest.raises(signatures.SignatureError, match="not an unencrypted PEM"):
        signatures.sign_digest(b"not a key", cert, hashlib.sha256(IMAGE).digest())


def test_signatures_travel_as_base64_and_files_may_hold_either_form() -> None:
    raw = os.urandom(256)
    text = signatures.encode(raw)
    assert base64.b64decode(text) == raw and signatures.decode(text) == raw
    assert signatures.read_signature_file(text.encode() + b"\n") == raw
    assert signatures.read_signature_file(raw) == raw
    assert signatures.signature_problem(text) is None
    assert "not base64" in (signatures.signature_problem("not base64!") or "")
    with pytest.raises(signatures.SignatureError, match="at most 800"):
        signatures.encode(os.urandom(1024))  # an 8192-bit RSA signature does not fit


def test_allowed_certificates() -> None:
    now = utcnow()
    good = pem(certificate(ec_key(), "ok")).decode()
    assert signatures.certificate_problem(good, now) is None
    small = pem(certificate(rsa_key(1024), "small")).decode()
    assert "at least 2048" in (signatures.certificate_problem(small, now) or "")
    p192 = pem(certificate(ec_key(ec.SECP192R1()), "p192")).decode()
    assert "at least 224" in (signatures.certificate_problem(p192, now) or "")
    expired = pem(certificate(ec_key(), "old", valid_from=now - timedelta(days=40))).decode()
    assert "expired" in (signatures.certificate_problem(expired, now) or "")
    early = pem(certificate(ec_key(), "new", valid_from=now + timedelta(days=1))).decode()
    assert "not valid before" in (signatures.certificate_problem(early, now) or "")
    assert "not a PEM" in (signatures.certificate_problem("junk", now) or "")
    assert "exactly one" in (signatures.certificate_problem(good + good, now) or "")
    assert "longer than 5500" in (signatures.certificate_problem(good * 12, now) or "")
