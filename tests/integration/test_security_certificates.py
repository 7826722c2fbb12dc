"""The security extension end to end (Security Whitepaper ed. 2): SignCertificate answered by
GridLink's charger CA or by an operator's external CA, security events, the installed
certificates' inventory, ExtendedTriggerMessage and the expiry report.

Chargers are raw-frame test chargers over a real WebSocket; keys, CSRs and certificates are
made in the tests. GridLink's own CA runs in a stack of its own (``ca_stack``: its own
namespace and database), so which commands replica takes a CSR decides nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store

from commands.security import repository
from services.ocpp16 import utcnow
from tests import pki
from tests.charger import Charger, now
from tests.helpers import add_station, delete_namespace, new_id, refused_before_the_charger
from tests.processes import Stack, finish, metric_value, wait_for

pytestmark = pytest.mark.integration

ORGANIZATION = "Acme CPO"


@pytest.fixture(scope="module")
async def ca_stack(amqp_url: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[tuple[Stack, x509.Certificate]]:
    """gateway + authz + commands with GridLink's charger CA, and the CA's certificate."""
    directory = tmp_path_factory.mktemp("charger-ca")
    authority = pki.make_ca("GridLink Charger CA")
    cert_file, key_file = pki.write_ca(directory, authority)
    namespace = f"gltest-ca-{uuid.uuid4().hex[:8]}"
    stack = Stack(amqp_url=amqp_url, mongo_url=mongo_url, namespace=namespace,
                  database=namespace.replace("-", "_"), logs=directory, extra_env={
                      "GRIDLINK_CHARGER_CA_CERT_FILE": str(cert_file),
                      "GRIDLINK_CHARGER_CA_KEY_FILE": str(key_file),
                      "GRIDLINK_TLS_CLIENT_ORGANIZATIONS": json.dumps([ORGANIZATION])})
    try:
        for component in ("authz", "commands"):
            await stack.wait_ready(stack.spawn(component))
        await stack.start_gateway()
        yield stack, authority[0]
    finally:
        await stack.stop()
        await delete_namespace(amqp_url, namespace, ("authz", "commands"))


def verify_client_chain(chain_pem: str, root: x509.Certificate) -> x509.Certificate:
    """Verify a charger's chain as a TLS server would (RFC 5280, client authentication),
    allowing what A00.FR.511 asks for: no subjectAltName. The charger certificate."""
    leaf, *intermediates = x509.load_pem_x509_certificates(chain_pem.encode())
    policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    verifier = (PolicyBuilder().store(Store([root])).time(utcnow())
                .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                                    ee_policy=policy)
                .build_client_verifier())
    verifier.verify(leaf, intermediates)
    return leaf


async def quiet(charger: Charger) -> None:
    """A round trip through the gateway after which no CSMS call is waiting."""
    assert "currentTime" in await charger.result("Heartbeat", {})
    assert charger.incoming.empty()


async def document(stack: Stack, collection: str, query: dict[str, Any]) -> dict[str, Any]:
    """The document the commands service writes once it has the charger's answer."""
    found: list[dict[str, Any]] = []

    async def stored() -> bool:
        doc = await stack.db()[collection].find_one(query)
        found[:] = [doc] if doc else []
        return bool(found)

    await wait_for(stored, timeout=20, what=f"{collection} {query}")
    return found[0]


# --- SignCertificate with GridLink's CA -----------------------------------------------------


async def test_a_good_csr_is_accepted_and_signed_by_gridlinks_ca(
        ca_stack: tuple[Stack, x509.Certificate]) -> None:
    """A02: the operator asks for a new certificate, the charger sends a CSR, GridLink's CA
    signs it."""
    stack, authority = ca_stack
    station = new_id("SIGN")
    await add_station(stack, station)
    key = pki.ec_key()
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("trigger", station, "SignChargePointCertificate")
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2:] == ["ExtendedTriggerMessage",
                             {"requestedMessage": "SignChargePointCertificate"}]
        await charger.answer([3, frame[1], {"status": "Accepted"}])
        code, out, err = await finish(process, 30)
        assert (code, json.loads(out)) == (0, {"status": "Accepted"}), err
        answer = await charger.result("SignCertificate", {
            "csr": pki.csr_pem(pki.make_csr(key, station, ORGANIZATION))})
        assert answer == {"status": "Accepted"}
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2] == "CertificateSigned"
        leaf = verify_client_chain(frame[3]["certificateChain"], authority)
        assert leaf.public_key() == key.public_key()
        assert leaf.subject == pki.name(station, ORGANIZATION)
        await charger.answer([3, frame[1], {"status": "Accepted"}])
        recorded = await document(stack, repository.CHARGER_CERTIFICATES, {"station": station})
    assert recorded["serial"] == format(leaf.serial_number, "x")
    assert recorded["status"] == "Accepted" and recorded["common_name"] == station
    request = await stack.db()[repository.CERTIFICATE_REQUESTS].find_one({"station": station})
    assert request["status"] == "accepted" and request["signed_by"] == "gridlink"
    code, out, err = await stack.cli("certificates", "expiring", "--days", "400", "--json")
    assert code == 0, err
    assert [r["serialNumber"] for r in json.loads(out) if r["station"] == station] == [
        recorded["serial"]]
    code, out, _ = await stack.cli("certificates", "expiring", "--json")  # 30 days
    assert all(r["station"] != station for r in json.loads(out))


