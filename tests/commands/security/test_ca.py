"""GridLink's charger CA: what it issues for a CSR, and the configurations it refuses."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from commands.security import ca, rules
from services.errors import ConfigurationError
from services.ocpp16 import utcnow
from tests import pki
from tests.helpers import memory_settings


def charger_ca(tmp_path: Path, days: int = 365, **ca_options: object) -> ca.ChargerCA:
    cert_file, key_file = pki.write_ca(tmp_path, pki.make_ca(**ca_options))  # type: ignore[arg-type]
    found = ca.from_settings(memory_settings(charger_ca_cert_file=str(cert_file),
                                             charger_ca_key_file=str(key_file),
                                             charger_cert_days=days))
    assert found is not None
    return found


def test_a_charger_certificate_for_a_csr(tmp_path: Path) -> None:
    authority = charger_ca(tmp_path, days=90)
    key = pki.ec_key()
    csr = pki.make_csr(key, "CP001", "Acme CPO")
    now = utcnow()
    leaf = authority.issue(csr, now)
    assert leaf.subject == csr.subject and leaf.issuer == authority.certificate.subject
    assert leaf.public_key() == key.public_key()
    leaf.verify_directly_issued_by(authority.certificate)
    assert leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc
    assert leaf.not_valid_after_utc - now == timedelta(days=90) - timedelta(
        microseconds=now.microsecond)
    extensions = leaf.extensions
    assert extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert list(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    usage = extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    with pytest.raises(x509.ExtensionNotFound):  # A00.FR.511
        extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert authority.issue(csr, now).serial_number != leaf.serial_number
    chain = rules.load_certificates(authority.chain(leaf), "chain")
    assert chain == [leaf, authority.certificate]


def test_validity_never_outlives_the_ca(tmp_path: Path) -> None:
    short = pki.make_ca("Short CA", days=10)
    cert_file, key_file = pki.write_ca(tmp_path, short)
    authority = ca.ChargerCA.from_files(str(cert_file), str(key_file), 365)
    leaf = authority.issue(pki.make_csr(pki.ec_key(), "CP001"), utcnow())
    assert leaf.not_valid_after_utc == short[0].not_valid_after_utc


def test_an_rsa_ca_signs_with_pss_and_a_p384_ca_with_sha384(tmp_path: Path) -> None:
    rsa_ca = charger_ca(tmp_path, key=pki.rsa_key(2048))
    leaf = rsa_ca.issue(pki.make_csr(pki.rsa_key(2048), "CP001"), utcnow())
    assert leaf.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS
    assert isinstance(leaf.signature_algorithm_parameters, padding.PSS)
    leaf.verify_directly_issued_by(rsa_ca.certificate)
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
    p384 = charger_ca(tmp_path, key=pki.ec_key(ec.SECP384R1()))
    leaf = p384.issue(pki.make_csr(pki.ec_key(), "CP001"), utcnow())
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA384)


def test_no_ca_configured_is_none_and_half_a_ca_is_an_error(tmp_path: Path) -> None:
    assert ca.from_settings(memory_settings()) is None
    assert ca.from_settings(memory_settings(charger_ca_cert_file="",
                                            charger_ca_key_file="")) is None
    with pytest.raises(ConfigurationError, match="set together"):
        ca.from_settings(memory_settings(charger_ca_cert_file=str(tmp_path / "x.pem")))


def test_unusable_ca_files_are_one_line_errors(tmp_path: Path) -> None:
    root = pki.make_ca()
    cert_file, key_file = pki.write_ca(tmp_path, root)
    other_key = tmp_path / "other.key"
    other_key.write_bytes(pki.key_pem(pki.ec_key()))
    leaf_file = tmp_path / "leaf.pem"
    leaf_file.write_text(pki.pem(pki.issue(root, root[1].public_key(), pki.name("x"))))
    cases = [
        (str(tmp_path / "missing.pem"), str(key_file), "cannot read"),
        (str(key_file), str(key_file), "not a PEM X.509 certificate"),
        (str(cert_file), str(cert_file), "not an unencrypted PEM private key"),
        (str(cert_file), str(other_key), "is not the key of"),
        (str(leaf_file), str(key_file), "not a CA certificate"),
    ]
    for cert, key, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            ca.ChargerCA.from_files(cert, key, 365)
