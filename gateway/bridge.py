"""The gateway's broker side: publish charger calls, hold per-charger bindings, deliver what
comes back (replies, CSMS calls, takeovers), ask authz at the handshake, follow health.

Each gateway process owns one exclusive queue ``{ns}.gateway.{instance}``. While a charger
is connected here, that queue is bound to ``{ns}.stations`` with the station id as routing
key; before binding, a :class:`Takeover` is published on the same key so a pod that still
holds an older connection of the station closes it (newest connection wins across pods).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from services.bus import Bus
from services.envelope import (
    CallOutcome,
    ChargerCall,
    ConnectDecision,
    ConnectRequest,
    HealthReport,
    StationMessage,
    Takeover,
    station_message,
)
from services.errors import BusUnavailable, GridLinkError
from services.ocpp16 import utcnow
from services.topology import call_key, outcome_key

log = logging.getLogger("gridlink.gateway.bridge")


class GatewayBridge:
    def __init__(self, bus: Bus, instance: str, *, health_ttl_s: float,
                 on_station_message: Callable[[StationMessage], None],
                 on_backend_change: Callable[[bool], None]) -> None:
        self.bus = bus
        self.topology = bus.topology
        self.queue_name = bus.topology.gateway_queue(instance)
        self.health_ttl = timedelta(seconds=health_ttl_s)
        self._on_station_message = on_station_message
        self._on_backend_change = on_backend_change
        self._queue: AbstractQueue | None = None
        self._bound: set[str] = set()
        self._stale: set[str] = set()  # unbinds that failed while the broker was away
        self._waiting: dict[str, asyncio.Future[ConnectDecision]] = {}
        self._unhealthy: dict[str, datetime] = {}  # instance -> when it said "no database"
        self.backend_ok = True
        self._cleaning: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._queue = await self.bus.declare_private_queue(self.queue_name)
        await self._queue.bind(self.topology.events, routing_key="health.*")
        await self.bus.consume(self._queue, self._on_message, ack=False)
        self.bus.on_restored.append(self._schedule_clean_stale)

    # --- outbound -------------------------------------------------------------------------

    async def publish_call(self, call: ChargerCall) -> None:
        await self.bus.publish(self.topology.calls, call_key(call.action), call.to_bytes(),
                               message_id=f"{call.station}/{call.unique_id}")

    async def publish_outcome(self, outcome: CallOutcome) -> None:
        await self.bus.publish(self.topology.calls, outcome_key(outcome.action),
                               outcome.to_bytes())

    async def ask_connect(self, request: ConnectRequest, wait_s: float) -> ConnectDecision:
        """Ask authz whether this identity may connect; BusUnavailable if nobody answers."""
        correlation = uuid.uuid4().hex
        future: asyncio.Future[ConnectDecision] = asyncio.get_running_loop().create_future()
        self._waiting[correlation] = future
        try:
            await self.bus.publish(self.topology.calls, "rpc.connect", request.to_bytes(),
                                   reply_to=self.queue_name, correlation_id=correlation,
                                   persistent=False, expiration=wait_s)
            return await asyncio.wait_for(future, wait_s)
        except TimeoutError:
            raise BusUnavailable("authz did not answer the handshake in time") from None
        finally:
            self._waiting.pop(correlation, None)

    # --- per-station bindings -------------------------------------------------------------

    async def attach(self, station: str, session_id: str) -> None:
        """Tell other pods to let go of ``station``, then route its messages here."""
        takeover = Takeover(station=station, session=session_id)
        await self.bus.publish(self.topology.stations, station, takeover.to_bytes(),
                               persistent=False)
        if station not in self._bound:
            assert self._queue is not None
            await self._queue.bind(self.topology.stations, routing_key=station)
            self._bound.add(station)
            self._stale.discard(station)

    async def detach(self, station: str) -> None:
        if station not in self._bound:
            return
        self._bound.discard(station)
        assert self._queue is not None
        try:
            await self._queue.unbind(self.topology.stations, routing_key=station)
        except Exception:  # broker away: retried when it is back
            self._stale.add(station)

    def _schedule_clean_stale(self) -> None:
        task = asyncio.ensure_future(self._clean_stale())
        self._cleaning = task  # keep a reference until done

    async def _clean_stale(self) -> None:
        for station in list(self._stale - self._bound):
            with contextlib.suppress(Exception):
                assert self._queue is not None
                await self._queue.unbind(self.topology.stations, routing_key=station)
                self._stale.discard(station)

    # --- inbound --------------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            if message.correlation_id:  # an admission answer (late ones are dropped)
                future = self._waiting.get(message.correlation_id)
                if future is not None and not future.done():
                    future.set_result(ConnectDecision.model_validate_json(message.body))
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
