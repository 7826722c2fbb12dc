"""Running a service: connections, probes, consumers, health reports, graceful shutdown.

A service (authz, transactions, commands) is a :class:`ServiceSpec`: its name and a
``build`` function that, once MongoDB answers, makes its typed state and returns a
:class:`Service` — the router for charger calls, the other messages it consumes
(:class:`Route`), background jobs and indexes. :func:`run_service` does the rest:

- connects to RabbitMQ and MongoDB, retrying until both answer, and declares the service's
  queues, bound to exactly what its router and routes consume (:mod:`services.topology`),
  and makes its indexes and retention (TTL indexes, :mod:`services.retention`);
- consumes them; a message is acknowledged only after its reply is confirmed, and the
  events a handler emitted are published after that reply;
- while MongoDB is unreachable, keeps retrying the message in hand (never answers the
  charger with an error), reports not-ready and tells the gateways (``health.<service>``);
  a call that can never succeed is answered InternalError by the router and acknowledged
  (:mod:`services.failures`);
- on SIGTERM/SIGINT stops consuming, lets in-flight messages finish within the grace period,
  then closes (:mod:`services.shutdown`); a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from pymongo.errors import ConnectionFailure

from services.bus import Bus, MessageBus, decode_json
from services.db_stats import working_on
from services.envelope import ChargerCall, HealthReport
from services.errors import GridLinkError, ShuttingDown, StoreUnavailable
from services.events import ID_FIELD
from services.http_probe import ProbeServer
from services.metrics import READY, STORE_ERRORS
from services.ocpp16 import iso, utcnow
from services.retention import Retention, ensure_retention
from services.router import Event, Router
from services.settings import Settings, effective_mongo_url
from services.shutdown import InFlight, drain, install_signal_handlers
from services.store import IndexSpec, Store, write_concern
from services.supervision import supervised
from services.topology import ExchangeRole, Lane, Subscription, Topology, call_key, topic_matches

log = logging.getLogger("gridlink.runtime")

MessageHandler = Callable[[AbstractIncomingMessage], Awaitable[None]]
#: A background job: runs until the service stops (restarted if it crashes).
Job = Callable[["ServiceRuntime"], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    """A message a service consumes besides charger calls, and who handles it."""

    exchange: ExchangeRole
    key: str  # the binding key (AMQP topic syntax on the topic exchanges)
    handle: MessageHandler
    lane: Lane = "work"

    @property
    def subscription(self) -> Subscription:
        return Subscription(self.exchange, self.key, self.lane)


@dataclass
class Service:
    """What a service's ``build`` returns: everything it consumes and runs."""

    router: Router
    routes: tuple[Route, ...] = ()
    background: tuple[Job, ...] = ()
    indexes: IndexSpec = field(default_factory=dict)
    retention: tuple[Retention, ...] = ()  # TTL indexes of collections that grow forever
    retired: tuple[Subscription, ...] = ()  # bindings of earlier releases, removed

    def subscriptions(self) -> list[Subscription]:
        """What its queues are bound to: each handled action, then each route."""
        calls = [Subscription("calls", call_key(action), lane)
                 for action, lane in sorted(self.router.lanes.items())]
        return calls + [route.subscription for route in self.routes]


@dataclass(frozen=True)
class ServiceSpec:
    """A service: its name (= its queues' name) and how to build it once MongoDB is up."""

    name: str
    build: Callable[[ServiceRuntime], Service]


