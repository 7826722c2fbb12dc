"""The gateways' ``seen`` facts (a Heartbeat answered at the edge): move the station's
``last_seen`` forward, nothing else — no handler, no response built and thrown away."""

from __future__ import annotations

from aio_pika.abc import AbstractIncomingMessage

from authz.repository import AuthzRepository
from services.bus import decode_json
from services.envelope import StationSeen
from services.runtime import ServiceRuntime


class LastSeen:
    """The handler of ``seen`` on the calls exchange (authz's work queue)."""

    def __init__(self, runtime: ServiceRuntime, repo: AuthzRepository) -> None:
        self.runtime = runtime
        self.repo = repo

    async def handle(self, message: AbstractIncomingMessage) -> None:
        seen = decode_json(message, StationSeen)
        await self.runtime.with_store(lambda: self.repo.record_seen(seen.station, seen.at))
