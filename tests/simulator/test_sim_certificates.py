"""Answers to the security extension's certificate calls, fed as frames into a Charger (no
sockets): ExtendedTriggerMessage and SignCertificate, CertificateSigned (A02/A03), and the
inventory of InstallCertificate, GetInstalledCertificateIds, DeleteCertificate (M03-M05)."""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from sim_helpers import WALL, Bench, booted, result_status, sent_calls
from sim_pki import issue, make_ca, make_sub_ca, sign_csr

from simulator.actions import SECURITY_CSMS_ACTIONS
from simulator.dispatch import HANDLERS
from simulator.frames import CALLRESULT, check

CS_ROOT = "CentralSystemRootCertificate"
MF_ROOT = "ManufacturerRootCertificate"


def _expected_hash(certificate: x509.Certificate, issuer: x509.Certificate) -> dict[str, str]:
    """CertificateHashData computed here from first principles (not with the OCSP builder)."""
    issuer_point = issuer.public_key().public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": hashlib.sha256(certificate.issuer.public_bytes()).hexdigest(),
        "issuerKeyHash": hashlib.sha256(issuer_point).hexdigest(),
        "serialNumber": format(certificate.serial_number, "x"),
    }


def test_every_security_action_has_an_answer() -> None:
    assert SECURITY_CSMS_ACTIONS <= set(HANDLERS)


# --- ExtendedTriggerMessage and CertificateSigned (A02) ----------------------------------------


def test_extended_trigger_message_core_messages_and_statuses() -> None:
    bench = booted(connectors=2)
    frames = bench.csms("ExtendedTriggerMessage", {"requestedMessage": "StatusNotification"})
    assert result_status(frames) == "Accepted"
    assert [c[3]["connectorId"] for c in bench.drain(frames[1:])] == [0, 1, 2]
    frames = bench.csms("ExtendedTriggerMessage", {"requestedMessage": "Heartbeat"}, "c2")
    assert [c[2] for c in bench.drain(frames[1:])] == ["Heartbeat"]
    rejected = {"requestedMessage": "MeterValues", "connectorId": 0}  # connectorId > 0
    assert bench.csms("ExtendedTriggerMessage", rejected, "c3") == [
        [3, "c3", {"status": "Rejected"}]
    ]
    frames = bench.csms(
        "ExtendedTriggerMessage", {"requestedMessage": "LogStatusNotification"}, "c4"
    )
    assert sent_calls(frames) == [("LogStatusNotification", {"status": "Idle"})]  # N01.FR.12
    bench.drain(frames[1:])
    frames = bench.csms(
        "ExtendedTriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}, "c5"
    )
    assert sent_calls(frames) == [("SignedFirmwareStatusNotification", {"status": "Idle"})]


def test_sign_charge_point_certificate_needs_a_cpo_name() -> None:
    bench = booted()
    trigger = {"requestedMessage": "SignChargePointCertificate"}
    assert result_status(bench.csms("ExtendedTriggerMessage", trigger)) == "Rejected"
    bench.csms("ChangeConfiguration", {"key": "CpoName", "value": "Sim CPO"}, "c2")
    frames = bench.csms("ExtendedTriggerMessage", trigger, "c3")
    assert result_status(frames) == "Accepted"
    ((action, payload),) = sent_calls(frames)
    csr = x509.load_pem_x509_csr(payload["csr"].encode())
    assert action == "SignCertificate" and csr.is_signature_valid
    subject = {a.oid: a.value for a in csr.subject}
    assert subject == {NameOID.COMMON_NAME: "CP-1", NameOID.ORGANIZATION_NAME: "Sim CPO"}
    # The CpoName change is logged as a security event, not sent (it is not critical).
    assert [e.type for e in bench.charger.security.log.entries] == [
        "ReconfigurationOfSecurityParameters"
    ]


def _csr(bench: Bench, unique_id: str = "t1") -> str:
    frames = bench.csms(
        "ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}, unique_id
    )
    ((_, payload),) = sent_calls(frames)
    bench.reply(frames[1])
    return str(payload["csr"])


def test_certificate_signed_is_accepted_only_for_the_last_csr() -> None:
    ca = make_ca("CPO CA")
    bench = booted(cpo_name="Sim CPO", certificate_cn="serial-0001")
    first = _csr(bench)
    assert x509.load_pem_x509_csr(first.encode()).subject.rfc4514_string() == (
        "O=Sim CPO,CN=serial-0001"
    )
    stale = sign_csr(ca, first)
    current = sign_csr(ca, _csr(bench, "t2"))  # a new key pair: the first one is stale
    frames = bench.csms("CertificateSigned", {"certificateChain": stale}, "c1")
    assert result_status(frames) == "Rejected"
    assert sent_calls(frames)[0][0] == "SecurityEventNotification"  # A02.FR.07
    assert sent_calls(frames)[0][1]["type"] == "InvalidChargePointCertificate"
    bench.drain(frames[1:])
    assert bench.charger.security.store.identity() is None
    assert result_status(bench.csms("CertificateSigned", {"certificateChain": current}, "c2")) == (
        "Accepted"
    )
    identity = bench.charger.security.store.identity()
    assert identity is not None and identity[1].decode() == current  # the chain is kept
    frames = bench.csms("CertificateSigned", {"certificateChain": "junk"}, "c3")
    assert result_status(frames) == "Rejected"
    bench.drain(frames[1:])
    expired = sign_csr(ca, _csr(bench, "t3"), days=-1)
    assert result_status(bench.csms("CertificateSigned", {"certificateChain": expired}, "c4")) == (
        "Rejected"
    )


