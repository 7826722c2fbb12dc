"""The security extension's checks, without I/O (OCPP 1.6 Security Whitepaper ed. 2).

- Security events (§8): which are critical.
- SignCertificate (A02/A03): :func:`check_csr` — the CSR parses, its signature verifies,
  its CN is the station's certificate identity (A00.FR.511), its O one of the configured
  organisations (A02.FR.13, A00.FR.509), its key strong enough (A00.FR.501-503: RSA of at
  least 2048 bits, or EC P-256 / P-384) and its signature hash not SHA-1 or MD5 (A00.FR.504).
- CertificateSigned: :func:`check_chain` — PEM certificates, the first the charger's (not a
  CA, not expired, the station's CN, usable for TLS client authentication), each issued by
  the next; no longer than the station's CertificateSignedMaxSize (:func:`chain_size_problem`).
- InstallCertificate (M05): :func:`install_problem` — one PEM X.509 root CA certificate.
- ExtendedTriggerMessage (§5.5): :func:`trigger_problem` — connectorId (> 0) only for the
  messages that are about a connector.

Problems are raised as :class:`CertificateRejected` (a ValueError) with one line saying why.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# --- security events --------------------------------------------------------------------

#: The whitepaper's security events (§8) marked critical: chargers push these at once.
CRITICAL_EVENTS = frozenset({
    "FirmwareUpdated", "SettingSystemTime", "StartupOfTheDevice", "ResetOrReboot",
    "SecurityLogWasCleared", "MemoryExhaustion", "TamperDetectionActivated",
})
#: The other events of the list (§8), not critical.
OTHER_EVENTS = frozenset({
    "FailedToAuthenticateAtCentralSystem", "CentralSystemFailedToAuthenticate",
    "ReconfigurationOfSecurityParameters", "InvalidMessages", "AttemptedReplayAttacks",
    "InvalidFirmwareSignature", "InvalidFirmwareSigningCertificate",
    "InvalidCentralSystemCertificate", "InvalidChargePointCertificate", "InvalidTLSVersion",
    "InvalidTLSCipherSuite",
})
#: The event GridLink records (source ``csms``) when it rejects a charger's CSR.
INVALID_CSR = "InvalidCertificateSigningRequest"


def is_critical(event_type: str) -> bool:
    """Is this a critical security event of the whitepaper's list?"""
    return event_type in CRITICAL_EVENTS


# --- keys and names ---------------------------------------------------------------------

#: EC curves accepted for charger keys.
CURVES = ("secp256r1", "secp384r1")
MIN_RSA_BITS = 2048
WEAK_HASHES = ("sha1", "md5")


class CertificateRejected(ValueError):
    """A CSR or a certificate GridLink does not accept (the message says why)."""


def key_description(key: Any) -> str:
    """``RSA 2048``, ``EC secp256r1`` or the key's type name."""
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    return type(key).__name__.removeprefix("_")


def key_problem(key: Any) -> str | None:
    """Why a charger's public key is not acceptable, or None."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            return f"RSA key of {key.key_size} bits: at least {MIN_RSA_BITS} required"
        return None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in CURVES:
            return f"EC curve {key.curve.name}: only P-256 or P-384 accepted"
        return None
    return f"key type {key_description(key)}: only RSA (2048+) or EC P-256/P-384 accepted"


def public_key_id(key: Any) -> str:
    """SHA-256 of the key's SubjectPublicKeyInfo (DER), hexadecimal: which CSR a certificate
    answers."""
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


def common_name(name: x509.Name) -> str | None:
    """The (first) CN of a name."""
    names = _attribute(name, NameOID.COMMON_NAME)
    return names[0] if names else None


# --- SignCertificate ----------------------------------------------------------------------


@dataclass(frozen=True)
class CsrFacts:
    """What GridLink keeps of an accepted CSR."""

    common_name: str
    organization: str | None
    key: str  # key_description
    public_key_id: str
    der: bytes


def check_csr(pem: str, *, identity: str, organizations: list[str]) -> CsrFacts:
    """Check a SignCertificate CSR for the station whose certificate CN must be ``identity``;
    raise CertificateRejected with the first problem."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        raise CertificateRejected("csr: not a PEM certificate signing request") from None
    try:
        algorithm = csr.signature_hash_algorithm
        if algorithm is not None and algorithm.name in WEAK_HASHES:
            raise CertificateRejected(f"csr: signed with {algorithm.name}, a hash not allowed")
        valid = csr.is_signature_valid
    except UnsupportedAlgorithm:
        raise CertificateRejected("csr: signature algorithm not supported") from None
    if not valid:
        raise CertificateRejected("csr: its signature does not verify")
    names = _attribute(csr.subject, NameOID.COMMON_NAME)
    if names != [identity]:
        raise CertificateRejected(f"csr: CN {', '.join(names) or '(none)'} is not {identity!r}")
    found = _attribute(csr.subject, NameOID.ORGANIZATION_NAME)
    if organizations and not set(found) & set(organizations):
        raise CertificateRejected(
            f"csr: O {', '.join(found) or '(none)'} is not one of {', '.join(organizations)}")
    key = csr.public_key()
    problem = key_problem(key)
    if problem is not None:
        raise CertificateRejected(f"csr: {problem}")
    return CsrFacts(common_name=identity, organization=found[0] if found else None,
                    key=key_description(key), public_key_id=public_key_id(key),
                    der=csr.public_bytes(serialization.Encoding.DER))


def request_id(station: str, csr_der: bytes) -> str:
    """The stored request's id: the same CSR from the same station is one request."""
    return hashlib.sha256(station.encode() + b"\0" + csr_der).hexdigest()[:32]


