"""The bus: the ack discipline without a broker, then the real thing against RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from services.bus import Bus, _safe, acknowledged, decode_json
from services.errors import BusUnavailable, Reject, Unroutable
from services.topology import ServiceQueue, Topology
from tests.helpers import delete_namespace


class Settle:
    """A message that records how it was settled."""

    def __init__(self, body: bytes = b"{}") -> None:
        self.body = body
        self.settled: list[tuple[str, bool]] = []

    async def ack(self) -> None:
        self.settled.append(("ack", False))

    async def nack(self, requeue: bool = True) -> None:
        self.settled.append(("nack", requeue))

    async def reject(self, requeue: bool = False) -> None:
        self.settled.append(("reject", requeue))


async def test_ack_after_the_work_reject_malformed_requeue_failures() -> None:
    async def ok(_: Any) -> None:
        return None

    async def malformed(_: Any) -> None:
        raise Reject("not json")

    async def broken(_: Any) -> None:
        raise RuntimeError("bug")

    outcomes = []
    for handler in (ok, malformed, broken):
        message = Settle()
        await acknowledged(handler, message)
        outcomes.append(message.settled)
    assert outcomes == [[("ack", False)], [("reject", False)], [("nack", True)]]


async def test_a_cancelled_handler_requeues_and_stays_cancelled() -> None:
    started = asyncio.Event()

    async def waits(_: Any) -> None:
        started.set()
        await asyncio.Event().wait()

    message = Settle()
    task = asyncio.create_task(acknowledged(waits, message))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert message.settled == [("nack", True)]


class Point(BaseModel):
    x: int


def test_decode_json_rejects_what_does_not_parse() -> None:
    assert decode_json(Settle(b'{"x": 1}'), Point) == Point(x=1)  # type: ignore[arg-type]
    with pytest.raises(Reject, match="malformed Point"):
        decode_json(Settle(b'{"x": "one"}'), Point)  # type: ignore[arg-type]


def test_urls_in_messages_hide_the_password() -> None:
    assert _safe("amqp://gridlink:s3cret@rabbit:5672/") == "amqp://***@rabbit:5672/"
    assert _safe("amqp://rabbit/") == "amqp://rabbit/"


# --- against RabbitMQ -------------------------------------------------------------------------


@pytest.fixture
async def bus(amqp_url: str) -> AsyncIterator[Bus]:
    namespace = f"glbus-{uuid.uuid4().hex[:8]}"
    bus = Bus(amqp_url, Topology(namespace), name="test-bus", component="test")
    await bus.connect(attempts=1)
    yield bus
    await bus.close()
    await delete_namespace(amqp_url, namespace, services=("work",))


@pytest.mark.integration
async def test_confirmed_publishes_consumers_and_dead_letters_on_rabbitmq(bus: Bus) -> None:
    t = bus.topology
    work = await bus.declare_queue(ServiceQueue(f"{t.namespace}.work",
                                                ((t.calls, "call.*"),)))
    seen: list[tuple[bytes, bool]] = []
    done = asyncio.Event()

    async def handler(message: Any) -> None:
        seen.append((message.body, bool(message.redelivered)))
        if message.body == b"bad":
            raise Reject("malformed")
        if message.body == b"flaky" and not message.redelivered:
            raise RuntimeError("first time fails")
        if len(seen) == 3:
            done.set()

    await bus.consume(work, handler)
    await bus.publish(t.calls, "call.A", b"bad")
    await bus.publish(t.calls, "call.B", b"flaky")
    await asyncio.wait_for(done.wait(), 10)
    assert seen == [(b"bad", False), (b"flaky", False), (b"flaky", True)]
    dead = await bus.channel.get_queue(t.dead_letter)  # type: ignore[union-attr]
    message = await dead.get(timeout=5)
    assert message.body == b"bad"
    await message.ack()
    with pytest.raises(Unroutable):
        await bus.publish(t.stations, "nobody-holds-this", b"x", mandatory=True)


@pytest.mark.integration
async def test_gateway_and_requesters_wait_for_the_topology_the_services_declare(
        amqp_url: str) -> None:
    topology = Topology(f"glbus-{uuid.uuid4().hex[:8]}")
    gateway = Bus(amqp_url, topology, name="test-gateway", component="gateway")
    with pytest.raises(BusUnavailable, match=f"has no exchange {topology.calls}, "):
        await gateway.connect(attempts=1)
    await gateway.close()
    service = Bus(amqp_url, topology, name="test-service", component="test")
    try:
        waiting = asyncio.create_task(gateway.connect())  # retries until they exist
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await service.connect(attempts=1)
        await asyncio.wait_for(waiting, 10)
        # A takeover published on {ns}.takeovers reaches whoever is bound on {ns}.stations.
        pod = await gateway.declare_private_queue(topology.gateway_queue("pod"))
        await pod.bind(topology.stations, routing_key="CP-1")
        await gateway.publish(topology.takeovers, "CP-1", b"takeover")
        delivered = await pod.get(timeout=5)
        assert (delivered.body, delivered.exchange) == (b"takeover", topology.takeovers)
        assert await pod.get(fail=False) is None
    finally:
        await gateway.close()
        await service.close()
        await delete_namespace(amqp_url, topology.namespace, services=())
