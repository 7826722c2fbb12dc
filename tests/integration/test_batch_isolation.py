"""A station sending values MongoDB cannot store costs another station nothing.

The issue's case: MeterValues with ``transactionId = 2**64`` (and ``connectorId = 2**64``)
from one station interleaved with good ones from another, consumed at once by a
transactions replica (so their lookups and writes are coalesced), against a real RabbitMQ
and SecantusDB. The calls are published to the calls exchange directly, as a service must
not rely on the gateway having checked them: the good station gets every answer and every
sample stored, the bad one gets CALLERRORs, and nothing is requeued or dead-lettered.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from services.envelope import CallReply, ChargerCall
from services.ocpp16 import utcnow
from services.topology import Topology, call_key
from tests.charger import now
from tests.helpers import add_tag, delete_namespace, new_id, new_tag
from tests.processes import Process, Stack, metric_value

GOOD_CALLS, BAD_CALLS = 40, 10


@pytest.fixture(scope="module")
async def own_stack(amqp_url: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
                    ) -> AsyncIterator[Stack]:
    """A namespace of its own: this test stops and starts its transactions service."""
    namespace = f"gltest-iso-{uuid.uuid4().hex[:8]}"
    stack = Stack(amqp_url=amqp_url, mongo_url=mongo_url, namespace=namespace,
                  database=namespace.replace("-", "_"),
                  logs=Path(tmp_path_factory.mktemp("isolation-logs")))
    yield stack
    await stack.stop()
    await delete_namespace(amqp_url, namespace)


class Replies:
    """The replies the stations exchange routes to the given stations."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[CallReply] = asyncio.Queue()

    async def take(self, count: int, timeout: float = 60) -> list[CallReply]:
        async with asyncio.timeout(timeout):
            return [await self.received.get() for _ in range(count)]


def charger_call(station: str, action: str, payload: dict[str, Any]) -> bytes:
    return ChargerCall(station=station, session=f"{station}-s1", unique_id=uuid.uuid4().hex,
                       action=action, payload=payload, received_at=utcnow()).to_bytes()


def meter_values(transaction_id: int, connector: int = 1, value: int = 0) -> dict[str, Any]:
    return {"connectorId": connector, "transactionId": transaction_id, "meterValue": [
        {"timestamp": now(), "sampledValue": [{"value": str(value)}]}]}


async def test_a_bad_station_costs_a_good_one_nothing(own_stack: Stack) -> None:
    stack = own_stack
    topology = Topology(stack.namespace)
    good, bad, tag = new_id("GOOD"), new_id("BAD"), new_tag()
    transactions = stack.spawn("transactions")
    await stack.wait_ready(transactions)
    await add_tag(stack, tag)

    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        calls = await channel.get_exchange(topology.calls)
        inbox = await channel.declare_queue(exclusive=True, auto_delete=True)
        for station in (good, bad):
            await inbox.bind(topology.stations, routing_key=station)
        replies = Replies()

        async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await replies.received.put(CallReply.model_validate_json(message.body))

        await inbox.consume(on_reply, no_ack=True)

        async def publish(body: bytes, action: str) -> None:
            await calls.publish(aio_pika.Message(body, delivery_mode=2),
                                routing_key=call_key(action))

        await publish(charger_call(good, "StartTransaction", {
            "connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": now()}),
            "StartTransaction")
        [started] = await replies.take(1)
        assert started.payload is not None, started
        transaction_id = int(started.payload["transactionId"])

        # Stop the service, queue everything, start a replica: it takes them all at once
        # (prefetch), so their lookups and writes go in shared batches.
        assert await stack.stop_process(transactions) == 0
        sent: dict[str, str] = {}  # unique id -> station
        for n in range(GOOD_CALLS + BAD_CALLS):
            if n % 5 == 2:
                payload = (meter_values(2**64) if n % 10 == 2
                           else meter_values(transaction_id, connector=2**64))
                body = charger_call(bad, "MeterValues", payload)
            else:
                body = charger_call(good, "MeterValues", meter_values(transaction_id, value=n))
            sent[ChargerCall.model_validate_json(body).unique_id] = (
                bad if n % 5 == 2 else good)
            await publish(body, "MeterValues")
        replica = stack.spawn("transactions")
        answers = await replies.take(GOOD_CALLS + BAD_CALLS)

        by_station: dict[str, list[CallReply]] = {good: [], bad: []}
        for reply in answers:
            assert sent.pop(reply.unique_id) == reply.station  # each call answered once
            by_station[reply.station].append(reply)
        assert len(by_station[good]) == GOOD_CALLS
        assert all(r.payload == {} and r.error_code is None for r in by_station[good])
        assert len(by_station[bad]) == BAD_CALLS
        assert all(r.error_code is not None for r in by_station[bad])
        assert await stack.db().meter_values.count_documents(
            {"station": good, "transaction_id": transaction_id}) == GOOD_CALLS
        assert await stack.db().meter_values.count_documents({"station": bad}) == 0

        dead = await channel.declare_queue(topology.dead_letter, passive=True)
        assert dead.declaration_result.message_count == 0
        work = await channel.declare_queue(topology.work_queue_name("transactions"),
                                           passive=True)
        assert work.declaration_result.message_count == 0  # nothing requeued
    if all(r.error_code == "InternalError" for r in by_station[bad]):
        # They reached the handlers (no earlier check refused them): batches that held them
        # were split, and each failure was counted.
        await stack.wait_ready(replica)
        assert await _sample(replica, "gridlink_service_handler_failures_total", {
            "component": "transactions", "action": "MeterValues",
            "reason": "OverflowError"}) == BAD_CALLS
        splits = [await _sample(replica, "gridlink_service_store_batch_splits_total", {
            "component": "transactions", "kind": kind}) for kind in ("read", "write")]
        assert sum(s or 0 for s in splits) > 0


async def _sample(process: Process, name: str, labels: dict[str, str]) -> float | None:
    shown = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return await metric_value(process.url("/metrics"), f"{name}{{{shown}}}")