# --- certificates -------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateFacts:
    """What GridLink records of a certificate."""

    serial: str  # hexadecimal
    common_name: str | None
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    fingerprint: str  # SHA-256 of the DER form
    public_key_id: str


def facts(certificate: x509.Certificate) -> CertificateFacts:
    der = certificate.public_bytes(serialization.Encoding.DER)
    return CertificateFacts(
        serial=format(certificate.serial_number, "x"),
        common_name=common_name(certificate.subject),
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        fingerprint=hashlib.sha256(der).hexdigest(),
        public_key_id=public_key_id(certificate.public_key()),
    )


def load_certificates(pem: str, what: str) -> list[x509.Certificate]:
    """Every certificate of a PEM text (at least one)."""
    try:
        found = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise CertificateRejected(f"{what}: not PEM X.509 certificates") from None
    return found


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return bool(constraints.value.ca)


def _extended_key_usage(certificate: x509.Certificate) -> list[x509.ObjectIdentifier] | None:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return None
    return list(usage.value)


def check_chain(pem: str, *, identity: str, now: datetime) -> CertificateFacts:
    """Check a CertificateSigned chain for the station whose CN must be ``identity``; the
    charger certificate's facts, or CertificateRejected."""
    chain = load_certificates(pem, "certificateChain")
    leaf = chain[0]
    if is_ca(leaf):
        raise CertificateRejected("certificateChain: the first certificate is a CA certificate, "
                                  "not the charger's")
    try:
        leaf_facts = facts(leaf)
    except UnsupportedAlgorithm:
        raise CertificateRejected("certificateChain: the charger certificate's key type is "
                                  "not supported") from None
    if leaf_facts.not_after <= now:
        raise CertificateRejected(f"certificateChain: the charger certificate expired at "
                                  f"{leaf_facts.not_after.isoformat()}")
    if leaf_facts.common_name != identity:
        raise CertificateRejected(f"certificateChain: CN {leaf_facts.common_name!r} is not "
                                  f"{identity!r}")
    usage = _extended_key_usage(leaf)
    if usage is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
        raise CertificateRejected("certificateChain: the charger certificate does not allow "
                                  "TLS client authentication (extended key usage)")
    problem = key_problem(leaf.public_key())
    if problem is not None:
        raise CertificateRejected(f"certificateChain: {problem}")
    for position, (certificate, issuer) in enumerate(itertools.pairwise(chain)):
        try:
            certificate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            raise CertificateRejected(f"certificateChain: certificate {position + 1} is not "
                                      f"issued by certificate {position + 2}") from None
    return leaf_facts


def chain_size_problem(chain: str, max_size: int | None) -> str | None:
    """Why a chain is too long for the station's CertificateSignedMaxSize (§7.3), or None
    (also when the station never reported the key)."""
    if max_size is not None and 0 < max_size < len(chain):
        return (f"certificateChain: {len(chain)} characters, more than the station's "
                f"CertificateSignedMaxSize ({max_size})")
    return None


def install_problem(payload: dict[str, Any], now: datetime) -> str | None:
    """What is wrong with a (schema-valid) InstallCertificate payload, or None."""
    try:
        found = load_certificates(payload["certificate"], "certificate")
    except CertificateRejected as exc:
        return str(exc)
    if len(found) != 1:
        return f"certificate: {len(found)} certificates; InstallCertificate takes one"
    certificate = found[0]
    if not is_ca(certificate):
        return "certificate: not a CA certificate (basicConstraints CA:TRUE)"
    if certificate.issuer != certificate.subject:
        return "certificate: not a root certificate (its issuer is not its subject)"
    if certificate.not_valid_after_utc <= now:
        return f"certificate: expired at {certificate.not_valid_after_utc.isoformat()}"
    try:
        problem = key_problem(certificate.public_key())
    except UnsupportedAlgorithm:
        problem = "key type not supported"
    return f"certificate: {problem}" if problem else None


# --- ExtendedTriggerMessage ---------------------------------------------------------------

#: MessageTriggerEnumType (§6.14).
TRIGGER_MESSAGES = ("BootNotification", "LogStatusNotification", "FirmwareStatusNotification",
                    "Heartbeat", "MeterValues", "SignChargePointCertificate",
                    "StatusNotification")
#: The triggered messages that can be about one connector.
CONNECTOR_MESSAGES = frozenset({"MeterValues", "StatusNotification"})


def trigger_problem(payload: dict[str, Any]) -> str | None:
    """What is wrong with a (schema-valid) ExtendedTriggerMessage payload, or None."""
    message = payload["requestedMessage"]
    if message not in TRIGGER_MESSAGES:
        return f"requestedMessage: {message!r} is not a MessageTriggerEnumType value"
    if "connectorId" not in payload:
        return None
    if message not in CONNECTOR_MESSAGES:
        return f"connectorId: {message} is about the whole station, not a connector"
    if payload["connectorId"] <= 0:
        return "connectorId must be > 0 (omit it for the whole station)"
    return None


# --- expiry -------------------------------------------------------------------------------

#: Windows of the expiry gauge, in days (0: expired already).
EXPIRY_WINDOWS = (0, 7, 30)


def expiry_limit(now: datetime, days: float) -> datetime:
    """Certificates whose notAfter is at or before this expire within ``days``."""
    return now + timedelta(days=days)


def days_left(not_after: datetime, now: datetime) -> int:
    """Whole days until ``not_after`` (negative once expired)."""
    return (not_after - now) // timedelta(days=1)