async def test_bad_csrs_are_rejected_and_recorded_as_security_events(
        ca_stack: tuple[Stack, x509.Certificate]) -> None:
    stack, _ = ca_stack
    station = new_id("BADCSR")
    await add_station(stack, station)
    bad = {
        "is not": pki.csr_pem(pki.make_csr(pki.ec_key(), "SOMEONE-ELSE", ORGANIZATION)),
        "is not one of Acme CPO": pki.csr_pem(pki.make_csr(pki.ec_key(), station, "Evil")),
        "signature does not verify": pki.tampered_csr_pem(pki.ec_key(), station, ORGANIZATION),
    }
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        for csr in bad.values():
            assert await charger.result("SignCertificate", {"csr": csr}) == {
                "status": "Rejected"}
        await quiet(charger)
    code, out, err = await stack.cli("security", "events", "--station", station, "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert {(r["type"], r["source"]) for r in rows} == {
        ("InvalidCertificateSigningRequest", "csms")}
    assert len(rows) == 3
    for reason in bad:
        assert any(reason in r["techInfo"] for r in rows), reason
    assert await stack.db()[repository.CERTIFICATE_REQUESTS].count_documents(
        {"station": station}) == 0


# --- security events ------------------------------------------------------------------------


async def test_a_security_event_sent_twice_is_stored_once_and_listed(stack: Stack) -> None:
    station = new_id("SEC")
    await add_station(stack, station)
    event = {"type": "TamperDetectionActivated", "timestamp": now(), "techInfo": "lid open"}
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        for _ in range(2):  # the charger did not see our first answer and sends it again
            assert await charger.result("SecurityEventNotification", event) == {}
    code, out, err = await stack.cli("security", "events", "--station", station, "--json")
    assert code == 0, err
    [row] = json.loads(out)
    assert (row["type"], row["source"], row["techInfo"], row["critical"]) == (
        "TamperDetectionActivated", "charger", "lid open", True)
    code, out, _ = await stack.cli("security", "events", "--station", station)
    assert "TamperDetectionActivated" in out and station in out


# --- SignCertificate with an external CA ----------------------------------------------------


async def test_a_pending_csr_is_answered_with_an_operators_chain(stack: Stack,
                                                                 tmp_path: Path) -> None:
    station = new_id("EXT")
    await add_station(stack, station)
    key = pki.ec_key()
    csr = pki.make_csr(key, station, ORGANIZATION)
    external = pki.make_ca("Operator CA")
    wrong = tmp_path / "wrong.pem"
    wrong.write_text(pki.pem(pki.issue(external, pki.ec_key().public_key(), csr.subject)))
    leaf = pki.issue(external, key.public_key(), csr.subject, days=10)
    chain = tmp_path / "chain.pem"
    chain.write_text(pki.pem(leaf, external[0]))
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        assert await charger.result("SignCertificate", {"csr": pki.csr_pem(csr)}) == {
            "status": "Accepted"}
        code, out, err = await stack.cli("certificates", "pending", "--json")
        assert code == 0, err
        [row] = [r for r in json.loads(out) if r["station"] == station]
        assert (row["commonName"], row["organization"], row["key"]) == (
            station, ORGANIZATION, "EC secp256r1")
        code, out, err = await stack.cli("certificates", "sign", station, "--chain", str(wrong))
        assert (code, out) == (1, "")
        assert "invalid command: UnknownCertificateRequest" in err
        await quiet(charger)  # neither the CSR nor the wrong chain sent anything
        process = await stack.start_cli("certificates", "sign", station, "--chain", str(chain))
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2:] == ["CertificateSigned", {"certificateChain": chain.read_text()}]
        await charger.answer([3, frame[1], {"status": "Accepted"}])
        code, out, err = await finish(process, 30)
    assert code == 0, err
    assert json.loads(out)["serialNumber"] == format(leaf.serial_number, "x")
    code, out, _ = await stack.cli("certificates", "pending", "--json")
    assert all(r["station"] != station for r in json.loads(out))
    code, out, _ = await stack.cli("certificates", "expiring", "--days", "30", "--json")
    [soon] = [r for r in json.loads(out) if r["station"] == station]
    assert (soon["kind"], soon["daysLeft"]) == ("ChargePointCertificate", 9)
    code, out, _ = await stack.cli("certificates", "expiring", "--days", "5", "--json")
    assert all(r["station"] != station for r in json.loads(out))
    # A commands replica started now counts it on its first refresh of the gauge.
    replica = stack.spawn("commands")
    try:
        await stack.wait_ready(replica)
        sample = 'gridlink_commands_certificates_expiring{days="30",kind="charger"}'

        async def counted() -> bool:
            return (await metric_value(replica.url("/metrics"), sample) or 0) >= 1

        await wait_for(counted, timeout=20, what="the expiring gauge")
    finally:
        await stack.stop_process(replica)


