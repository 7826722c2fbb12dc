"""The security extension's checks: CSRs, charger certificate chains, root certificates to
install, ExtendedTriggerMessage, security events, expiry arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from commands.security import rules
from services.ocpp16 import utcnow
from tests import pki

ORGS = ["Acme CPO"]


def check(pem: str, identity: str = "CP001", organizations: list[str] | None = None
          ) -> rules.CsrFacts:
    return rules.check_csr(pem, identity=identity,
                           organizations=ORGS if organizations is None else organizations)


def test_a_good_csr_gives_its_facts() -> None:
    key = pki.ec_key()
    facts = check(pki.csr_pem(pki.make_csr(key, "CP001", "Acme CPO")))
    assert (facts.common_name, facts.organization, facts.key) == (
        "CP001", "Acme CPO", "EC secp256r1")
    assert facts.public_key_id == rules.public_key_id(key.public_key())
    rsa_facts = check(pki.csr_pem(pki.make_csr(pki.rsa_key(2048), "CP001", "Acme CPO")))
    assert rsa_facts.key == "RSA 2048"
    p384 = check(pki.csr_pem(pki.make_csr(pki.ec_key(ec.SECP384R1()), "CP001", "Acme CPO")))
    assert p384.key == "EC secp384r1"


@pytest.mark.parametrize(("make", "reason"), [
    (lambda: "not a csr", "not a PEM certificate signing request"),
    (lambda: pki.tampered_csr_pem(pki.ec_key(), "CP001", "Acme CPO"), "signature does not"),
    (lambda: pki.csr_pem(pki.make_csr(pki.ec_key(), "CP002", "Acme CPO")), "CN CP002 is not"),
    (lambda: pki.csr_pem(pki.make_csr(pki.ec_key(), "CP001", "Evil Inc")),
     "O Evil Inc is not one of Acme CPO"),
    (lambda: pki.csr_pem(pki.make_csr(pki.ec_key(), "CP001")), "O (none) is not one of"),
    (lambda: pki.csr_pem(pki.make_csr(pki.rsa_key(1024), "CP001", "Acme CPO")),
     "RSA key of 1024 bits"),
    (lambda: pki.csr_pem(pki.make_csr(pki.ec_key(ec.SECP521R1()), "CP001", "Acme CPO")),
     "EC curve secp521r1"),
    (lambda: pki.csr_pem(pki.make_csr(ed25519.Ed25519PrivateKey.generate(), "CP001",
                                      "Acme CPO")), "key type Ed25519"),
    (lambda: pki.sha1_csr_pem(pki.rsa_key(2048), "CP001", "Acme CPO"), "signed with sha1"),
])
def test_a_bad_csr_is_rejected_with_the_reason(make, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(rules.CertificateRejected, match="csr: ") as raised:
        check(make())
    assert reason in str(raised.value)


def test_organisation_is_not_checked_when_none_is_configured() -> None:
    assert check(pki.csr_pem(pki.make_csr(pki.ec_key(), "CP001")), organizations=[]) \
        .organization is None


def test_the_same_csr_of_the_same_station_is_one_request() -> None:
    facts = check(pki.csr_pem(pki.make_csr(pki.ec_key(), "CP001", "Acme CPO")))
    assert rules.request_id("CP001", facts.der) == rules.request_id("CP001", facts.der)
    assert rules.request_id("CP001", facts.der) != rules.request_id("CP002", facts.der)


# --- CertificateSigned chains --------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> tuple[x509.Certificate, pki.Key]:
    return pki.make_ca()


def test_a_good_chain_gives_the_charger_certificate(ca: tuple[x509.Certificate, pki.Key]
                                                    ) -> None:
    key = pki.ec_key()
    leaf = pki.issue(ca, key.public_key(), pki.name("CP001", "Acme CPO"), days=10)
    facts = rules.check_chain(pki.pem(leaf, ca[0]), identity="CP001", now=utcnow())
    assert facts.serial == format(leaf.serial_number, "x")
    assert facts.public_key_id == rules.public_key_id(key.public_key())
    assert facts.common_name == "CP001" and facts.not_after == leaf.not_valid_after_utc
    # The charger certificate alone is a chain too.
    assert rules.check_chain(pki.pem(leaf), identity="CP001", now=utcnow()) == facts


def test_bad_chains_are_refused(ca: tuple[x509.Certificate, pki.Key]) -> None:
    key, now = pki.ec_key(), utcnow()
    subject = pki.name("CP001", "Acme CPO")
    other_ca = pki.make_ca("Other CA")
    cases = {
        "not PEM X.509": "garbage",
        "is a CA certificate": pki.pem(ca[0]),
        "expired at": pki.pem(pki.issue(ca, key.public_key(), subject, days=-1)),
        "CN 'CP009' is not 'CP001'": pki.pem(pki.issue(ca, key.public_key(),
                                                       pki.name("CP009"))),
        "does not allow TLS client": pki.pem(pki.issue(ca, key.public_key(), subject,
                                                       client_auth=False)),
        "certificate 1 is not issued by certificate 2": pki.pem(
            pki.issue(ca, key.public_key(), subject), other_ca[0]),
        "RSA key of 1024": pki.pem(pki.issue(ca, pki.rsa_key(1024).public_key(), subject)),
    }
    for reason, chain in cases.items():
        with pytest.raises(rules.CertificateRejected, match="certificateChain") as raised:
            rules.check_chain(chain, identity="CP001", now=now)
        assert reason in str(raised.value), reason


def test_a_chain_must_fit_the_stations_certificate_signed_max_size() -> None:
    assert rules.chain_size_problem("x" * 100, None) is None
    assert rules.chain_size_problem("x" * 100, 100) is None
    assert "more than the station's CertificateSignedMaxSize (99)" in (
        rules.chain_size_problem("x" * 100, 99) or "")


# --- InstallCertificate ----------------------------------------------------------------------


def test_only_a_root_ca_certificate_may_be_installed(ca: tuple[x509.Certificate, pki.Key]
                                                     ) -> None:
    now = utcnow()

    def problem(certificate: str) -> str | None:
        return rules.install_problem({"certificateType": "CentralSystemRootCertificate",
                                      "certificate": certificate}, now)

    assert problem(pki.pem(ca[0])) is None
    assert "not PEM X.509" in (problem("-----BEGIN CERTIFICATE-----\nxx\n") or "")
    assert "2 certificates" in (problem(pki.pem(ca[0], ca[0])) or "")
    leaf = pki.issue(ca, pki.ec_key().public_key(), pki.name("CP001"))
    assert "not a CA certificate" in (problem(pki.pem(leaf)) or "")
    intermediate, _ = pki.make_ca("Sub CA", issuer=ca)
    assert "not a root certificate" in (problem(pki.pem(intermediate)) or "")
    old, _ = pki.make_ca("Old CA", days=-1)
    assert "expired at" in (problem(pki.pem(old)) or "")
    weak, _ = pki.make_ca("Weak CA", key=pki.rsa_key(1024))
    assert "RSA key of 1024 bits" in (problem(pki.pem(weak)) or "")


# --- ExtendedTriggerMessage ---------------------------------------------------------------


@pytest.mark.parametrize(("payload", "problem"), [
    ({"requestedMessage": "SignChargePointCertificate"}, None),
    ({"requestedMessage": "StatusNotification", "connectorId": 2}, None),
    ({"requestedMessage": "MeterValues", "connectorId": 1}, None),
    ({"requestedMessage": "StatusNotification"}, None),
    ({"requestedMessage": "StatusNotification", "connectorId": 0}, "must be > 0"),
    ({"requestedMessage": "BootNotification", "connectorId": 1}, "whole station"),
    ({"requestedMessage": "SignChargePointCertificate", "connectorId": 1}, "whole station"),
    ({"requestedMessage": "LogStatusNotification", "connectorId": 1}, "whole station"),
    ({"requestedMessage": "FirmwareStatusNotification", "connectorId": 1}, "whole station"),
    ({"requestedMessage": "Heartbeat", "connectorId": 1}, "whole station"),
    ({"requestedMessage": "DiagnosticsStatusNotification"}, "not a MessageTriggerEnumType"),
])
def test_trigger_connector_only_where_it_makes_sense(payload: dict[str, object],
                                                    problem: str | None) -> None:
    found = rules.trigger_problem(payload)
    assert (found is None) == (problem is None), found
    if problem is not None:
        assert problem in (found or "")


def test_the_trigger_messages_are_the_schema_enum() -> None:
    from ocpp.messages import get_validator

    schema = get_validator(2, "ExtendedTriggerMessage", "1.6").schema
    enum = schema["definitions"]["MessageTriggerEnumType"]["enum"]
    assert sorted(rules.TRIGGER_MESSAGES) == sorted(enum)


# --- security events and expiry -----------------------------------------------------------


def test_critical_events_are_the_whitepapers() -> None:
    assert rules.is_critical("TamperDetectionActivated")
    assert rules.is_critical("StartupOfTheDevice")
    assert not rules.is_critical("InvalidTLSVersion")
    assert not rules.is_critical("SomethingVendorSpecific")
    assert not rules.CRITICAL_EVENTS & rules.OTHER_EVENTS
    assert len(rules.CRITICAL_EVENTS | rules.OTHER_EVENTS) == 18  # the list in §8


def test_days_left() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert rules.days_left(now + timedelta(days=3, hours=1), now) == 3
    assert rules.days_left(now - timedelta(hours=1), now) == -1
    assert rules.expiry_limit(now, 30) == now + timedelta(days=30)
