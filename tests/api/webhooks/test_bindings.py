"""``{ns}.webhooks`` gets only the events an active subscription wants (real RabbitMQ, a
queue and exchange of this test's own): nothing is queued with no subscription; adding binds
at once; an unwanted event is unbound only at the second reconciliation in a row; one that
becomes wanted while a reconciliation unbinds is bound again before it returns."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from api.webhooks.bindings import EventBindings, keys_for
from services.events import PUBLIC_EVENTS

pytestmark = pytest.mark.integration


class Patterns:
    """What the subscriptions want, as a list of answers (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.reads = 0

    async def wanted_patterns(self) -> list[str]:
        self.reads += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    yield channel
    await connection.close()


async def routed(channel: AbstractChannel, exchange: AbstractExchange,
                 queue: AbstractQueue) -> set[str]:
    """The public events that reach ``queue`` now: one of each published (confirmed), then
    the queue emptied."""
    for key in PUBLIC_EVENTS:
        await exchange.publish(aio_pika.Message(key.encode()), routing_key=key)
    arrived = set()
    while (message := await queue.get(fail=False, no_ack=True)) is not None:
        arrived.add(message.body.decode())
    return arrived


async def test_only_wanted_events_are_queued_and_unbinding_waits_a_round(
        channel: AbstractChannel) -> None:
    name = f"bindings-{uuid.uuid4().hex[:8]}"
    exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC)
    queue = await channel.declare_queue(name, exclusive=True)
    try:
        await _rounds(channel, exchange, queue)
    finally:
        await exchange.delete()


async def _rounds(channel: AbstractChannel, exchange: AbstractExchange,
                  queue: AbstractQueue) -> None:
    for key in PUBLIC_EVENTS:  # as an earlier release left it: bound to everything
        await queue.bind(exchange, routing_key=key)

    patterns = Patterns([])
    bindings = EventBindings(queue, exchange.name, patterns)
    assert await bindings.reconcile() == set()
    assert await routed(channel, exchange, queue) == set(PUBLIC_EVENTS)  # first strike only
    assert await bindings.reconcile() == set()
    assert await routed(channel, exchange, queue) == set()  # nobody wants anything

    await bindings.want(["transaction.*"])  # a subscription being stored
    transactions = set(keys_for(["transaction.*"]))
    assert transactions == {"transaction.started", "transaction.updated",
                            "transaction.stopped"}
    assert await routed(channel, exchange, queue) == transactions

    # the subscription is deleted: still bound after one round, gone after the second
    patterns.answers = [[]]
    await bindings.reconcile()
    assert await routed(channel, exchange, queue) == transactions
    await bindings.reconcile()
    assert await routed(channel, exchange, queue) == set()

    # wanted again while a round unbinds it: the round's second read binds it again
    await bindings.want(["station.booted"])
    patterns.answers = [[], [], ["station.*"]]
    await bindings.reconcile()  # first strike for station.booted
    assert await bindings.reconcile() == set(keys_for(["station.*"]))
    assert await routed(channel, exchange, queue) == set(keys_for(["station.*"]))
