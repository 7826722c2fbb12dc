"""The gateway's broker side: publish charger calls, hold per-charger bindings, deliver what
comes back (replies, CSMS calls, takeovers), ask authz at the handshake, follow health.

Each gateway process owns one exclusive queue ``{ns}.gateway.{instance}``. While a charger
is connected here, that queue is bound to ``{ns}.stations`` with the station id as routing
key; once bound, a :class:`Takeover` is published with the same key so a pod that still
holds an older connection of the station closes it (newest connection wins across pods).
Bound first: of two connections of one station attaching at once on two pods, each pod then
hears the other's takeover, and neither is kept twice (when the takeover went out before the
binding, both could miss each other and both stay open, each getting the station's CSMS
calls). A pod ignores the takeovers it published itself (its registry settles its own).

Takeovers go to ``{ns}.takeovers``, which the services bind to ``{ns}.stations``: a gateway
may not publish to ``{ns}.stations`` itself (its broker user cannot: a gateway facing the
Internet must not be able to send CSMS calls to chargers on other pods), and what arrives
from ``{ns}.takeovers`` is believed only as a takeover.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel

from gateway.session import Session
from services.bus import Bus
from services.envelope import (
    CallOutcome,
    ChargerCall,
    ConnectBatch,
    ConnectDecision,
    ConnectDecisions,
    ConnectRequest,
    HealthReport,
    StationConnection,
    StationMessage,
    StationSeen,
    Takeover,
    station_message,
)
from services.errors import BusUnavailable, GridLinkError
from services.metrics import ADMISSION_BATCH
from services.ocpp16 import utcnow
from services.topology import (
    ADMISSION_KEY,
    CONNECTION_KEY,
    HEALTH_KEYS,
    SEEN_KEY,
    call_key,
    outcome_key,
)

log = logging.getLogger("gridlink.gateway.bridge")

#: Own takeovers remembered to recognise their echo (far more than arrive within the echo's
#: round trip, even in a reconnect storm).
PUBLISHED_TAKEOVERS_KEPT = 50_000


class GatewayBridge:
    def __init__(self, bus: Bus, instance: str, *, health_ttl_s: float,
                 connect_timeout_s: float = 5.0, admission_window_s: float = 0.002,
                 bind_channels: int = 8,
                 spawn: Callable[[Coroutine[Any, Any, None]], None],
                 on_station_message: Callable[[StationMessage], None],
                 on_backend_change: Callable[[bool], None]) -> None:
        self.bus = bus
        self.topology = bus.topology
        self.instance = instance
        self.queue_name = bus.topology.gateway_queue(instance)
        self.health_ttl = timedelta(seconds=health_ttl_s)
        self._spawn = spawn  # the gateway's: runs and keeps a background coroutine
        self._on_station_message = on_station_message
        self._on_backend_change = on_backend_change
        self._queue: AbstractQueue | None = None
        self._bound: set[str] = set()
        # Sessions this pod published a takeover for (the newest), to ignore their echo.
        self._published: OrderedDict[str, None] = OrderedDict()
        self.bind_channels = bind_channels
        self._bind_channels: list[AbstractRobustChannel] = []
        self.connect_timeout_s = connect_timeout_s
        self.admission_window_s = admission_window_s
        self.admission_max = 500  # handshakes per question at most
        self._admissions: list[tuple[ConnectRequest, asyncio.Future[ConnectDecision]]] = []
        self._admission_timer: asyncio.TimerHandle | None = None
        self._waiting: dict[str, list[asyncio.Future[ConnectDecision]]] = {}
        self._unhealthy: dict[str, datetime] = {}  # instance -> when it said "no database"
        self.backend_ok = True

    async def start(self) -> None:
        self._queue = await self.bus.declare_private_queue(self.queue_name)
        await self._queue.bind(self.topology.events, routing_key=HEALTH_KEYS)
        await self.bus.consume(self._queue, self._on_message, ack=False)
        self._bind_channels = await self.bus.open_channels(self.bind_channels)
        self.bus.on_lost.append(self._forget_bindings)

    # --- outbound -------------------------------------------------------------------------

    async def publish_call(self, call: ChargerCall) -> None:
        await self.bus.publish(self.topology.calls, call_key(call.action), call.to_bytes(),
                               message_id=f"{call.station}/{call.unique_id}", mandatory=True)

    async def publish_seen(self, seen: StationSeen) -> None:
        """A station was heard from (best effort: not persistent, not mandatory)."""
        await self.bus.publish(self.topology.calls, SEEN_KEY, seen.to_bytes(),
                               persistent=False)

    async def publish_connection(self, session: Session, state: str,
                                 code: int | None = None) -> None:
        """A connection opened or closed (``state``), for authz to publish as an event
        (persistent, not mandatory)."""
        fact = StationConnection(station=session.station, session=session.session_id,
                                 state=state, gateway=self.instance, at=utcnow(),  # type: ignore[arg-type]
                                 profile=session.profile, code=code)
        await self.bus.publish(self.topology.calls, CONNECTION_KEY, fact.to_bytes(),
                               message_id=f"{fact.session}/{state}")

    async def publish_outcome(self, outcome: CallOutcome) -> None:
        await self.bus.publish(self.topology.calls, outcome_key(outcome.action),
                               outcome.to_bytes())

    async def ask_connect(self, request: ConnectRequest, wait_s: float) -> ConnectDecision:
        """Ask authz whether this identity may connect; BusUnavailable if nobody answers.

        Handshakes that arrive within ``admission_window_s`` of each other go to authz as
        one :class:`ConnectBatch` (one message and one database read for hundreds of
        chargers in a reconnect storm)."""
        future: asyncio.Future[ConnectDecision] = asyncio.get_running_loop().create_future()
        self._admissions.append((request, future))
        if len(self._admissions) >= self.admission_max:
            self._flush_admissions()
        elif self._admission_timer is None:
            self._admission_timer = asyncio.get_running_loop().call_later(
                self.admission_window_s, self._flush_admissions)
        try:
            return await asyncio.wait_for(future, wait_s)
        except TimeoutError:
            raise BusUnavailable("authz did not answer the handshake in time") from None

    def _flush_admissions(self) -> None:
        if self._admission_timer is not None:
            self._admission_timer.cancel()
            self._admission_timer = None
        batch, self._admissions = self._admissions, []
        waiting = [(r, f) for r, f in batch if not f.done()]  # not given up yet
        if waiting:
            self._spawn(self._ask_batch(waiting))

    async def _ask_batch(self, batch: list[tuple[ConnectRequest, asyncio.Future[
            ConnectDecision]]]) -> None:
        correlation = uuid.uuid4().hex
        futures = [future for _, future in batch]
        ADMISSION_BATCH.observe(len(batch))
        self._waiting[correlation] = futures
        wait_s = self.connect_timeout_s
        try:
            body = ConnectBatch(requests=[request for request, _ in batch],
                                partial=True).to_bytes()
            await self.bus.publish(self.topology.calls, ADMISSION_KEY, body,
                                   reply_to=self.queue_name, correlation_id=correlation,
                                   persistent=False, expiration=wait_s)
            await asyncio.wait(futures, timeout=wait_s)
        except BusUnavailable as exc:
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
        finally:
            self._waiting.pop(correlation, None)

    def _answer_admissions(self, correlation: str, body: bytes) -> None:
        futures = self._waiting.get(correlation)
        if futures is None:
            return  # a late answer: those handshakes were refused with 503 already
        answer = ConnectDecisions.model_validate_json(body)
        if answer.indices is None:  # all of them, in order
            pairs = list(zip(futures, answer.decisions, strict=False))
        else:  # some of them, as authz decided them
            pairs = [(futures[i], decision) for i, decision in
                     zip(answer.indices, answer.decisions, strict=False)
                     if 0 <= i < len(futures)]
        for future, decision in pairs:
            if not future.done():
                future.set_result(decision)

    # --- per-station bindings -------------------------------------------------------------

    async def attach(self, station: str, session_id: str, profile: int = 0) -> None:
        """Route ``station``'s messages here, then tell other pods to let go of it."""
        if station not in self._bound:
            await self._binding(station, bind=True)
            self._bound.add(station)
        await self.take_over(station, session_id, profile)

    async def take_over(self, station: str, session_id: str, profile: int) -> None:
        """Publish a :class:`Takeover` of ``station`` for this session."""
        self._published[session_id] = None
        while len(self._published) > PUBLISHED_TAKEOVERS_KEPT:
            self._published.popitem(last=False)
        takeover = Takeover(station=station, session=session_id, profile=profile)
        await self.bus.publish(self.topology.takeovers, station, takeover.to_bytes(),
                               persistent=False)

    async def detach(self, station: str) -> None:
        if station not in self._bound:
            return
        self._bound.discard(station)
        with contextlib.suppress(BusUnavailable):  # broker away: the queue went with it
            await self._binding(station, bind=False)

    async def _binding(self, station: str, *, bind: bool) -> None:
        """Bind or unbind on one of a pool of channels: AMQP allows one such request in
        flight per channel, and a reconnect storm needs thousands per second."""
        channel = self._bind_channels[hash(station) % len(self._bind_channels)]
        try:
            underlay = await channel.get_underlay_channel()
            method = underlay.queue_bind if bind else underlay.queue_unbind
            await method(self.queue_name, self.topology.stations, routing_key=station)
        except Exception as exc:  # closed channel, lost connection
            raise BusUnavailable(f"binding for {station!r} failed: {exc}") from None

    def _forget_bindings(self) -> None:
        """The connection is gone, and the exclusive queue with its bindings."""
        self._bound.clear()

    # --- inbound --------------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            if message.exchange == self.topology.takeovers:  # any gateway may publish there
                takeover = Takeover.model_validate_json(message.body)
                if takeover.session not in self._published:  # its own: back to itself
                    self._on_station_message(takeover)
            elif message.correlation_id:  # admission answers (late ones are dropped)
                self._answer_admissions(message.correlation_id, message.body)
            elif message.exchange == self.topology.events:
                self._on_health(HealthReport.model_validate_json(message.body))
            else:
                self._on_station_message(station_message.validate_json(message.body))
        except (ValueError, GridLinkError):
            log.warning("malformed message on the gateway queue dropped",
                        extra={"routing_key": message.routing_key})

    def _on_health(self, report: HealthReport) -> None:
        if report.store_ok:
            self._unhealthy.pop(report.instance, None)
        else:
            self._unhealthy[report.instance] = report.at
        ok = self.healthy_now()
        if ok != self.backend_ok:
            self.backend_ok = ok
            self._on_backend_change(ok)

    def healthy_now(self) -> bool:
        """No service instance reported "no database" within the TTL (safe from any thread:
        reports of instances that died simply age out)."""
        horizon = utcnow() - self.health_ttl
        return not any(at >= horizon for at in list(self._unhealthy.values()))