# --- the certificate inventory (M03-M05) -------------------------------------------------------


def test_installed_certificates_are_listed_with_ocpp_hash_data() -> None:
    csms_root = make_ca("CSMS Root")
    bench = booted(central_system_roots=csms_root.cert_pem)
    frames = bench.csms("GetInstalledCertificateIds", {"certificateType": CS_ROOT})
    assert frames[0][2] == {
        "status": "Accepted",
        "certificateHashData": [_expected_hash(csms_root.certificate, csms_root.certificate)],
    }
    assert bench.csms("GetInstalledCertificateIds", {"certificateType": MF_ROOT}, "c2") == [
        [3, "c2", {"status": "NotFound"}]
    ]
    maker = make_ca("Maker Root")
    sub = make_sub_ca(maker)
    leaf = issue(maker, "not a CA")
    cases = [
        (maker.cert_pem, "Accepted"),
        (maker.cert_pem, "Accepted"),  # again: still one copy
        (sub.cert_pem, "Accepted"),  # a sub-CA whose issuer is installed
        (make_sub_ca(make_ca("Unknown")).cert_pem, "Rejected"),  # issuer not installed
        (leaf.cert_pem, "Rejected"),  # not a CA
        (maker.cert_pem + csms_root.cert_pem, "Rejected"),  # not one certificate
        ("not PEM", "Rejected"),
    ]
    for n, (pem, expected) in enumerate(cases):
        frames = bench.csms(
            "InstallCertificate", {"certificateType": MF_ROOT, "certificate": pem}, f"i{n}"
        )
        assert result_status(frames) == expected, n
    (listing,) = bench.csms("GetInstalledCertificateIds", {"certificateType": MF_ROOT}, "c3")
    assert listing[2]["certificateHashData"] == [
        _expected_hash(maker.certificate, maker.certificate),
        _expected_hash(sub.certificate, maker.certificate),
    ]
    check(CALLRESULT, "GetInstalledCertificateIds", listing[2])


def test_the_store_is_bounded_and_rejects_what_is_not_valid_now() -> None:
    bench = booted()
    expired = make_ca("Old")
    bench.charger.wall_clock = lambda: WALL + 10 * 365 * 86400.0  # years later
    install = {"certificateType": MF_ROOT, "certificate": expired.cert_pem}
    assert result_status(bench.csms("InstallCertificate", install)) == "Rejected"
    bench.charger.wall_clock = lambda: dt.datetime.now(dt.UTC).timestamp()
    for n in range(20):  # CertificateStoreMaxLength
        pem = make_ca(f"Root {n}").cert_pem
        frames = bench.csms("InstallCertificate", {**install, "certificate": pem}, f"c{n}")
        assert result_status(frames) == "Accepted"
        bench.drain(frames[1:])
    full = {**install, "certificate": make_ca("One too many").cert_pem}
    assert result_status(bench.csms("InstallCertificate", full, "x")) == "Rejected"  # M05.FR.03


def test_delete_certificate_and_what_cannot_be_deleted() -> None:
    first, second = make_ca("CSMS Root 1"), make_ca("CSMS Root 2")
    bench = booted(central_system_roots=first.cert_pem + second.cert_pem, cpo_name="CPO")
    store = bench.charger.security.store
    assert store.trust() is None  # unchanged: the --ca-file trust
    wanted = _expected_hash(second.certificate, second.certificate)
    unknown = {**wanted, "serialNumber": "1234"}
    assert result_status(bench.csms("DeleteCertificate", {"certificateHashData": unknown})) == (
        "NotFound"
    )
    # Connected over TLS with a server certificate that the second root issued: in use.
    server = issue(second, "localhost", server=True)
    bench.charger.disconnected(bench.tick())
    bench.boot(server_certificate=server.certificate.public_bytes(serialization.Encoding.DER))
    upper = {k: v.upper() if k != "hashAlgorithm" else v for k, v in wanted.items()}
    frames = bench.csms("DeleteCertificate", {"certificateHashData": upper}, "d1")
    assert result_status(frames) == "Failed"  # M04.FR.06
    first_hash = _expected_hash(first.certificate, first.certificate)
    by_sha384 = {
        "hashAlgorithm": "SHA384",
        **_hash384(first.certificate),
        "serialNumber": format(first.certificate.serial_number, "x"),
    }
    assert result_status(
        bench.csms("DeleteCertificate", {"certificateHashData": by_sha384}, "d2")
    ) == ("Accepted")
    assert store.hash_data(CS_ROOT) == [wanted] and first_hash not in store.hash_data(CS_ROOT)
    trust = store.trust()
    assert trust is not None and first.cert_pem not in trust[1] and second.cert_pem in trust[1]
    # The charger's own certificate cannot be deleted (M04.FR.05).
    chain = sign_csr(second, _csr(bench))
    assert result_status(bench.csms("CertificateSigned", {"certificateChain": chain}, "s1")) == (
        "Accepted"
    )
    own = x509.load_pem_x509_certificates(chain.encode())[0]
    frames = bench.csms(
        "DeleteCertificate", {"certificateHashData": _expected_hash(own, second.certificate)}, "d3"
    )
    assert result_status(frames) == "Failed"


def _hash384(certificate: x509.Certificate) -> dict[str, str]:
    point = certificate.public_key().public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {
        "issuerNameHash": hashlib.sha384(certificate.issuer.public_bytes()).hexdigest(),
        "issuerKeyHash": hashlib.sha384(point).hexdigest(),
    }
