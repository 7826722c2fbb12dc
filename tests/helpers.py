"""Helpers shared by the tests (the only module tests import helpers from, besides the
fixtures in conftest.py, the raw-frame charger in tests/charger.py, the process launcher
in tests/processes.py and the keys and certificates of tests/pki.py)."""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gridlink import components, send_command
from services import id_tags, stations
from services.envelope import CommandResult
from services.memory import MemoryBus, memory_store
from services.ocpp16 import utcnow
from services.runtime import Service, ServiceRuntime, ServiceSpec
from services.settings import Settings, load_settings
from services.topology import Topology
from tests.charger import Charger, now
from tests.processes import Process, Stack

#: The largest diagnostics upload the ``files_base`` replica (tests/conftest.py) accepts.
MAX_UPLOAD = 1 << 20


@dataclass
class ApiServer:
    """A running HTTP API (the ``api`` fixture, tests/conftest.py): its base URL
    (``http://127.0.0.1:PORT``), its process (probes and /metrics on ``process.port``), and a
    key per scope (``keys["read"]``, ``keys["commands"]``, ``keys["admin"]``; their ids in
    ``key_ids``)."""

    base_url: str
    process: Process
    keys: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)

    def client(self, scope: str | None = "admin", **options: Any) -> httpx.AsyncClient:
        """An httpx client for the API with the key of ``scope`` (None: no key)."""
        headers = {"Authorization": f"Bearer {self.keys[scope]}"} if scope else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30,
                                 **options)


class Spawned:
    """Stands in for a gateway connection's ``spawn``: keeps what the handler spawns and runs
    it when the test awaits :meth:`run`."""

    def __init__(self) -> None:
        self.work: list[Any] = []

    def __call__(self, work: Any) -> None:
        self.work.append(work)

    async def run(self) -> None:
        while self.work:
            await self.work.pop(0)


def new_id(prefix: str = "CP") -> str:
    """A station id (or tag) no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def memory_settings(**overrides: Any) -> Settings:
    """Settings for an in-process runtime: nothing listens, nothing reads the environment's
    URLs."""
    values: dict[str, Any] = {"namespace": "memory", "quorum_queues": False,
                              "files_port": 0, "instance": "test"}
    values.update(overrides)
    return load_settings(**values)


def memory_runtime(spec: ServiceSpec, **settings: Any) -> ServiceRuntime:
    """A service runtime over the in-memory bus and store (nothing started yet)."""
    config = memory_settings(**settings)
    bus = MemoryBus(Topology.from_settings(config), prefetch=config.prefetch)
    return ServiceRuntime(spec, config, bus=bus, store=memory_store(config.mongo_db))


def built(spec: ServiceSpec, **settings: Any) -> Service:
    """What a service consumes, built over the in-memory runtime."""
    return spec.build(memory_runtime(spec, **settings))


# --- data and CSMS calls for integration tests --------------------------------------------


def new_tag(prefix: str = "T") -> str:
    """An id tag no other test uses (at most 20 characters: a CiString20)."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def add_station(stack: Stack, station: str, *, registration: str = "Accepted",
                      password: str | None = None) -> None:
    """Register a station the way ``gridlink stations add`` does (without a process)."""
    await stations.add_station(stack.db(), station, registration=registration,
                               password=password, now=utcnow())


async def add_tag(stack: Stack, tag: str, *, status: str = "Accepted",
                  parent: str | None = None, expiry: datetime | None = None) -> None:
    """Store a tag the way ``gridlink tags add`` does (without a process)."""
    await id_tags.upsert_tag(stack.db(), tag, status=status, expiry=expiry, parent=parent)


async def answer_next(charger: Charger, action: str, answer: Any) -> list[Any]:
    """Expect the next CSMS call to be ``action``; answer it with a CALLRESULT payload, or
    with a CALLERROR when ``answer`` is a (code, description) tuple. The call's frame."""
    frame = await charger.next_csms_call(timeout=20)
    assert frame[2] == action, frame
    if isinstance(answer, tuple):
        await charger.answer([4, frame[1], answer[0], answer[1], {}])
    else:
        await charger.answer([3, frame[1], answer])
    return frame


async def stored(stack: Stack, collection: str, document_id: Any) -> dict[str, Any]:
    """A document that must exist."""
    found = await stack.db()[collection].find_one({"_id": document_id})
    assert found is not None, f"no {collection} document {document_id!r}"
    return found


async def fresh_tag(stack: Stack, prefix: str = "T") -> str:
    """A new Accepted tag, stored."""
    tag = new_tag(prefix)
    await add_tag(stack, tag)
    return tag


def stack_settings(stack: Stack) -> Settings:
    """Settings that reach the stack's broker and database (for in-process requesters)."""
    return Settings(amqp_url=stack.amqp_url, mongo_url=stack.mongo_url,
                    mongo_db=stack.database, namespace=stack.namespace)