class ServiceRuntime:
    """What the handlers of one service process share: settings, bus, store, health.

    ``bus`` and ``store`` default to RabbitMQ and MongoDB as the settings say; tests pass
    in-memory ones (:mod:`services.memory`).
    """

    def __init__(self, spec: ServiceSpec, settings: Settings, *, bus: MessageBus | None = None,
                 store: Store | None = None) -> None:
        self.spec = spec
        self.settings = settings
        self.topology = Topology.from_settings(settings)
        self.bus: MessageBus = bus or Bus(
            settings.amqp_url, self.topology, name=f"gridlink-{spec.name}-{settings.instance}",
            component=spec.name)
        self.store = store or Store(effective_mongo_url(settings), settings.mongo_db,
                                    component=spec.name, concern=write_concern(settings),
                                    command_stats=settings.db_command_stats)
        self.service: Service | None = None
        self._dispatch: list[tuple[str, str, MessageHandler]] = []  # exchange, key, handler
        self._tasks: list[asyncio.Task[Any]] = []
        self.stopping = asyncio.Event()
        self.store_ok = True
        self._failing_since: float | None = None
        self.consuming = False  # ready only once the queue is consumed
        self.in_flight = InFlight()
        self._health_changed = asyncio.Event()

    # --- readiness ------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, str]:
        if self.stopping.is_set():
            return False, "shutting down"
        if not self.consuming:
            return False, "starting"
        if not self.bus.connected:
            return False, "rabbitmq unreachable"
        if not self.store_ok:
            return False, "mongodb unreachable"
        return True, "ready"

    def _set_store_ok(self, ok: bool) -> None:
        """Record a store success or failure; "unreachable" only after failures persisted
        for ``store_outage_grace_s`` (a slow or briefly overloaded database must not make
        every gateway drop its chargers)."""
        now = time.monotonic()
        if ok:
            self._failing_since = None
        elif self._failing_since is None:
            self._failing_since = now
        healthy = ok or now - (self._failing_since or now) < self.settings.store_outage_grace_s
        if healthy != self.store_ok:
            self.store_ok = healthy
            log.warning("mongodb reachable again" if healthy else "mongodb unreachable")
            self._health_changed.set()
        READY.labels(self.spec.name).set(1 if self.readiness()[0] else 0)

    # --- running store work ---------------------------------------------------------------

    async def with_store(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``operation`` until MongoDB takes it; raise ShuttingDown if told to stop."""
        delay = 0.1
        while True:
            try:
                result = await operation()
            except (StoreUnavailable, ConnectionFailure):
                STORE_ERRORS.labels(self.spec.name).inc()
                self._set_store_ok(False)
                if self.stopping.is_set():
                    raise ShuttingDown("stopping while mongodb is unreachable") from None
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                delay = min(delay * 2, 5.0)
                continue
            self._set_store_ok(True)
            return result

    async def publish_event(self, event: Event) -> None:
        """Publish a durable event on ``{ns}.events`` (at least once; consumers dedupe)."""
        await self.bus.publish(self.topology.events, event.routing_key,
                               json.dumps(event.body, default=_event_default).encode(),
                               message_id=event.body.get(ID_FIELD))

    # --- consuming ------------------------------------------------------------------------

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        """Hand a consumed message to the router or the route whose binding it matches."""
        with self.in_flight.track():
            exchange, key = message.exchange or "", message.routing_key or ""
            for bound_exchange, pattern, handle in self._dispatch:
                if bound_exchange == exchange and topic_matches(pattern, key):
                    with working_on(key):
                        await handle(message)
                    return
            log.warning("no handler for routing key", extra={"routing_key": key})

    async def _on_charger_call(self, message: AbstractIncomingMessage) -> None:
        call = decode_json(message, ChargerCall)
        assert self.service is not None
        router = self.service.router
        dispatched = await self.with_store(lambda: router.dispatch(call))
        if dispatched.reply is not None:
            await self.bus.publish(self.topology.stations, call.station,
                                   dispatched.reply.to_bytes(), persistent=False)
        if len(dispatched.events) == 1:
            await self.publish_event(dispatched.events[0])
        elif dispatched.events:  # published together, confirmed together
            await asyncio.gather(*(self.publish_event(e) for e in dispatched.events))

    # --- health reports to the gateways ---------------------------------------------------

    async def _report_health(self, _: ServiceRuntime) -> None:
        interval = self.settings.health_report_interval_s
        while not self.stopping.is_set():
            self._set_store_ok(await self.store.ping())
            report = HealthReport(service=self.spec.name, instance=self.settings.instance,
                                  store_ok=self.store_ok, at=utcnow())
            with contextlib.suppress(GridLinkError):
                await self.bus.publish(self.topology.events, f"health.{self.spec.name}",
                                       report.to_bytes(), persistent=False,
                                       expiration=interval * 3)
            self._health_changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._health_changed.wait(), interval)

    # --- lifecycle ------------------------------------------------------------------------

    def spawn(self, job: Job) -> None:
        """Run a background job until shutdown; if it crashes, log it and start it again."""
        self._tasks.append(supervised(lambda: job(self)))

    async def start(self) -> list[tuple[Any, str]]:
        """Connect, build the service, declare and consume its queues; the consumers."""
        await self.bus.connect(prefetch=self.settings.prefetch)
        await self.store.wait_until_up()
        service = self.service = self.spec.build(self)
        await self.store.ensure_indexes(service.indexes)
        await ensure_retention(self.store.db, service.retention)
        exchanges = {"calls": self.topology.calls, "commands_in": self.topology.commands_in,
                     "events": self.topology.events}
        self._dispatch = [(self.topology.calls, call_key(action), self._on_charger_call)
                          for action in sorted(service.router.actions)]
        self._dispatch += [(exchanges[r.exchange], r.key, r.handle) for r in service.routes]
        # A call no binding asked for (a stale one): the router answers it NotSupported.
        self._dispatch.append((self.topology.calls, call_key("*"), self._on_charger_call))
        work, rpc = self.topology.service_queues(self.spec.name, service.subscriptions(),
                                                 retired=service.retired)
        consumers = []
        queue = await self.bus.declare_queue(work)
        consumers.append((queue, await self.bus.consume(queue, self.on_message)))
        if rpc is not None:
            rpc_queue = await self.bus.declare_queue(rpc, durable=False)
            consumers.append((rpc_queue, await self.bus.consume(rpc_queue, self.on_message)))
        self.consuming = True
        READY.labels(self.spec.name).set(1)
        log.info("service started", extra={"queue": work.name})
        self.spawn(self._report_health)
        for job in service.background:
            self.spawn(job)
        return consumers

    async def stop(self, consumers: list[tuple[Any, str]]) -> None:
        """Stop consuming, let messages in flight finish (within the grace period), stop the
        background jobs."""
        READY.labels(self.spec.name).set(0)

        async def stop_consuming() -> None:
            for consumed, tag in consumers:
                with contextlib.suppress(Exception):
                    await self.bus.cancel(consumed, tag)

        await drain(stop_taking=stop_consuming, in_flight=self.in_flight,
                    grace_s=self.settings.shutdown_grace_s, what="messages", logger=log)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.bus.close()
        await self.store.close()

    async def run(self) -> None:
        probes = ProbeServer(self.settings.http_host, self.settings.http_port, self.readiness)
        probes.start()
        install_signal_handlers(self.stopping)
        try:
            consumers = await self.start()
            await self.stopping.wait()
            await self.stop(consumers)
        finally:
            await self.close()
            probes.stop()
            log.info("stopped")


def _event_default(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


async def run_service(spec: ServiceSpec, settings: Settings) -> None:
    await ServiceRuntime(spec, settings).run()
