"""Helpers shared by the tests (the only module tests import helpers from, besides the
fixtures in conftest.py, the raw-frame charger in tests/charger.py, the process launcher
in tests/processes.py and the keys and certificates of tests/pki.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import aio_pika

from gridlink import components, send_command
from services import id_tags, stations
from services.envelope import CommandResult
from services.memory import MemoryBus, memory_store
from services.ocpp16 import utcnow
from services.runtime import Service, ServiceRuntime, ServiceSpec
from services.settings import Settings, load_settings
from services.topology import Topology
from tests.charger import Charger, now
from tests.processes import Stack

#: The largest diagnostics upload the ``files_base`` replica (tests/conftest.py) accepts.
MAX_UPLOAD = 1 << 20


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
