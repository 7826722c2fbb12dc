"""The security feature over the in-memory bus and store: charger calls through the router,
commands through the command path, the events between them, the inventory and the gauge."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client import REGISTRY

from commands import station_configuration
from commands.hooks import CommandHooks
from commands.lifecycle import Lifecycle
from commands.repository import CommandRepository
from commands.security import certificate_hashes as ch
from commands.security import expiry, repository, rules
from commands.security import hooks as security
from commands.service import SPEC
from services import security_events, stations
from services.envelope import CallOutcome, ChargerCall, CommandRequest, CommandResult, CsmsCall
from services.memory import MemoryBus, MemoryMessage
from services.ocpp16 import utcnow
from services.router import Dispatched, Router
from tests import pki
from tests.helpers import memory_runtime

STATION = "CP-1"


class Commands:
    """A commands process with only the security feature, a gateway holding CP-1 and a
    requester."""

    def __init__(self, **settings: Any) -> None:
        self.runtime = memory_runtime(SPEC, **settings)
        self.db = self.runtime.store.db
        self.hooks = CommandHooks(runtime=self.runtime, router=Router("commands"))
        self.lifecycle = Lifecycle(self.runtime, CommandRepository(self.db), self.hooks)
        security.register(self.hooks, self.lifecycle)
        bus = self.runtime.bus
        assert isinstance(bus, MemoryBus)
        self.bus = bus

    async def setup(self) -> Commands:
        await stations.add_station(self.db, STATION, registration="Accepted", password=None,
                                   now=utcnow())
        await self.bus.declare_private_queue("requester")
        gateway = await self.bus.declare_private_queue("gateway")
        self.bus.bind(gateway, self.runtime.topology.stations, STATION)
        return self

    async def charger(self, action: str, payload: dict[str, Any], unique_id: str = "u1"
                      ) -> dict[str, Any]:
        """A charger CALL through the router; its events are then delivered as the broker
        would. The answer's payload."""
        dispatched: Dispatched = await self.hooks.router.dispatch(ChargerCall(
            station=STATION, session="s1", unique_id=unique_id, action=action,
            payload=payload, received_at=utcnow()))
        for event in dispatched.events:
            await self.event(event.routing_key, event.body)
        assert dispatched.reply is not None and dispatched.reply.payload is not None, \
            dispatched.reply
        return dispatched.reply.payload

    async def event(self, key: str, body: dict[str, Any]) -> None:
        await self.lifecycle.handle_event(MemoryMessage(  # type: ignore[arg-type]
            json.dumps(body).encode(), self.runtime.topology.events, key))

    async def request(self, action: str, payload: dict[str, Any], command_id: str) -> None:
        await self.lifecycle.handle_request(MemoryMessage(  # type: ignore[arg-type]
            CommandRequest(station=STATION, action=action, payload=payload,
                           command_id=command_id).to_bytes(),
            self.runtime.topology.commands_in, "command", reply_to="requester"))

    def sent(self) -> list[CsmsCall]:
        return [CsmsCall.model_validate_json(m.body) for m in self.bus.waiting("gateway")]

    def results(self) -> list[CommandResult]:
        return [CommandResult.model_validate_json(m.body)
                for m in self.bus.waiting("requester")]

    async def answer(self, call: CsmsCall, payload: dict[str, Any]) -> None:
        outcome = CallOutcome(command_id=call.command_id, station=STATION, action=call.action,
                              status="result", payload=payload, at=utcnow())
        await self.lifecycle.handle_outcome(MemoryMessage(  # type: ignore[arg-type]
            outcome.to_bytes(), self.runtime.topology.calls, f"outcome.{call.action}"))

    async def command(self, action: str, payload: dict[str, Any], answer: dict[str, Any],
                      command_id: str) -> CommandResult:
        """A command the charger answers; its result."""
        await self.request(action, payload, command_id)
        call = self.sent()[-1]
        assert call.command_id == command_id
        await self.answer(call, answer)
        return self.results()[-1]


@pytest.fixture
async def world() -> Commands:
    return await Commands().setup()


@pytest.fixture
async def with_ca(tmp_path: Path) -> tuple[Commands, x509.Certificate]:
    authority = pki.make_ca()
    cert_file, key_file = pki.write_ca(tmp_path, authority)
    commands = await Commands(charger_ca_cert_file=str(cert_file),
                              charger_ca_key_file=str(key_file)).setup()
    return commands, authority[0]


