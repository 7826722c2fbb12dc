"""Running a service: connections, probes, consumers, health reports, graceful shutdown.

A service (authz, transactions, commands) describes itself with a :class:`ServiceSpec`:
its router for charger calls, extra handlers by routing-key prefix, its indexes and a
start-up hook. :func:`run_service` does the rest:

- connects to RabbitMQ and MongoDB, retrying until both answer, and declares the topology;
- consumes the service queue; a message is acknowledged only after its reply is confirmed;
- while MongoDB is unreachable, keeps retrying the message in hand (never answers the
  charger with an error), reports not-ready and tells the gateways (``health.<service>``);
- on SIGTERM/SIGINT stops consuming, lets in-flight messages finish within the grace period,
  then closes; a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from pymongo.errors import ConnectionFailure

from services.bus import Bus, decode_json
from services.envelope import ChargerCall, HealthReport
from services.errors import GridLinkError, StoreUnavailable
from services.http_probe import ProbeServer
from services.metrics import READY, STORE_ERRORS
from services.ocpp16 import iso, utcnow
from services.router import Router
from services.settings import Settings, effective_mongo_url
from services.store import IndexSpec, Store, merge_indexes
from services.topology import Topology

log = logging.getLogger("gridlink.runtime")


class ShuttingDown(GridLinkError):
    """The service is stopping while a message waits for the database: requeue it."""


MessageHandler = Callable[["ServiceRuntime", AbstractIncomingMessage], Awaitable[None]]

# Events a charger call's handler published, held until its reply is confirmed.
_DEFERRED_EVENTS: ContextVar[list[tuple[str, dict[str, Any]]] | None] = ContextVar(
    "gridlink_deferred_events", default=None)


@dataclass
class ServiceSpec:
    """A service: its name (= its queue), indexes, and how to build its router.

    ``build`` runs once MongoDB is up; it may keep objects in ``runtime.state`` for the
    ``handlers`` (by routing-key prefix) and the ``background`` jobs.
    """

    name: str
    indexes: IndexSpec
    build: Callable[[ServiceRuntime], Router]
    handlers: dict[str, MessageHandler] = field(default_factory=dict)
    background: list[Callable[[ServiceRuntime], Awaitable[None]]] = field(default_factory=list)


class ServiceRuntime:
    """What handlers of one service process share: settings, bus, store, health."""

    def __init__(self, spec: ServiceSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings
        self.topology = Topology.from_settings(settings)
        self.bus = Bus(settings.amqp_url, self.topology,
                       name=f"gridlink-{spec.name}-{settings.instance}", component=spec.name)
        self.store = Store(effective_mongo_url(settings), settings.mongo_db, component=spec.name)
        self.state: dict[str, Any] = {}  # per-service objects made by spec.build
        self.router: Router | None = None
        self.extra_indexes: IndexSpec = {}  # indexes added by spec.build (features)
        self._tasks: list[asyncio.Task[Any]] = []
        self.stopping = asyncio.Event()
        self.store_ok = True
        self._failing_since: float | None = None
        self.consuming = False  # ready only once the queue is consumed
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
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

    async def publish_event(self, routing_key: str, body: dict[str, Any]) -> None:
        """Publish a durable event on ``{ns}.events`` (at least once; consumers dedupe).

        Inside a charger call's handler the event waits until the reply is confirmed, so
        nobody reacts (e.g. with a TxProfile) before the charger has its answer.
        """
        deferred = _DEFERRED_EVENTS.get()
        if deferred is not None:
            deferred.append((routing_key, body))
            return
        await self.bus.publish(self.topology.events, routing_key,
                               json.dumps(body, default=_event_default).encode())

    # --- consuming ------------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._in_flight += 1
        self._idle.clear()
        try:
            key = message.routing_key or ""
            if key.startswith("call."):
                await self._on_charger_call(message)
                return
            for prefix, handler in self.spec.handlers.items():
                if key.startswith(prefix):
                    await handler(self, message)
                    return
            log.warning("no handler for routing key", extra={"routing_key": key})
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _on_charger_call(self, message: AbstractIncomingMessage) -> None:
        call = decode_json(message, ChargerCall)
        router = self.router
        assert router is not None
        deferred: list[tuple[str, dict[str, Any]]] = []

        async def attempt() -> Any:
            deferred.clear()  # a retried attempt publishes its own events only
            return await router.dispatch(call)

        token = _DEFERRED_EVENTS.set(deferred)
        try:
            reply = await self.with_store(attempt)
        finally:
            _DEFERRED_EVENTS.reset(token)
        if reply is not None:
            await self.bus.publish(self.topology.stations, call.station, reply.to_bytes(),
                                   persistent=False)
        for routing_key, body in deferred:
            await self.publish_event(routing_key, body)

    # --- health reports to the gateways ---------------------------------------------------

    async def _report_health(self) -> None:
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

    def spawn(self, job: Callable[[ServiceRuntime], Awaitable[None]]) -> None:
        """Run a background job until shutdown; if it crashes, log it and start it again."""

        async def supervised() -> None:
            while True:
                try:
                    await job(self)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("background job failed; restarting it")
                    await asyncio.sleep(1)

        self._tasks.append(asyncio.create_task(supervised()))

    async def run(self) -> None:
        probes = ProbeServer(self.settings.http_host, self.settings.http_port, self.readiness)
        probes.start()
        install_signal_handlers(self.stopping)
        try:
            await self.bus.connect(prefetch=self.settings.prefetch)
            await self.store.wait_until_up()
            self.router = self.spec.build(self)
            await self.store.ensure_indexes(merge_indexes(self.spec.indexes, self.extra_indexes))
            queue = await self.bus.declare_service_queue(self.spec.name)
            consumers = [(queue, await self.bus.consume(queue, self._on_message))]
            rpc = self.topology.rpc_queue(self.spec.name)
            if rpc is not None:
                rpc_queue = await self.bus.declare_rpc_queue(rpc.name, rpc.bindings)
                consumers.append((rpc_queue, await self.bus.consume(rpc_queue, self._on_message)))
            self.consuming = True
            READY.labels(self.spec.name).set(1)
            log.info("service started", extra={"queue": queue.name})
            self.spawn(ServiceRuntime._report_health)
            for job in self.spec.background:
                self.spawn(job)
            await self.stopping.wait()
            READY.labels(self.spec.name).set(0)
            log.info("stopping: no new messages", extra={"in_flight": self._in_flight})
            for consumed, tag in consumers:
                with contextlib.suppress(Exception):
                    await consumed.cancel(tag)
            try:
                await asyncio.wait_for(self._idle.wait(), self.settings.shutdown_grace_s)
            except TimeoutError:
                log.warning("grace period over; unfinished messages return to the queue",
                            extra={"in_flight": self._in_flight})
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            with contextlib.suppress(Exception):
                await self.bus.close()
            await self.store.close()
            probes.stop()
            log.info("stopped")


def _event_default(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def install_signal_handlers(stopping: asyncio.Event) -> None:
    """First SIGTERM/SIGINT: graceful stop; second: exit immediately."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            log.warning("second signal: exiting now")
            os._exit(128 + signum)
        log.info("signal received; shutting down", extra={"signal": signum})
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


async def run_service(spec: ServiceSpec, settings: Settings) -> None:
    await ServiceRuntime(spec, settings).run()
