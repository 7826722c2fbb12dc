"""The charger connections of a gateway pod: each one's loop and what is delivered to it.

:meth:`ConnectionHandler.handle` runs once per connection: it refuses a client without the
``ocpp1.6`` subprotocol (1002), registers the session (closing an older connection of the
station here with 1000) and attaches the station on the broker (a pod holding an older one
closes it), then feeds each frame through the codec and the session: a binary frame closes the
connection (1003); charger calls are published through the bridge one at a time (a CALL sent
before the previous one's reply waits for it; beyond the station's rate the next frame is read
later), answers to CSMS calls end them. A Heartbeat answered at the edge
(GRIDLINK_EDGE_HEARTBEAT) publishes only a :class:`StationSeen` fact, no call. When the
connection ends, unanswered CSMS calls end ``closed``.

:meth:`ConnectionHandler.on_station_message` takes what the broker sends for a station: replies
to charger calls, CSMS calls (sent one at a time, each with its timer) and takeovers by another
pod (closed with 1000). While the broker is unreachable a connection is closed with 1013 (try
again later) rather than answering an error the charger would count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, MutableMapping
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from gateway import codec
from gateway.backlog import Backlog
from gateway.handshake import SUBPROTOCOL, station_id
from gateway.registry import Attached, Registry
from gateway.session import CallRate, Session
from services import ocpp16
from services.envelope import (
    CallOutcome,
    CallReply,
    ChargerCall,
    ConnectDecision,
    CsmsCall,
    StationMessage,
    StationSeen,
    Takeover,
)
from services.errors import BusUnavailable, NotSupported, OcppError, Unroutable
from services.metrics import (
    CALLERRORS,
    CALLS_DELAYED,
    CONNECTIONS,
    CONNECTIONS_TOTAL,
    CSMS_CALLS,
    FRAMES,
    FRAMES_REFUSED,
    ROUND_TRIP,
    UNMATCHED_ANSWERS,
)
from services.ocpp16 import CHARGER_ACTIONS, iso, utcnow
from services.settings import Settings
from services.shutdown import InFlight

log = logging.getLogger("gridlink.gateway")

CLOSE_REPLACED = 1000  # a newer connection of the same station took over
CLOSE_PROTOCOL = 1002  # no ocpp1.6 subprotocol
CLOSE_POLICY = 1008  # a connection no admission decision is known for
CLOSE_SERVICE_RESTART = 1012  # the gateway drains
CLOSE_TRY_AGAIN_LATER = 1013  # broker or database unreachable


class Bridge(Protocol):
    """What a connection needs of the broker side (:class:`gateway.bridge.GatewayBridge`)."""

    async def attach(self, station: str, session_id: str, profile: int = 0) -> None: ...
    async def take_over(self, station: str, session_id: str, profile: int) -> None: ...
    async def detach(self, station: str) -> None: ...
    async def publish_call(self, call: ChargerCall) -> None: ...
    async def publish_seen(self, seen: StationSeen) -> None: ...
    async def publish_outcome(self, outcome: CallOutcome) -> None: ...
    async def publish_connection(self, session: Session, state: str,
                                 code: int | None = None) -> None: ...


class ConnectionHandler:
    """Runs every charger connection of the pod against ``registry`` and ``bridge``.

    ``spawn`` runs a coroutine in the background and keeps it until done. ``publishing``
    counts the charger calls being published (the drain waits for them). ``clock`` gives
    the monotonic seconds of the stations' rate limits.
    """

    def __init__(self, settings: Settings, registry: Registry, bridge: Bridge, *,
                 spawn: Callable[[Coroutine[Any, Any, None]], None],
                 admitted: MutableMapping[ServerConnection, ConnectDecision] | None = None,
                 backlog: Backlog | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.admitted = admitted if admitted is not None else {}  # by the handshake
        self.registry = registry
        self.bridge = bridge
        self._spawn = spawn
        self._timers: dict[str, asyncio.TimerHandle] = {}  # session id -> CSMS call deadline
        self._replied: dict[str, asyncio.Event] = {}  # session id -> "a reply came"
        self.publishing = InFlight()
        self.backlog = backlog or Backlog()  # calls awaiting a service (gateway.backlog)
        self._clock = clock

    # --- one connection -------------------------------------------------------------------

    async def handle(self, connection: ServerConnection) -> None:
        """The websockets handler: one connection, from after the handshake to its end."""
        if connection.subprotocol != SUBPROTOCOL:
            CONNECTIONS_TOTAL.labels("no_subprotocol").inc()
            await connection.close(CLOSE_PROTOCOL, "subprotocol ocpp1.6 required")
            return
        station = station_id(urlsplit(connection.request.path).path,  # type: ignore[union-attr]
                             self.settings.max_station_id_length)
        assert station is not None
        decision = self.admitted.pop(connection, None)
        if decision is None:  # not admitted by this gateway's handshake: never served
            await connection.close(CLOSE_POLICY, "not admitted")
            return
        session = Session(station, registration=decision.registration,
                          profile=decision.profile or 0,
                          rate=CallRate(self.settings.station_calls_per_s,
                                        self.settings.station_call_burst))
        previous = self.registry.register(session, connection)
        if previous is not None:
            await previous.connection.close(CLOSE_REPLACED, "replaced by a newer connection")
        try:
            await self.bridge.attach(station, session.session_id, session.profile)
        except BusUnavailable:
            await connection.close(CLOSE_TRY_AGAIN_LATER, "broker unavailable")
            self.registry.forget(session)
            return
        CONNECTIONS.inc()
        CONNECTIONS_TOTAL.labels("accepted").inc()
        log.info("charger connected", extra={"station": station})
        opened = asyncio.ensure_future(self._announce(session, "connected"))
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
            code = connection.close_code
            self._spawn(self._announce(session, "disconnected", code, after=opened))

    async def _on_frame(self, session: Session, connection: ServerConnection,
                        frame: str | bytes) -> None:
        event = codec.decode(frame)
        if event is None:
            return
        if isinstance(event, codec.Unacceptable):
            FRAMES_REFUSED.labels("binary").inc()
            log.warning("binary frame: connection closed", extra={"station": session.station})
            await connection.close(event.code, event.reason)
            return
        if isinstance(event, codec.Rejected):
            if event.too_deep:
                FRAMES_REFUSED.labels("too_deep").inc()
            await self._send_error(connection, event.unique_id, event.error, action="invalid")
            return
        if isinstance(event, codec.IncomingCall):
            await self._on_call(session, connection, event)
            return
        outcome = session.answer(event, utcnow())
        if outcome is None:
            UNMATCHED_ANSWERS.inc()
            count = session.unmatched_answer(self._clock())
            if count is not None:
                log.warning("answers to no outstanding call dropped", extra={
                    "station": session.station, "count": count})
            return
        self._cancel_timer(session)
        CSMS_CALLS.labels(outcome.action, outcome.status).inc()
        await self._publish_outcome(outcome)
        await self._send_next(session, connection)

    async def _on_call(self, session: Session, connection: ServerConnection,
                       event: codec.IncomingCall) -> None:
        delay = session.rate.take(self._clock())
        if delay > 0:  # beyond the station's rate: read its next frame later, never refuse
            CALLS_DELAYED.labels("rate").inc()
            await asyncio.sleep(delay)
        try:
            if not session.receive_call(event):
                CALLS_DELAYED.labels("outstanding").inc()
                if not await self._wait_for_reply(session, connection, event):
                    return  # the connection closed meanwhile: the charger will resend
            session.accept_call(event, time.perf_counter())
        except OcppError as exc:
            await self._send_error(connection, event.unique_id, exc, action=event.action)
            return
        received_at = utcnow()
        if event.action == "Heartbeat" and self.settings.edge_heartbeat:
            await self._answer_heartbeat(session, connection, event.unique_id, received_at)
            return
        call = ChargerCall(station=session.station, session=session.session_id,
                           unique_id=event.unique_id, action=event.action,
                           payload=event.payload, received_at=received_at)
        with self.publishing.track():
            self.backlog.call_sent(session.session_id, event.unique_id)
            try:
                await self.bridge.publish_call(call)
            except Unroutable:
                self.backlog.call_answered(session.session_id, event.unique_id)
                # No service consumes this action (a release that does not handle it yet).
                session.complete_call(event.unique_id, None)
                await self._send_error(connection, event.unique_id, NotSupported(
                    f"{event.action} is not supported by this central system"),
                    action=event.action)
            except BusUnavailable:  # (the session's end takes it off the backlog)
                # Never answer an error the charger would count: let it resend later.
                session.complete_call(event.unique_id, None)
                FRAMES.labels(event.action, "broker_unavailable").inc()
                await connection.close(CLOSE_TRY_AGAIN_LATER,
                                       "broker unavailable, try again later")

    async def _answer_heartbeat(self, session: Session, connection: ServerConnection,
                                unique_id: str, received_at: datetime) -> None:
        """Answer a Heartbeat here and publish only what it tells: the station was seen."""
        session.complete_call(unique_id, None)
        FRAMES.labels("Heartbeat", "edge").inc()
        await connection.send(codec.encode_result(unique_id,
                                                  {"currentTime": iso(received_at)}))
        with self.publishing.track(), contextlib.suppress(BusUnavailable, Unroutable):
            await self.bridge.publish_seen(StationSeen(station=session.station,
                                                       at=received_at))  # best effort

    async def _wait_for_reply(self, session: Session, connection: ServerConnection,
                              event: codec.IncomingCall) -> bool:
        """Hold a CALL sent before the previous one was answered: until that reply is
        delivered, or ``station_call_wait_s`` passed (then it goes on anyway). Nothing more
        of the connection is read meanwhile. False if the connection closed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.station_call_wait_s
        replied = self._replied.setdefault(session.session_id, asyncio.Event())
        closing = asyncio.ensure_future(connection.wait_closed())
        try:
            while not session.receive_call(event):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    log.warning("reply to a charger call overdue: the next call goes on",
                                extra={"station": session.station,
                                       "unique_id": session.stop_waiting()})
                    break
                replied.clear()
                reply = asyncio.ensure_future(replied.wait())
                try:
                    await asyncio.wait((reply, closing), timeout=remaining,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    reply.cancel()
                if closing.done() or session.closed:
                    return False
        finally:
            closing.cancel()
        return True

    async def _send_error(self, connection: ServerConnection, unique_id: str, error: OcppError,
                          *, action: str) -> None:
        CALLERRORS.labels(error.code).inc()
        FRAMES.labels(action if action in CHARGER_ACTIONS else "invalid", error.code).inc()
        with contextlib.suppress(ConnectionClosed):
            await connection.send(codec.encode_error(unique_id, error.code, error.description))

    # --- messages from the broker ---------------------------------------------------------

    def on_station_message(self, message: StationMessage) -> None:
        """The bridge's callback: a reply, a CSMS call or a takeover for one station."""
        attached = self.registry.get(message.station)
        if isinstance(message, Takeover):
            if attached is None or attached.session.session_id == message.session:
                return
            if attached.session.profile > message.profile:
                # A weaker login never replaces a stronger one: take the station back.
                log.warning("weaker connection on another pod refused", extra={
                    "station": message.station, "profile": message.profile})
                self._spawn(self._take_back(attached.session))
                return
            self.registry.remember_moved(message.station)
            self._spawn(attached.connection.close(CLOSE_REPLACED,
                                                  "replaced by a newer connection"))
            return
        if isinstance(message, CallReply):
            if attached is not None and attached.session.session_id == message.session:
                self._spawn(self._deliver_reply(attached.session, attached.connection, message))
            return
        self._spawn(self._deliver_command(message, attached))

    async def _deliver_reply(self, session: Session, connection: ServerConnection,
                             reply: CallReply) -> None:
        pending = session.complete_call(reply.unique_id, reply.payload)
        self.backlog.call_answered(session.session_id, reply.unique_id)
        replied = self._replied.get(session.session_id)
        if replied is not None:
            replied.set()  # a CALL held behind this one may go on
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

    async def _take_back(self, session: Session) -> None:
        with contextlib.suppress(BusUnavailable):
            await self.bridge.take_over(session.station, session.session_id, session.profile)

    async def _deliver_command(self, command: CsmsCall, attached: Attached | None) -> None:
        try:  # whoever published it, only a valid CSMS-initiated 1.6 call reaches a charger
            ocpp16.check_csms_call(command.action, command.payload)
        except OcppError as exc:
            log.warning("invalid CSMS call not forwarded", extra={
                "station": command.station, "action": command.action, "error": exc.description})
            await self._publish_outcome(CallOutcome(
                command_id=command.command_id, station=command.station, action=command.action,
                status="invalid", error_code=exc.code,
                error_description=f"not sent: {exc.description}", at=utcnow()))
            return
        if attached is None:
            if not self.registry.moved(command.station):  # it left this pod and went nowhere
                await self._publish_outcome(CallOutcome(
                    command_id=command.command_id, station=command.station,
                    action=command.action, status="closed", at=utcnow()))
            return
        session, connection = attached
        session.enqueue(command)
        await self._send_next(session, connection)

    # --- CSMS calls, one at a time --------------------------------------------------------

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

    async def _announce(self, session: Session, state: str, code: int | None = None, *,
                        after: asyncio.Future[None] | None = None) -> None:
        """Tell authz a connection opened or closed (best effort, after its open, drained)."""
        await asyncio.gather(*(after,) if after else (), return_exceptions=True)
        with self.publishing.track(), contextlib.suppress(BusUnavailable, Unroutable):
            await self.bridge.publish_connection(session, state, code)

    # --- the end --------------------------------------------------------------------------

    async def _end_session(self, session: Session) -> None:
        self._cancel_timer(session)
        self._replied.pop(session.session_id, None)
        self.backlog.session_ended(session.session_id, list(session.pending))
        for outcome in session.close(utcnow()):
            CSMS_CALLS.labels(outcome.action, "closed").inc()
            await self._publish_outcome(outcome)
        if self.registry.forget(session):
            await self.bridge.detach(session.station)