async def send(stack: Stack, station: str, action: str, payload: dict[str, Any],
               timeout: float = 20) -> CommandResult:
    """Publish a command the way every requester does and wait for its result."""
    result = await send_command(stack_settings(stack), station, action, payload,
                                timeout_s=timeout)
    assert result is not None
    return result


async def start_transaction(charger: Charger, tag: str, connector: int = 1) -> int:
    """StartTransaction that must be Accepted; its transactionId."""
    answer = await charger.result("StartTransaction", {
        "connectorId": connector, "idTag": tag, "meterStart": 0, "timestamp": now()})
    assert answer["idTagInfo"]["status"] == "Accepted"
    return int(answer["transactionId"])


async def stop_transaction(charger: Charger, transaction_id: int) -> None:
    await charger.result("StopTransaction", {"transactionId": transaction_id, "meterStop": 100,
                                             "timestamp": now(), "reason": "Local"})


def charging_profile(purpose: str = "TxDefaultProfile", *, profile_id: int = 1,
                     stack_level: int = 0, connector: int = 1, limit: float = 16,
                     **extra: Any) -> dict[str, Any]:
    """A SetChargingProfile payload: one period of ``limit`` A from the start."""
    schedule = {"chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}
    schedule.update(extra.pop("schedule", {}))
    body = {"chargingProfileId": profile_id, "stackLevel": stack_level,
            "chargingProfilePurpose": purpose, "chargingProfileKind": "Relative",
            "chargingSchedule": schedule, **extra}
    return {"connectorId": connector, "csChargingProfiles": body}


async def refused_before_the_charger(stack: Stack, prefix: str, args: list[str], code: int,
                                     message: str, **env: object) -> None:
    """``gridlink ARGS`` (``{station}`` replaced) fails with one line and exit ``code``; the
    charger hears nothing and no command is recorded."""
    station = new_id(prefix)
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        got, out, err = await stack.cli(*[a.replace("{station}", station) for a in args],
                                        **env)
        assert (got, out) == (code, "")
        assert message in err and len(err.strip().splitlines()) == 1
        assert "currentTime" in await charger.result("Heartbeat", {})
        assert charger.incoming.empty()
    assert await stack.db().commands.count_documents({"station": station}) == 0


async def delete_namespace(amqp_url: str, namespace: str,
                           services: tuple[str, ...] = components.SERVICES) -> None:
    """Delete the queues and exchanges of a test namespace."""
    topology = Topology(namespace)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for name in topology.all_queues(services):
            channel = await connection.channel()
            try:
                await channel.queue_delete(name)
            except aio_pika.exceptions.AMQPError:
                pass
        for name in topology.all_exchanges():
            channel = await connection.channel()
            try:
                await channel.exchange_delete(name)
            except aio_pika.exceptions.AMQPError:
                pass


# --- keys and certificates (generated with cryptography, never checked in) ----------------


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def certificate(key: PrivateKey, common_name: str, *, issuer: x509.Certificate | None = None,
                issuer_key: PrivateKey | None = None, ca: bool = False,
                hosts: tuple[str, ...] = (), valid_from: datetime | None = None,
                valid_for: timedelta = timedelta(days=30)) -> x509.Certificate:
    """A certificate for ``key``: self-signed, or signed by ``issuer`` / ``issuer_key``."""
    start = valid_from or utcnow() - timedelta(minutes=5)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GridLink tests")])
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + valid_for)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def pem(value: x509.Certificate | PrivateKey) -> bytes:
    if isinstance(value, x509.Certificate):
        return value.public_bytes(serialization.Encoding.PEM)
    return value.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())


@dataclass
class ServerFiles:
    """A test CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""

    ca: x509.Certificate
    ca_key: PrivateKey
    ca_file: Path
    cert_file: Path
    key_file: Path
    certificate: x509.Certificate

    def issue(self, common_name: str) -> x509.Certificate:
        """Replace the server certificate and key with new ones (as a rotation does)."""
        key = ec_key()
        self.certificate = certificate(key, common_name, issuer=self.ca, issuer_key=self.ca_key,
                                       hosts=("127.0.0.1", "localhost"))
        tmp_cert = self.cert_file.with_name(self.cert_file.name + ".new")
        tmp_key = self.key_file.with_name(self.key_file.name + ".new")
        tmp_key.write_bytes(pem(key))
        tmp_cert.write_bytes(pem(self.certificate))
        tmp_key.replace(self.key_file)
        tmp_cert.replace(self.cert_file)
        return self.certificate


def server_files(directory: Path) -> ServerFiles:
    """A CA and a server certificate signed by it, written under ``directory``."""
    ca_key = ec_key()
    ca = certificate(ca_key, "GridLink test CA", ca=True)
    files = ServerFiles(ca, ca_key, directory / "ca.pem", directory / "server.pem",
                        directory / "server.key", ca)
    files.ca_file.write_bytes(pem(ca))
    files.issue("file server one")
    return files
