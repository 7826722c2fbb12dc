"""The gateway process: WebSocket server, handshake, probes, and the per-connection loop.

Handshake (``process_request``): ``/healthz``, ``/readyz`` and ``/metrics`` are answered
here; ``/ocpp/{id}`` is admitted when the gateway is ready (else 503), the identity is
well-formed (else 400) and authz admits it (404 unknown, 401 bad password; no answer: 503).
A client that does not offer ``ocpp1.6`` is closed right after the handshake (1002).

While RabbitMQ or the database behind the services is unreachable the gateway reports
not-ready, refuses handshakes and closes connections with 1013 (try again later), so
chargers keep transaction messages queued instead of receiving errors they would count.
On SIGTERM it drains: not-ready first, then closes chargers in batches with 1012.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from gateway import codec
from gateway.bridge import GatewayBridge
from gateway.session import Session
from services.bus import Bus
from services.envelope import (
    CallOutcome,
    CallReply,
    ChargerCall,
    ConnectRequest,
    CsmsCall,
    StationMessage,
    Takeover,
)
from services.errors import BusUnavailable, OcppError
from services.http_probe import ProbeServer
from services.metrics import (
    CALLERRORS,
    CONNECTIONS,
    CONNECTIONS_TOTAL,
    CSMS_CALLS,
    FRAMES,
    HANDSHAKES_REFUSED,
    READY,
    ROUND_TRIP,
)
from services.ocpp16 import CHARGER_ACTIONS, iso, utcnow
from services.runtime import install_signal_handlers
from services.settings import Settings
from services.topology import Topology

log = logging.getLogger("gridlink.gateway")

SUBPROTOCOL = "ocpp1.6"
CLOSE_REPLACED = 1000  # a newer connection of the same station took over
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL = 1002
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013
OCPP_PATH = "/ocpp/"


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
        self.sessions: dict[str, tuple[Session, ServerConnection]] = {}
        self.draining = False
        self.server: Server | None = None
        self.probes: ProbeServer | None = None  # the separate metrics port, if configured
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._moved: dict[str, float] = {}  # station -> when another pod took it over
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def _spawn(self, work: Any) -> None:
        """Run a coroutine in the background, keeping a reference until it is done."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        for _, connection in list(self.sessions.values()):
            self._spawn(connection.close(code, reason))

    # --- handshake ------------------------------------------------------------------------

    async def process_request(self, connection: ServerConnection, request: Request
                              ) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if path == "/readyz":
            ok, why = self.readiness()
            return connection.respond(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
                                      why + "\n")
        if path == "/metrics" and not self.settings.gateway_metrics_port:
            body = generate_latest()
            return Response(200, "OK", Headers([("Content-Type", CONTENT_TYPE_LATEST),
                                                ("Content-Length", str(len(body)))]), body)
        if not path.startswith(OCPP_PATH):
            return self._refuse(connection, HTTPStatus.NOT_FOUND, "not_found", "not found")
        ok, why = self.readiness()
        if not ok:
            return self._refuse(connection, HTTPStatus.SERVICE_UNAVAILABLE,
                                "draining" if self.draining else "backend_unavailable", why)
        station = self.station_id(path)
        if station is None:
            return self._refuse(connection, HTTPStatus.BAD_REQUEST, "bad_identity",
                                "invalid charge point identity")
        admission = ConnectRequest(station=station, password=_basic_password(request, station))
        try:
            decision = await self.bridge.ask_connect(admission, self.settings.connect_timeout_s)
        except BusUnavailable:
            return self._refuse(connection, HTTPStatus.SERVICE_UNAVAILABLE,
                                "backend_unavailable", "try again later")
        if not decision.accept:
            response = self._refuse(connection, HTTPStatus(decision.status), decision.reason,
                                    decision.reason)
            if decision.status == HTTPStatus.UNAUTHORIZED:
                response.headers["WWW-Authenticate"] = 'Basic realm="GridLink", charset="UTF-8"'
            return response
        return None

    def station_id(self, path: str) -> str | None:
        """The identity: the last path segment, percent-decoded; None if unusable."""
        segment = path[len(OCPP_PATH):]
        if not segment or "/" in segment:
            return None
        try:
            station = unquote(segment, errors="strict")
        except UnicodeDecodeError:
            return None
        if not station or len(station) > self.settings.max_station_id_length:
            return None
        if any(ord(ch) < 0x20 or ch in "/\\#" for ch in station):
            return None
        return station

    def _refuse(self, connection: ServerConnection, status: HTTPStatus, reason: str,
                text: str) -> Response:
        HANDSHAKES_REFUSED.labels(reason).inc()
        CONNECTIONS_TOTAL.labels("refused").inc()
        return connection.respond(status, text + "\n")

    # --- one connection -------------------------------------------------------------------

    async def handle(self, connection: ServerConnection) -> None:
        if connection.subprotocol != SUBPROTOCOL:
            CONNECTIONS_TOTAL.labels("no_subprotocol").inc()
            await connection.close(CLOSE_PROTOCOL, "subprotocol ocpp1.6 required")
            return
        station = self.station_id(urlsplit(connection.request.path).path)  # type: ignore[union-attr]
        assert station is not None
        session = Session(station)
        previous = self.sessions.get(station)
        self.sessions[station] = (session, connection)
        self._moved.pop(station, None)
        if previous is not None:
            await previous[1].close(CLOSE_REPLACED, "replaced by a newer connection")
        try:
            await self.bridge.attach(station, session.session_id)
        except BusUnavailable:
            await connection.close(CLOSE_TRY_AGAIN_LATER, "broker unavailable")
            self._forget(session)
            return
        CONNECTIONS.inc()
        CONNECTIONS_TOTAL.labels("accepted").inc()
        log.info("charger connected", extra={"station": station})
        try:
            async for frame in connection:
                await self._on_frame(session, connection, frame)
        except ConnectionClosed:
            pass
        finally:
            CONNECTIONS.dec()
            log.info("charger disconnected", extra={
                "station": station, "code": connection.close_code})
            await self._end_session(session)

    async def _on_frame(self, session: Session, connection: ServerConnection,
                        frame: str | bytes) -> None:
        event = codec.decode(frame)
        if event is None:
            return
        if isinstance(event, codec.Rejected):
            await self._send_error(connection, event.unique_id, event.error, action="invalid")
            return
        if isinstance(event, codec.IncomingCall):
            await self._on_call(session, connection, event)
            return
        outcome = session.answer(event, utcnow())
        if outcome is None:
            log.warning("answer to no outstanding call dropped",
                        extra={"station": session.station})
            return
        self._cancel_timer(session)
        CSMS_CALLS.labels(outcome.action, outcome.status).inc()
        await self._publish_outcome(outcome)
        await self._send_next(session, connection)

    async def _on_call(self, session: Session, connection: ServerConnection,
                       event: codec.IncomingCall) -> None:
        try:
            session.accept_call(event, time.perf_counter())
        except OcppError as exc:
            await self._send_error(connection, event.unique_id, exc, action=event.action)
            return
        answered = event.action == "Heartbeat" and self.settings.edge_heartbeat
        call = ChargerCall(station=session.station, session=session.session_id,
                           unique_id=event.unique_id, action=event.action,
                           payload=event.payload, received_at=utcnow(), answered=answered)
        if answered:
            session.complete_call(event.unique_id, None)
            FRAMES.labels(event.action, "edge").inc()
            await connection.send(codec.encode_result(event.unique_id,
                                                      {"currentTime": iso(call.received_at)}))
        self._in_flight += 1
        self._idle.clear()
        try:
            await self.bridge.publish_call(call)
        except BusUnavailable:
            if answered:
                return  # last-seen is best effort
            # Never answer an error the charger would count: let it resend later.
            session.pending.pop(event.unique_id, None)
            FRAMES.labels(event.action, "broker_unavailable").inc()
            await connection.close(CLOSE_TRY_AGAIN_LATER, "broker unavailable, try again later")
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _send_error(self, connection: ServerConnection, unique_id: str, error: OcppError,
                          *, action: str) -> None:
        CALLERRORS.labels(error.code).inc()
        FRAMES.labels(action if action in CHARGER_ACTIONS else "invalid", error.code).inc()
        with contextlib.suppress(ConnectionClosed):
            await connection.send(codec.encode_error(unique_id, error.code, error.description))

    # --- messages from the broker ---------------------------------------------------------

    def _on_station_message(self, message: StationMessage) -> None:
        entry = self.sessions.get(message.station)
        if isinstance(message, Takeover):
            if entry is not None and entry[0].session_id != message.session:
                self._remember_moved(message.station)
                self._spawn(entry[1].close(CLOSE_REPLACED,
                                                     "replaced by a newer connection"))
            return
        if isinstance(message, CallReply):
            if entry is not None and entry[0].session_id == message.session:
                self._spawn(self._deliver_reply(entry[0], entry[1], message))
            return
        self._spawn(self._deliver_command(message, entry))

    def _remember_moved(self, station: str) -> None:
        """Note that another pod took ``station``; forget such notes after a minute."""
        now = time.monotonic()
        self._moved[station] = now
        if len(self._moved) > 1000:
            for key, at in list(self._moved.items()):
                if now - at > 60:
                    del self._moved[key]

    async def _deliver_reply(self, session: Session, connection: ServerConnection,
                             reply: CallReply) -> None:
        pending = session.complete_call(reply.unique_id, reply.payload)
        if pending is None:
            return  # a reply to a call the charger gave up on
        ROUND_TRIP.labels(pending.action).observe(time.perf_counter() - pending.started)
        if reply.error_code:
            CALLERRORS.labels(reply.error_code).inc()
            FRAMES.labels(pending.action, reply.error_code).inc()
            frame = codec.encode_error(reply.unique_id, reply.error_code,
                                       reply.error_description or "")
        else:
            FRAMES.labels(pending.action, "ok").inc()
            frame = codec.encode_result(reply.unique_id, reply.payload or {})
        with contextlib.suppress(ConnectionClosed):
            await connection.send(frame)

    async def _deliver_command(self, command: CsmsCall,
                               entry: tuple[Session, ServerConnection] | None) -> None:
        if entry is None:
            if command.station not in self._moved:  # it left this pod and went nowhere
                await self._publish_outcome(CallOutcome(
                    command_id=command.command_id, station=command.station,
                    action=command.action, status="closed", at=utcnow()))
            return
        session, connection = entry
        session.enqueue(command)
        await self._send_next(session, connection)

    async def _send_next(self, session: Session, connection: ServerConnection) -> None:
        nxt = session.next_call()
        if nxt is None:
            return
        unique_id, command = nxt
        loop = asyncio.get_running_loop()
        self._timers[session.session_id] = loop.call_later(
            command.timeout_s, lambda: self._spawn(
                self._on_timeout(session, connection, unique_id)))
        try:
            await connection.send(codec.encode_call(unique_id, command.action, command.payload))
        except ConnectionClosed:
            return  # _end_session reports it as closed

    async def _on_timeout(self, session: Session, connection: ServerConnection,
                          unique_id: str) -> None:
        outcome = session.time_out(unique_id, utcnow())
        if outcome is None:
            return
        self._timers.pop(session.session_id, None)
        CSMS_CALLS.labels(outcome.action, "timeout").inc()
        await self._publish_outcome(outcome)
        await self._send_next(session, connection)

    def _cancel_timer(self, session: Session) -> None:
        timer = self._timers.pop(session.session_id, None)
        if timer is not None:
            timer.cancel()

    async def _publish_outcome(self, outcome: CallOutcome) -> None:
        try:
            await self.bridge.publish_outcome(outcome)
        except BusUnavailable:
            log.warning("command outcome not published; the commands service will time it out",
                        extra={"station": outcome.station, "command_id": outcome.command_id})

    async def _end_session(self, session: Session) -> None:
        self._cancel_timer(session)
        for outcome in session.close(utcnow()):
            CSMS_CALLS.labels(outcome.action, "closed").inc()
            await self._publish_outcome(outcome)
        if self._forget(session):
            await self.bridge.detach(session.station)

    def _forget(self, session: Session) -> bool:
        """Drop the session if it is still the station's current one."""
        entry = self.sessions.get(session.station)
        if entry is not None and entry[0] is session:
            del self.sessions[session.station]
            return True
        return False

    # --- running --------------------------------------------------------------------------

    async def start(self) -> None:
        if self.settings.gateway_metrics_port:
            self.probes = ProbeServer(self.settings.http_host, self.settings.gateway_metrics_port,
                                      self.readiness)
            self.probes.start()
        await self.bus.connect(prefetch=self.settings.prefetch)
        self.bus.on_lost.append(self._on_bus_lost)
        self.bus.on_restored.append(self._update_ready_gauge)
        await self.bridge.start()
        self.server = await serve(
            self.handle,
            self.settings.gateway_host,
            self.settings.gateway_port,
            process_request=self.process_request,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            select_subprotocol=_select_subprotocol,
            max_size=self.settings.max_frame_bytes,
            backlog=4096,  # reconnect storms: the default 100 overflows at once
            ping_interval=self.settings.ping_interval_s,
            ping_timeout=self.settings.ping_interval_s,
            close_timeout=5,
        )
        self._update_ready_gauge()

    async def drain(self) -> None:
        """Not-ready first, then close chargers in batches (1012) so they move elsewhere."""
        self.draining = True
        self._update_ready_gauge()
        total = len(self.sessions)
        log.info("draining", extra={"connections": total})
        batch = max(1, self.settings.drain_batch_size)
        while self.sessions:
            connections = [conn for _, conn in list(self.sessions.values())[:batch]]
            await asyncio.gather(*(c.close(CLOSE_SERVICE_RESTART, "gateway restarting")
                                   for c in connections), return_exceptions=True)
            await self._wait_gone(connections)
            if self.sessions:
                await asyncio.sleep(self.settings.drain_batch_interval_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.settings.shutdown_grace_s)
        log.info("drained", extra={"connections": total})

    async def _wait_gone(self, connections: list[ServerConnection]) -> None:
        """Wait until the handlers of these connections finished their clean-up."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(
                *(c.wait_closed() for c in connections), return_exceptions=True), 10)
        closing = {id(c) for c in connections}
        for _ in range(200):
            if not any(id(conn) in closing for _, conn in self.sessions.values()):
                return
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self.probes is not None:
            self.probes.stop()
        if self.server is not None:
            self.server.close(close_connections=True)
            await self.server.wait_closed()
        with contextlib.suppress(Exception):
            await self.bus.close()


def _select_subprotocol(connection: ServerConnection, offered: Any) -> Any:
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


def _basic_password(request: Request, station: str) -> str | None:
    """The password of an HTTP Basic header whose user is the station (security profile 1/2)."""
    header = request.headers.get("Authorization")
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return password if user == station else None


async def run_gateway(settings: Settings) -> None:
    bus = Bus(settings.amqp_url, Topology.from_settings(settings),
              name=f"gridlink-gateway-{settings.instance}", component="gateway")
    gateway = Gateway(settings, bus)
    stopping = asyncio.Event()
    install_signal_handlers(stopping)
    await gateway.start()
    url = settings.public_url or f"ws://{settings.gateway_host}:{settings.gateway_port}/ocpp"
    log.info("gateway listening", extra={"url": url})
    await stopping.wait()
    await gateway.drain()
    await gateway.stop()
