"""GridLink's own charger CA (``GRIDLINK_CHARGER_CA_CERT_FILE`` / ``..._KEY_FILE``): it signs
the CSRs chargers send with SignCertificate (A02/A03; the CPO acting as CA, A00.FR.601).

The whitepaper advises a dedicated CA server (A02.FR.04, SHOULD NOT sign itself); this is
for installations where the CPO is the CA and GridLink holds its key. Without it, CSRs wait
for an external CA (``gridlink certificates pending`` / ``sign``).

A certificate issued here has the CSR's subject and public key, a fresh random serial
(A00.FR.508), ``basicConstraints CA:FALSE``, key usage digitalSignature (and
keyEncipherment for RSA keys, A00.FR.512), extended key usage clientAuth, subject and
authority key identifiers, and is valid from five minutes ago (clock skew) for
``GRIDLINK_CHARGER_CERT_DAYS``, never beyond the CA's own expiry. No subjectAltName
(A00.FR.511). The CA signs with ECDSA or RSA-PSS (A00.FR.505), SHA-256 (SHA-384 for a P-384
key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from commands.security.rules import is_ca, key_problem
from services.errors import ConfigurationError
from services.settings import Settings

CLOCK_SKEW = timedelta(minutes=5)


def _key_usage(*, digital_signature: bool = False, key_encipherment: bool = False
               ) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False,
        key_encipherment=key_encipherment, data_encipherment=False, key_agreement=False,
        key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False)


@dataclass(frozen=True)
class ChargerCA:
    """The CA certificate, its private key and the validity of what it issues."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    days: int

    @classmethod
    def from_files(cls, cert_file: str, key_file: str, days: int) -> ChargerCA:
        """Load the CA; ConfigurationError (one line) when it cannot be used."""
        try:
            certificate = x509.load_pem_x509_certificate(_read(cert_file, "CERT"))
        except ValueError:
            raise ConfigurationError("GRIDLINK_CHARGER_CA_CERT_FILE: not a PEM X.509 "
                                     "certificate") from None
        try:
            key = serialization.load_pem_private_key(_read(key_file, "KEY"), password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"GRIDLINK_CHARGER_CA_KEY_FILE: not an unencrypted PEM "
                                     f"private key ({exc})") from None
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ConfigurationError("GRIDLINK_CHARGER_CA_KEY_FILE: only RSA or EC keys sign "
                                     "charger certificates")
        if not is_ca(certificate):
            raise ConfigurationError("GRIDLINK_CHARGER_CA_CERT_FILE: not a CA certificate "
                                     "(basicConstraints CA:TRUE)")
        if key.public_key() != certificate.public_key():
            raise ConfigurationError("GRIDLINK_CHARGER_CA_KEY_FILE is not the key of "
                                     "GRIDLINK_CHARGER_CA_CERT_FILE")
        problem = key_problem(certificate.public_key())
        if problem is not None:
            raise ConfigurationError(f"GRIDLINK_CHARGER_CA_CERT_FILE: {problem}")
        return cls(certificate, key, days)

    def issue(self, csr: x509.CertificateSigningRequest, now: datetime) -> x509.Certificate:
        """A charger certificate for a CSR (already checked: see rules.check_csr)."""
        key = csr.public_key()
        not_after = min(now + timedelta(days=self.days), self.certificate.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True,
                                      key_encipherment=isinstance(key, rsa.RSAPublicKey)),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key),  # type: ignore[arg-type]
                           critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        algorithm, options = self._signature()
        return builder.sign(self.key, algorithm, **options)

    def chain(self, certificate: x509.Certificate) -> str:
        """CertificateSigned's certificateChain: the charger's certificate, then the CA's."""
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode()
                       for c in (certificate, self.certificate))

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)

    def _signature(self) -> tuple[hashes.HashAlgorithm, dict[str, Any]]:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            large = self.key.curve.key_size >= 384
            return (hashes.SHA384() if large else hashes.SHA256()), {}
        algorithm = hashes.SHA256()
        pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.DIGEST_LENGTH)
        return algorithm, {"rsa_padding": pss}


def _read(path: str, which: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigurationError(f"GRIDLINK_CHARGER_CA_{which}_FILE: cannot read {path}: "
                                 f"{exc.strerror}") from None


def from_settings(settings: Settings) -> ChargerCA | None:
    """The configured charger CA, or None (CSRs wait for an external CA)."""
    cert_file, key_file = settings.charger_ca_cert_file, settings.charger_ca_key_file
    if not cert_file and not key_file:
        return None
    if not cert_file or not key_file:
        raise ConfigurationError("GRIDLINK_CHARGER_CA_CERT_FILE and GRIDLINK_CHARGER_CA_KEY_FILE "
                                 "are set together (or neither)")
    return ChargerCA.from_files(cert_file, key_file, settings.charger_cert_days)