# --- security events --------------------------------------------------------------------


async def test_a_security_event_is_stored_once_and_a_critical_one_warns(
        world: Commands, caplog: pytest.LogCaptureFixture) -> None:
    event = {"type": "TamperDetectionActivated", "timestamp": "2026-11-23T10:00:00Z",
             "techInfo": "door opened"}
    with caplog.at_level(logging.INFO, logger="gridlink.commands.security"):
        assert await world.charger("SecurityEventNotification", event) == {}
        assert await world.charger("SecurityEventNotification", event, unique_id="u2") == {}
        await world.charger("SecurityEventNotification", {
            "type": "InvalidMessages", "timestamp": "2026-11-23T10:01:00Z"}, unique_id="u3")
    rows = await security_events.list_rows(world.db, STATION)
    assert [(r["type"], r["source"], r["techInfo"]) for r in rows] == [
        ("InvalidMessages", "charger", None), ("TamperDetectionActivated", "charger",
                                               "door opened")]
    logged = [(r.levelname, r.getMessage(), getattr(r, "station", None), getattr(r, "type", None))
              for r in caplog.records]
    assert logged == [("WARNING", "security event", STATION, "TamperDetectionActivated"),
                      ("INFO", "security event", STATION, "InvalidMessages")]


# --- SignCertificate and CertificateSigned ----------------------------------------------


async def test_a_bad_csr_is_rejected_and_recorded_once(world: Commands) -> None:
    csr = pki.csr_pem(pki.make_csr(pki.ec_key(), "CP-2"))
    for _ in range(2):  # the same call delivered again
        assert await world.charger("SignCertificate", {"csr": csr}) == {"status": "Rejected"}
    [row] = await security_events.list_rows(world.db, STATION)
    assert (row["type"], row["source"]) == (rules.INVALID_CSR, "csms")
    assert "CN CP-2 is not 'CP-1'" in row["techInfo"]
    assert await world.db[repository.CERTIFICATE_REQUESTS].count_documents({}) == 0


async def test_the_csr_cn_is_the_station_certificate_identity(world: Commands) -> None:
    await world.db[stations.COLLECTION].update_one({"_id": STATION},
                                                   {"$set": {"certificate_cn": "SN-0042"}})
    good = pki.csr_pem(pki.make_csr(pki.ec_key(), "SN-0042"))
    assert await world.charger("SignCertificate", {"csr": good}) == {"status": "Accepted"}
    bad = pki.csr_pem(pki.make_csr(pki.ec_key(), STATION))
    assert await world.charger("SignCertificate", {"csr": bad}, "u2") == {"status": "Rejected"}


async def test_without_a_ca_the_csr_waits_for_an_operators_chain(world: Commands) -> None:
    key = pki.ec_key()
    csr = pki.make_csr(key, STATION, "Acme")
    assert await world.charger("SignCertificate", {"csr": pki.csr_pem(csr)}) == {
        "status": "Accepted"}
    [pending] = await repository.pending_rows(world.db, None)
    assert (pending["station"], pending["commonName"], pending["key"]) == (
        STATION, STATION, "EC secp256r1")
    assert world.sent() == []  # nobody signed it
    external = pki.make_ca("External CA")
    wrong_key = pki.issue(external, pki.ec_key().public_key(), csr.subject)
    await world.request("CertificateSigned", {"certificateChain": pki.pem(wrong_key)}, "c0")
    assert (world.results()[-1].status, world.results()[-1].error_code) == (
        "invalid", "UnknownCertificateRequest")
    leaf = pki.issue(external, key.public_key(), csr.subject, days=20)
    chain = pki.pem(leaf, external[0])
    await station_configuration.save(world.db, STATION, {"keys": [
        {"key": "CertificateSignedMaxSize", "value": str(len(chain) - 1), "readonly": True}]},
        utcnow())
    await world.request("CertificateSigned", {"certificateChain": chain}, "c00")
    assert "CertificateSignedMaxSize" in (world.results()[-1].error_description or "")
    await station_configuration.save(world.db, STATION, {"keys": [  # §7.3's name of the key
        {"key": "CertificateSignedMaxChainSize", "value": str(len(chain) - 1),
         "readonly": True}]}, utcnow())
    await world.request("CertificateSigned", {"certificateChain": chain}, "c000")
    assert (world.results()[-1].status, world.results()[-1].error_code) == (
        "invalid", "PropertyConstraintViolation")
    await station_configuration.save(world.db, STATION, {"keys": [
        {"key": "CertificateSignedMaxSize", "value": str(len(chain)), "readonly": True}]},
        utcnow())
    assert world.sent() == []
    result = await world.command("CertificateSigned",
                                 {"certificateChain": pki.pem(leaf, external[0])},
                                 {"status": "Accepted"}, "c1")
    assert result.status == "accepted"
    assert await repository.pending_rows(world.db, None) == []
    request = await repository.get_request(world.db, pending["requestId"])
    assert request is not None and request["status"] == repository.ACCEPTED
    recorded = await world.db[repository.CHARGER_CERTIFICATES].find_one({})
    assert recorded is not None
    assert (recorded["station"], recorded["serial"], recorded["status"]) == (
        STATION, format(leaf.serial_number, "x"), "Accepted")
    # Answered: the same chain is not sent again.
    await world.request("CertificateSigned", {"certificateChain": pki.pem(leaf)}, "c2")
    assert world.results()[-1].error_code == "UnknownCertificateRequest"
    [row] = await repository.expiring_rows(world.db, utcnow(), 30)
    assert (row["kind"], row["station"], row["daysLeft"]) == (
        "ChargePointCertificate", STATION, 19)


