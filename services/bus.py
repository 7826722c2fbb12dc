"""RabbitMQ: one robust connection, confirmed publishes, declared topology, careful consumers.

Publishes are confirmed by the broker (``publisher_confirms``); ``mandatory`` publishes that
no queue takes raise :class:`Unroutable` (a command for a station no gateway holds).
Consumers acknowledge only after the work and its reply are done; a message that cannot be
parsed is rejected to the dead-letter exchange, one whose handler failed is requeued (quorum
queues dead-letter it after ``DELIVERY_LIMIT`` deliveries). A charger call whose handling can
never succeed does not fail here: the router answers it CALLERROR InternalError
(:mod:`services.failures`), so only transient failures requeue a call.

The services declare the topology (:meth:`Bus.declare`); the gateway and command requesters
(:data:`~services.topology.PASSIVE_COMPONENTS`), whose broker users may not configure it, wait
until it exists instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
    ExchangeType,
)
from aio_pika.exceptions import DeliveryError

from services import amqp_writes
from services.errors import BusUnavailable, Reject, Unroutable
from services.metrics import BUS_PUBLISH_FAILURES
from services.topology import PASSIVE_COMPONENTS, QUESTION_TTL_MS, ServiceQueue, Topology

log = logging.getLogger("gridlink.bus")


_PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
_TRANSIENT = int(aio_pika.DeliveryMode.NOT_PERSISTENT)
_Properties = aiormq.spec.Basic.Properties


MessageHandler = Callable[[AbstractIncomingMessage], Awaitable[None]]


class MessageBus(Protocol):
    """What a service needs from the broker: :class:`Bus` over RabbitMQ, or
    :class:`services.memory.MemoryBus` in one process (unit tests)."""

    topology: Topology
    on_lost: list[Callable[[], None]]
    on_restored: list[Callable[[], None]]

    async def connect(self, *, prefetch: int = 64, attempts: int | None = None) -> None: ...
    async def close(self) -> None: ...
    @property
    def connected(self) -> bool: ...
    async def declare_queue(self, spec: ServiceQueue, *, durable: bool = True) -> Any: ...
    async def declare_private_queue(self, name: str) -> Any: ...
    async def publish(self, exchange: str, routing_key: str, body: bytes, *,
                      mandatory: bool = False, reply_to: str | None = None,
                      correlation_id: str | None = None, message_id: str | None = None,
                      persistent: bool = True, expiration: float | None = None,
                      user_id: str | None = None) -> None: ...
    async def consume(self, queue: Any, handler: MessageHandler, *, ack: bool = True
                      ) -> str: ...
    async def cancel(self, queue: Any, tag: str) -> None: ...


class Bus:
    """A named robust connection with a confirming channel and the declared topology."""

    def __init__(self, url: str, topology: Topology, *, name: str, component: str) -> None:
        self.url = url
        self.topology = topology
        self.name = name
        self.component = component
        self.connection: AbstractRobustConnection | None = None
        self.channel: AbstractRobustChannel | None = None
        self._exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}
        self.on_lost: list[Callable[[], None]] = []
        self.on_restored: list[Callable[[], None]] = []
        self._up = False

    # --- lifecycle ------------------------------------------------------------------------

    async def connect(self, *, prefetch: int = 64, attempts: int | None = None) -> None:
        """Connect (retrying until the broker answers) and declare the topology, or, for the
        components that do not own it, wait until it is declared (``attempts`` bounds both
        waits)."""
        amqp_writes.install()  # one socket write per loop turn, not one per frame
        delay = 0.5
        tried = 0
        while True:
            tried += 1
            try:
                self.connection = await aio_pika.connect_robust(
                    self.url,
                    client_properties={"connection_name": self.name},
                    timeout=10,
                )
                break
            except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
                if attempts is not None and tried >= attempts:
                    raise BusUnavailable(f"cannot reach RabbitMQ at {_safe(self.url)}: {exc}"
                                         ) from None
                log.warning("rabbitmq unreachable, retrying", extra={"error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
        self._up = True
        self.connection.close_callbacks.add(self._lost)
        self.connection.reconnect_callbacks.add(self._restored)
        channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        assert isinstance(channel, AbstractRobustChannel)
        self.channel = channel
        await channel.set_qos(prefetch_count=prefetch)
        if self.component in PASSIVE_COMPONENTS:
            await self._await_topology(attempts)
        else:
            await self.declare()

    async def open_channels(self, count: int) -> list[AbstractRobustChannel]:
        """Extra channels (reopened with the connection) for requests AMQP serialises per
        channel, such as queue bindings."""
        assert self.connection is not None
        channels = []
        for _ in range(max(1, count)):
            channel = await self.connection.channel(publisher_confirms=False)
            assert isinstance(channel, AbstractRobustChannel)
            channels.append(channel)
        return channels

    @property
    def connected(self) -> bool:
        """False from the moment the connection drops until it is restored."""
        return self._up and self.connection is not None and not self.connection.is_closed

    def _lost(self, *_: Any) -> None:
        self._up = False
        for callback in self.on_lost:
            callback()

    def _restored(self, *_: Any) -> None:
        self._up = True
        for callback in self.on_restored:
            callback()

    async def close(self) -> None:
        if self.connection is not None:
            self.connection.close_callbacks.discard(self._lost)
            await self.connection.close()

    # --- topology -------------------------------------------------------------------------

    async def declare(self) -> None:
        """Declare every exchange idempotently, the dead-letter queue, and the binding that
        takes takeovers to the stations exchange (service queues are declared by their
        owners)."""
        t = self.topology
        assert self.channel is not None
        for name, kind in _exchange_types(t).items():
            self._exchanges[name] = await self.channel.declare_exchange(
                name, kind, durable=True
            )
        await self._exchanges[t.stations].bind(self._exchanges[t.takeovers], routing_key="")
        dead = await self.channel.declare_queue(
            t.dead_letter, durable=True, arguments=_quorum_only(t)
        )
        await dead.bind(t.dead_letter, routing_key="")

    async def _await_topology(self, attempts: int | None) -> None:
        """Check passively (no permission needed) that the services declared the exchanges,
        waiting for them if not (``attempts`` checks at most), then use them by name."""
        delay = 0.5
        tried = 0
        while missing := await self._missing_exchanges():
            tried += 1
            if attempts is not None and tried >= attempts:
                raise BusUnavailable(f"RabbitMQ at {_safe(self.url)} has no exchange "
                                     f"{', '.join(missing)}: the GridLink services declare "
                                     "them when they start")
            log.warning("waiting for the services to declare the exchanges",
                        extra={"missing": missing})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)
        assert self.channel is not None
        for name in _exchange_types(self.topology):
            self._exchanges[name] = await self.channel.get_exchange(name, ensure=False)

    async def _missing_exchanges(self) -> list[str]:
        """The topology's exchanges that do not exist, asked on a channel of their own (a
        passive declaration of a missing exchange closes its channel)."""
        assert self.connection is not None
        missing = []
        for name in _exchange_types(self.topology):
            probe = await self.connection.channel(publisher_confirms=False)
            try:
                await probe.declare_exchange(name, passive=True, robust=False)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                missing.append(name)
            finally:
                with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
                    await probe.close()
        return missing

    async def declare_queue(self, spec: ServiceQueue, *, durable: bool = True
                            ) -> AbstractQueue:
        """A service queue with its bindings (and without its retired ones): durable (a work
        queue, quorum by default), or not (a fast lane shared by the replicas, for questions
        with a deadline: their messages carry ``expiration``)."""
        assert self.channel is not None
        arguments = (self.topology.queue_arguments() if durable
                     else {"x-message-ttl": QUESTION_TTL_MS})
        queue = await self.channel.declare_queue(spec.name, durable=durable,
                                                 arguments=arguments)
        for exchange, key in spec.bindings:
            await queue.bind(exchange, routing_key=key)
        for exchange, key in spec.retired:
            await queue.unbind(exchange, routing_key=key)
        return queue

    async def declare_private_queue(self, name: str) -> AbstractQueue:
        """An exclusive auto-delete queue (a gateway pod's, or a CLI's reply queue)."""
        assert self.channel is not None
        return await self.channel.declare_queue(name, exclusive=True, auto_delete=True)

    # --- publishing -----------------------------------------------------------------------

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        mandatory: bool = False,
        reply_to: str | None = None,
        correlation_id: str | None = None,
        message_id: str | None = None,
        persistent: bool = True,
        expiration: float | None = None,
        user_id: str | None = None,
    ) -> None:
        """Publish and wait for the broker's confirm; raise Unroutable or BusUnavailable.

        ``user_id``: the AMQP user this connection logged in as; RabbitMQ refuses any other,
        so a consumer can trust it to name the sender.

        The frame is queued without waiting for it to be written (``wait=False``): the
        confirm is what this waits for, and the publishes of concurrent handlers go out
        together instead of one per loop turn each."""
        if self.channel is None:
            raise BusUnavailable("not connected to RabbitMQ")
        properties = _Properties(
            content_type="application/json",
            delivery_mode=_PERSISTENT if persistent else _TRANSIENT,
            reply_to=reply_to,
            correlation_id=correlation_id,
            message_id=message_id,
            expiration=None if expiration is None else str(int(expiration * 1000)),
            user_id=user_id,
        )
        try:
            name = "" if exchange == "" else self._exchanges[exchange].name
            if self.channel.is_closed:
                raise aiormq.exceptions.ChannelInvalidStateError("channel closed")
            channel = await self.channel.get_underlay_channel()
            await channel.basic_publish(body, exchange=name, routing_key=routing_key,
                                        properties=properties, mandatory=mandatory,
                                        wait=False)
        except DeliveryError as exc:
            if exc.frame is not None and exc.message is not None and _returned(exc):
                raise Unroutable(f"no queue for routing key {routing_key!r}") from None
            BUS_PUBLISH_FAILURES.labels(component=self.component).inc()
            raise BusUnavailable(f"publish to {exchange or 'default'} not confirmed") from None
        except (TimeoutError, aio_pika.exceptions.AMQPError, OSError, RuntimeError) as exc:
            BUS_PUBLISH_FAILURES.labels(component=self.component).inc()
            raise BusUnavailable(f"publish failed: {exc}") from None

    # --- consuming ------------------------------------------------------------------------

    async def consume(self, queue: AbstractQueue, handler: MessageHandler, *, ack: bool = True
                      ) -> str:
        """Consume ``queue`` with the ack discipline of :func:`acknowledged`."""

        async def on_message(message: AbstractIncomingMessage) -> None:
            if ack:
                await acknowledged(handler, message)
            else:
                await handler(message)

        return await queue.consume(on_message, no_ack=not ack)

    async def cancel(self, queue: AbstractQueue, tag: str) -> None:
        """Stop consuming (messages in flight still finish and are settled)."""
        await queue.cancel(tag)


class Settleable(Protocol):
    """A consumed message that can be acknowledged (aio-pika's, or the memory bus's)."""

    def ack(self) -> Awaitable[Any]: ...
    def nack(self, requeue: bool = True) -> Awaitable[Any]: ...
    def reject(self, requeue: bool = False) -> Awaitable[Any]: ...


async def acknowledged(handler: Callable[[Any], Awaitable[None]], message: Settleable) -> None:
    """Run ``handler`` and settle the message: ack after the work (and its reply) is done;
    dead-letter a malformed one (:class:`Reject`); requeue on any other failure or when
    cancelled (quorum queues dead-letter it after ``DELIVERY_LIMIT`` deliveries)."""
    try:
        await handler(message)
    except Reject as exc:
        log.warning("message dead-lettered", extra={"reason": str(exc)})
        await _settle(message.reject(requeue=False))
    except asyncio.CancelledError:
        await _settle(message.nack(requeue=True))
        raise
    except Exception:
        log.exception("handler failed; message requeued")
        await _settle(message.nack(requeue=True))
    else:
        await _settle(_ack(message))


def _ack(message: Settleable) -> Awaitable[Any]:
    """Ack; an aio-pika message's without waiting for the frame to be written (an ack has
    no answer: the broker redelivers what it never got, as after any lost ack)."""
    if isinstance(message, aio_pika.IncomingMessage) and message.delivery_tag is not None:
        return message.channel.basic_ack(delivery_tag=message.delivery_tag, wait=False)
    return message.ack()


async def _settle(operation: Awaitable[Any]) -> None:
    """Ack/nack; if the channel died meanwhile the broker redelivers by itself."""
    try:
        await operation
    except (aio_pika.exceptions.AMQPError, RuntimeError, OSError):
        log.warning("could not settle message; the broker will redeliver it")


def _returned(exc: DeliveryError) -> bool:
    return type(exc.frame).__name__ == "Return" or "Return" in type(exc.frame).__qualname__


def _exchange_types(t: Topology) -> dict[str, ExchangeType]:
    return {
        t.calls: ExchangeType.TOPIC,
        t.stations: ExchangeType.DIRECT,
        t.takeovers: ExchangeType.FANOUT,
        t.commands_in: ExchangeType.DIRECT,
        t.events: ExchangeType.TOPIC,
        t.dead_letter: ExchangeType.FANOUT,
    }


def _quorum_only(topology: Topology) -> dict[str, object]:
    return {"x-queue-type": "quorum"} if topology.quorum else {}


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1) if "://" in url else ("", url)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def decode_json(message: AbstractIncomingMessage, model: Any) -> Any:
    """Parse a consumed body into a pydantic model, or Reject it."""
    try:
        return model.model_validate_json(message.body)
    except ValueError as exc:
        raise Reject(f"malformed {getattr(model, '__name__', 'message')}: {exc}") from None