# --- installed certificates -----------------------------------------------------------------


def charger_hash(certificate: x509.Certificate) -> dict[str, str]:
    """CertificateHashDataType as a charger computes it (OCSP's CertID, here by cryptography's
    OCSP request builder), for a root certificate."""
    request = ocsp.OCSPRequestBuilder().add_certificate(
        certificate, certificate, hashes.SHA256()).build()
    return {"hashAlgorithm": "SHA256", "issuerNameHash": request.issuer_name_hash.hex(),
            "issuerKeyHash": request.issuer_key_hash.hex(),
            "serialNumber": format(request.serial_number, "x")}


async def answer_listing(charger: Charger, answers: dict[str, dict[str, Any]]) -> None:
    """Answer GetInstalledCertificateIds for each type the CLI asks about."""
    for _ in answers:
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2] == "GetInstalledCertificateIds"
        await charger.answer([3, frame[1], answers[frame[3]["certificateType"]]])


async def test_install_list_and_delete_keep_the_inventory(stack: Stack, tmp_path: Path) -> None:
    station = new_id("INV")
    await add_station(stack, station)
    root, _ = pki.make_ca("CSMS Root")
    vendor, _ = pki.make_ca("Vendor Root")
    absent, _ = pki.make_ca("Absent Root")
    root_file = tmp_path / "root.pem"
    root_file.write_text(pki.pem(root))
    serial = format(vendor.serial_number, "x")
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("certificates", "install", station, "--type",
                                        "CentralSystemRootCertificate", str(root_file))
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2:] == ["InstallCertificate", {
            "certificateType": "CentralSystemRootCertificate", "certificate": pki.pem(root)}]
        await charger.answer([3, frame[1], {"status": "Accepted"}])
        code, _, err = await finish(process, 30)
        assert code == 0, err
        process = await stack.start_cli("certificates", "list", station, "--json")
        await answer_listing(charger, {
            "CentralSystemRootCertificate": {"status": "Accepted", "certificateHashData": [
                charger_hash(root), charger_hash(vendor)]},
            "ManufacturerRootCertificate": {"status": "NotFound"}})
        code, out, err = await finish(process, 30)
        assert code == 0, err
        rows = json.loads(out)
        assert [r["hashData"] for r in rows] == [charger_hash(root), charger_hash(vendor)]
        assert rows[0]["subject"] == root.subject.rfc4514_string()  # GridLink installed it
        # Certificates the station does not hold are refused before it hears of them.
        absent_hash = json.dumps({"certificateHashData": charger_hash(absent)})
        got, _, err = await stack.cli("command", station, "DeleteCertificate", absent_hash)
        assert got == 1 and "invalid command: UnknownCertificate" in err
        got, _, err = await stack.cli("certificates", "delete", station, "--serial", "abc123")
        assert got == 1 and "no certificate with serial abc123" in err
        await quiet(charger)
        process = await stack.start_cli("certificates", "delete", station, "--serial", serial)
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2:] == ["DeleteCertificate", {"certificateHashData": charger_hash(vendor)}]
        await charger.answer([3, frame[1], {"status": "Accepted"}])
        code, _, err = await finish(process, 30)
        assert code == 0, err
        inventory = await repository.inventory_rows(stack.db(), station)
        assert [r["hashData"] for r in inventory] == [charger_hash(root)]
        # The last CentralSystemRootCertificate needs --force (M04's advice).
        got, _, err = await stack.cli("certificates", "delete", station, "--serial",
                                      format(root.serial_number, "x"))
        assert got == 1 and "last CentralSystemRootCertificate" in err
        await quiet(charger)


async def test_a_certificate_that_is_not_a_root_is_never_installed(stack: Stack,
                                                                   tmp_path: Path) -> None:
    authority = pki.make_ca()
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(pki.pem(pki.issue(authority, pki.ec_key().public_key(), pki.name("x"))))
    await refused_before_the_charger(
        stack, "INST", ["certificates", "install", "{station}", "--type",
                        "ManufacturerRootCertificate", str(leaf)],
        1, "invalid command: PropertyConstraintViolation certificate: not a CA certificate")


# --- ExtendedTriggerMessage -----------------------------------------------------------------


async def test_a_connector_for_a_station_message_never_reaches_the_charger(stack: Stack
                                                                         ) -> None:
    await refused_before_the_charger(
        stack, "TRG", ["trigger", "{station}", "SignChargePointCertificate", "--connector", "1"],
        1, "invalid command: PropertyConstraintViolation connectorId")


async def test_extended_trigger_message_is_sent(stack: Stack) -> None:
    station = new_id("TRG")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("trigger", station, "StatusNotification",
                                        "--connector", "2")
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2:] == ["ExtendedTriggerMessage",
                             {"requestedMessage": "StatusNotification", "connectorId": 2}]
        await charger.answer([3, frame[1], {"status": "Rejected"}])
        code, out, err = await finish(process, 30)
    assert (code, out) == (1, "")
    assert "rejected: " in err and "ExtendedTriggerMessage Rejected" in err