async def test_a_newer_csr_supersedes_the_pending_one(world: Commands) -> None:
    first, second = (pki.csr_pem(pki.make_csr(pki.ec_key(), STATION)) for _ in range(2))
    await world.charger("SignCertificate", {"csr": first}, "u1")
    await world.charger("SignCertificate", {"csr": second}, "u2")
    await world.charger("SignCertificate", {"csr": second}, "u3")  # the same CSR again
    [pending] = await repository.pending_rows(world.db, STATION)
    der = x509.load_pem_x509_csr(second.encode()).public_bytes(serialization.Encoding.DER)
    assert pending["requestId"] == rules.request_id(STATION, der)
    assert await world.db[repository.CERTIFICATE_REQUESTS].count_documents(
        {"status": repository.SUPERSEDED}) == 1


async def test_gridlinks_ca_signs_and_sends_certificate_signed_once(
        with_ca: tuple[Commands, x509.Certificate]) -> None:
    world, authority = with_ca
    key = pki.ec_key()
    csr = pki.csr_pem(pki.make_csr(key, STATION, "Acme"))
    assert await world.charger("SignCertificate", {"csr": csr}) == {"status": "Accepted"}
    [call] = world.sent()
    assert call.action == "CertificateSigned"
    leaf, ca_certificate = rules.load_certificates(call.payload["certificateChain"], "chain")
    assert ca_certificate == authority
    leaf.verify_directly_issued_by(authority)
    assert leaf.public_key() == key.public_key()
    command = await world.lifecycle.repo.get(call.command_id)
    assert command is not None and command["origin"] == "security"
    # The same SignCertificate delivered again: no second certificate, no second command.
    await world.charger("SignCertificate", {"csr": csr})
    assert len(world.sent()) == 1
    await world.answer(call, {"status": "Accepted"})
    request = await world.db[repository.CERTIFICATE_REQUESTS].find_one({})
    assert request is not None and request["status"] == repository.ACCEPTED
    assert request["serial"] == format(leaf.serial_number, "x")
    [recorded] = await world.db[repository.CHARGER_CERTIFICATES].find().to_list()
    assert recorded["_id"] == rules.facts(leaf).fingerprint
    # A later CSR (a new key): a new certificate supersedes the old one.
    await world.charger("SignCertificate", {"csr": pki.csr_pem(pki.make_csr(
        pki.ec_key(), STATION, "Acme"))}, "u9")
    await world.answer(world.sent()[-1], {"status": "Accepted"})
    current = await world.db[repository.CHARGER_CERTIFICATES].find(
        {"superseded_by": None}).to_list()
    assert len(current) == 1 and current[0]["_id"] != recorded["_id"]


# --- installed certificates -------------------------------------------------------------


