"""The gateway process: the :class:`Gateway` (sessions by station, readiness, reactions to
backend and broker health, start, drain, stop) and :func:`run_gateway`.

What is decided before the WebSocket upgrade lives in :mod:`gateway.handshake`, each
charger connection's loop in :mod:`gateway.connection`, the broker side in
:mod:`gateway.bridge`.

While RabbitMQ or the database behind the services is unreachable the gateway reports
not-ready, refuses handshakes and closes connections with 1013 (try again later), so
chargers keep transaction messages queued instead of receiving errors they would count.
On SIGTERM it drains: not-ready first, then closes chargers in batches with 1012.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from gateway.backlog import Backlog
from gateway.bridge import GatewayBridge
from gateway.connection import CLOSE_SERVICE_RESTART, CLOSE_TRY_AGAIN_LATER, ConnectionHandler
from gateway.handshake import SUBPROTOCOL, Handshake, select_subprotocol
from gateway.registry import Registry
from services.bus import Bus
from services.envelope import StationMessage
from services.http_probe import ProbeServer
from services.metrics import BACKLOG, READY, TLS_HANDSHAKE_FAILURES
from services.settings import Settings
from services.shutdown import drain, install_signal_handlers
from services.tls import ReloadingContext
from services.topology import Topology

__all__ = ["Gateway", "run_gateway"]

log = logging.getLogger("gridlink.gateway")


class Gateway:
    """One gateway process: sessions by station id, the bridge, the server."""

    def __init__(self, settings: Settings, bus: Bus) -> None:
        self.settings = settings
        self.bus = bus
        self.bridge = GatewayBridge(
            bus, settings.instance, health_ttl_s=settings.backend_health_ttl_s,
            connect_timeout_s=settings.connect_timeout_s,
            admission_window_s=settings.admission_window_ms / 1000,
            bind_channels=settings.bind_channels, spawn=self._spawn,
            on_station_message=self._on_station_message,
            on_backend_change=self._on_backend_change,
        )
        self.registry = Registry()
        backlog = Backlog()
        BACKLOG.set_function(backlog.size)
        self.handshake = Handshake(settings, readiness=self.readiness,
                                   draining=lambda: self.draining,
                                   ask_connect=self.bridge.ask_connect,
                                   live_profile=self.registry.profile, backlog=backlog)
        self.connections = ConnectionHandler(settings, self.registry, self.bridge,
                                             spawn=self._spawn,
                                             admitted=self.handshake.admitted,
                                             backlog=backlog)
        self.tls: ReloadingContext | None = None  # wss:// when a certificate is configured
        self.draining = False
        self.server: Server | None = None
        self.probes: ProbeServer | None = None  # the separate metrics port, if configured
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()  # ends the background watchers

    def _spawn(self, work: Any) -> None:
        """Run a coroutine in the background, keeping a reference until it is done."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_station_message(self, message: StationMessage) -> None:
        self.connections.on_station_message(message)

    # --- readiness ------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, str]:
        """Ready to take chargers? (Also read by the metrics port's probe thread.)"""
        if self.server is None:
            return False, "starting"
        if self.draining:
            return False, "draining"
        if not self.bus.connected:
            return False, "rabbitmq unreachable"
        if not self.bridge.healthy_now():
            return False, "database behind the services unreachable"
        return True, "ready"

    def _update_ready_gauge(self) -> None:
        READY.labels("gateway").set(1 if self.readiness()[0] else 0)

    def _on_backend_change(self, ok: bool) -> None:
        self._update_ready_gauge()
        if not ok:
            log.warning("backend unhealthy: closing chargers so they keep their messages")
            self.close_all(CLOSE_TRY_AGAIN_LATER, "backend unavailable, try again later")
        else:
            log.info("backend healthy again")

    def _on_bus_lost(self) -> None:
        self._update_ready_gauge()
        log.warning("rabbitmq connection lost: closing chargers")
        self.close_all(CLOSE_TRY_AGAIN_LATER, "broker unavailable, try again later")

    def close_all(self, code: int, reason: str) -> None:
        """Close every charger connection with ``code`` (in the background)."""
        for connection in self.registry.connections():
            self._spawn(connection.close(code, reason))

    # --- running --------------------------------------------------------------------------

    async def start(self) -> None:
        """Probes (if on their own port), broker, bridge, then the WebSocket server."""
        if self.settings.gateway_probe_port:
            self.probes = ProbeServer(self.settings.http_host, self.settings.gateway_probe_port,
                                      self.readiness)
            self.probes.start()
        await self.bus.connect(prefetch=self.settings.prefetch)
        self.bus.on_lost.append(self._on_bus_lost)
        self.bus.on_restored.append(self._update_ready_gauge)
        await self.bridge.start()
        settings = self.settings
        if settings.tls:
            assert settings.tls_cert_file and settings.tls_key_file
            self.tls = ReloadingContext(settings.tls_cert_file, settings.tls_key_file,
                                        settings.tls_client_ca_file,
                                        on_failure=_tls_handshake_failed)
            self._spawn(self.tls.watch(self._stopping))
        self.server = await serve(
            self.connections.handle,
            self.settings.gateway_host,
            self.settings.gateway_port,
            process_request=self.handshake.process_request,
            subprotocols=[SUBPROTOCOL],
            select_subprotocol=select_subprotocol,
            max_size=self.settings.max_frame_bytes,
            backlog=4096,  # reconnect storms: the default 100 overflows at once
            ping_interval=self.settings.ping_interval_s,
            ping_timeout=self.settings.ping_interval_s,
            close_timeout=5,
            ssl=self.tls.context if self.tls is not None else None,
        )
        self._update_ready_gauge()

    async def drain(self) -> None:
        """Not-ready first, then close chargers in batches (1012) so they move elsewhere
        without a reconnect storm, then wait for the calls still being published."""
        self.draining = True
        self._update_ready_gauge()
        log.info("draining", extra={"connections": len(self.registry)})
        await drain(stop_taking=self._close_in_batches, in_flight=self.connections.publishing,
                    grace_s=self.settings.shutdown_grace_s, what="charger calls", logger=log)

    async def _close_in_batches(self) -> None:
        batch = max(1, self.settings.drain_batch_size)
        while len(self.registry):
            connections = self.registry.connections()[:batch]
            await asyncio.gather(*(c.close(CLOSE_SERVICE_RESTART, "gateway restarting")
                                   for c in connections), return_exceptions=True)
            await self._wait_gone(connections)
            if len(self.registry):
                await asyncio.sleep(self.settings.drain_batch_interval_s)

    async def _wait_gone(self, connections: list[ServerConnection]) -> None:
        """Wait until the handlers of these connections finished their clean-up."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(
                *(c.wait_closed() for c in connections), return_exceptions=True), 10)
        closing = {id(c) for c in connections}
        for _ in range(200):
            if not any(id(conn) in closing for conn in self.registry.connections()):
                return
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop the probes and the server (closing what is left), then the broker."""
        self._stopping.set()
        if self.probes is not None:
            self.probes.stop()
        if self.server is not None:
            self.server.close(close_connections=True)
            await self.server.wait_closed()
        with contextlib.suppress(Exception):
            await self.bus.close()


def _tls_handshake_failed(reason: str) -> None:
    TLS_HANDSHAKE_FAILURES.labels(reason).inc()
    log.info("TLS handshake failed", extra={"reason": reason})


async def run_gateway(settings: Settings) -> None:
    """Run one gateway until SIGTERM or SIGINT, then drain and stop."""
    bus = Bus(settings.amqp_url, Topology.from_settings(settings),
              name=f"gridlink-gateway-{settings.instance}", component="gateway")
    gateway = Gateway(settings, bus)
    stopping = asyncio.Event()
    install_signal_handlers(stopping)
    await gateway.start()
    scheme = "wss" if settings.tls else "ws"
    url = settings.public_url or f"{scheme}://{settings.gateway_host}:{settings.gateway_port}/ocpp"
    log.info("gateway listening", extra={"url": url})
    await stopping.wait()
    await gateway.drain()
    await gateway.stop()
