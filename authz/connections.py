"""The gateways' ``connection`` facts (a charger's WebSocket opened or closed on a pod): the
gateways may publish nothing but calls and takeovers (docs/security.md), so authz publishes
them as events ``station.connected`` / ``station.disconnected``, with the pod and the
session, once per session and state (a redelivered fact is the same event)."""

from __future__ import annotations

from aio_pika.abc import AbstractIncomingMessage

from services import events
from services.bus import decode_json
from services.clock import iso
from services.envelope import StationConnection
from services.router import Event
from services.runtime import ServiceRuntime


class Connections:
    """The handler of ``connection`` on the calls exchange (authz's work queue)."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    async def handle(self, message: AbstractIncomingMessage) -> None:
        fact = decode_json(message, StationConnection)
        key = events.STATION_CONNECTED if fact.state == "connected" \
            else events.STATION_DISCONNECTED
        body = {"station": fact.station, "session": fact.session, "gateway": fact.gateway,
                "profile": fact.profile, "at": iso(fact.at)}
        if fact.code is not None:
            body["code"] = fact.code
        await self.runtime.publish_event(Event(key, events.stamped(key, body, fact.session)))