async def test_install_list_delete_keep_the_inventory(world: Commands) -> None:
    root, _ = pki.make_ca("CSMS Root")
    foreign, _ = pki.make_ca("Foreign Root")
    absent, _ = pki.make_ca("Absent Root")
    leaf = pki.issue(pki.make_ca(), pki.ec_key().public_key(), pki.name("x"))
    await world.request("InstallCertificate", {"certificateType": "CentralSystemRootCertificate",
                                               "certificate": pki.pem(leaf)}, "i0")
    assert world.results()[-1].error_code == "PropertyConstraintViolation"
    assert world.sent() == []
    await world.command("InstallCertificate", {"certificateType": "CentralSystemRootCertificate",
                                               "certificate": pki.pem(root)},
                        {"status": "Accepted"}, "i1")
    [row] = await repository.inventory_rows(world.db, STATION)
    assert row["hashData"] == ch.hash_data(root) and row["source"] == "installed"
    # Not every type read yet: GridLink cannot say the station lacks a certificate.
    delete = {"certificateHashData": ch.hash_data(absent)}
    await world.command("DeleteCertificate", delete, {"status": "NotFound"}, "d0")
    await world.command("GetInstalledCertificateIds",
                        {"certificateType": "CentralSystemRootCertificate"},
                        {"status": "Accepted", "certificateHashData": [
                            ch.hash_data(root, algorithm="SHA384"), ch.hash_data(foreign)]},
                        "g1")
    await world.command("GetInstalledCertificateIds",
                        {"certificateType": "ManufacturerRootCertificate"},
                        {"status": "NotFound"}, "g2")
    rows = await repository.inventory_rows(world.db, STATION)
    assert [r["hashData"] for r in rows] == [ch.hash_data(root, algorithm="SHA384"),
                                              ch.hash_data(foreign)]
    assert rows[0]["subject"] == root.subject.rfc4514_string()  # still known
    sent = len(world.sent())
    await world.request("DeleteCertificate", delete, "d1")
    assert world.results()[-1].error_code == "UnknownCertificate"
    assert len(world.sent()) == sent
    await world.command("DeleteCertificate", {"certificateHashData": ch.hash_data(foreign)},
                        {"status": "Failed"}, "d2")
    assert len(await repository.inventory_rows(world.db, STATION)) == 2
    await world.command("DeleteCertificate", {"certificateHashData": ch.hash_data(foreign)},
                        {"status": "Accepted"}, "d3")
    [left] = await repository.inventory_rows(world.db, STATION)
    assert left["serialNumber"] == format(root.serial_number, "x")


async def test_extended_trigger_refuses_a_connector_for_a_station_message(world: Commands
                                                                          ) -> None:
    await world.request("ExtendedTriggerMessage",
                        {"requestedMessage": "BootNotification", "connectorId": 1}, "t1")
    assert world.results()[-1].status == "invalid"
    assert world.sent() == []
    result = await world.command("ExtendedTriggerMessage",
                                 {"requestedMessage": "StatusNotification", "connectorId": 1},
                                 {"status": "Accepted"}, "t2")
    assert result.status == "accepted"


# --- expiry -------------------------------------------------------------------------------


async def test_the_expiry_gauge_counts_by_window(world: Commands) -> None:
    now = utcnow()
    for serial, days, status in (("a1", -1.5, "Accepted"), ("a2", 5, "Accepted"),
                                 ("a3", 20, "Accepted"), ("a4", 5, "Rejected"),
                                 ("a5", 90, "Accepted")):
        await world.db[repository.CHARGER_CERTIFICATES].insert_one({
            "_id": serial, "station": f"CP-{serial}", "serial": serial, "subject": "CN=x",
            "status": status, "not_before": now - timedelta(days=100),
            "not_after": now + timedelta(days=days)})
    root, _ = pki.make_ca("Soon", days=3)
    entry = ch.installed_entry(pki.pem(root), installed_at=now)
    await repository.add_installed(world.db, STATION, "ManufacturerRootCertificate", entry)
    await expiry.refresh(world.runtime)

    def gauge(kind: str, days: str) -> float | None:
        return REGISTRY.get_sample_value("gridlink_commands_certificates_expiring",
                                         {"kind": kind, "days": days})

    assert [gauge("charger", d) for d in ("0", "7", "30")] == [1, 2, 3]
    assert [gauge("installed", d) for d in ("0", "7", "30")] == [0, 1, 1]
    rows = await repository.expiring_rows(world.db, now, 7)
    assert [(r["serialNumber"], r["daysLeft"]) for r in rows] == [
        ("a1", -2), (format(root.serial_number, "x"), 2), ("a2", 4)]
