"""Sending commands as a requester: publish a :class:`CommandRequest` to ``{ns}.commands.in``
and wait for its :class:`CommandResult` on a reply queue of one's own.

The ``gridlink command`` CLI (one command per process: :func:`send_command`) and the HTTP
API (many at once, one connection: :class:`CommandRequester`) both send commands this way,
exactly as other teams' services do with their own AMQP client (docs/commands.md). The
request carries the AMQP ``user_id`` of the login (RabbitMQ checks it against the
connection's user), and the commands service records it as the command's ``sender``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from services.bus import Bus
from services.clock import utcnow
from services.envelope import (
    COMMAND_DEADLINE_GRACE_S,
    COMMAND_SWEEP_S,
    CommandRequest,
    CommandResult,
)
from services.settings import Settings
from services.topology import Topology

#: Beyond the commands service's own bound: the way back through the broker, a busy service.
RESULT_MARGIN_S = 10.0


def result_wait_s(timeout_s: float, expires_in_s: float | None = None) -> float:
    """How long a requester waits for a command's result: past the latest moment the
    commands service ends it (its timeout, the deadline grace, one sweep), with a margin.
    (Waiting only ``timeout_s`` + 5 s gave up on a command whose gateway vanished just
    before the service's sweep timed it out: no status at all instead of ``timeout``.)"""
    return (timeout_s + (expires_in_s or 0) + COMMAND_DEADLINE_GRACE_S + COMMAND_SWEEP_S
            + RESULT_MARGIN_S)


def amqp_user(url: str) -> str | None:
    """The user an AMQP URL logs in as, exactly as RabbitMQ will see it: the URL's user
    (percent-decoded), ``guest`` when it names none (aio-pika's default); None with
    ``auth=external`` (the user comes from the client certificate)."""
    parts = urlsplit(url)
    mechanism = parse_qs(parts.query).get("auth", ["plain"])[-1]
    if mechanism.lower() == "external":
        return None
    return unquote(parts.username or "") or "guest"


def new_request(station: str, action: str, payload: dict[str, Any], *, timeout_s: float,
                command_id: str | None = None, queue_if_offline: bool = False,
                expires_in_s: float | None = None, now: datetime | None = None
                ) -> CommandRequest:
    """A request (a new command id unless given); pydantic's ValidationError if it is none."""
    expires_at = (now or utcnow()) + timedelta(seconds=expires_in_s) if expires_in_s else None
    return CommandRequest(command_id=command_id or str(uuid.uuid4()), station=station,
                          action=action, payload=payload, timeout_s=timeout_s,
                          queue_if_offline=queue_if_offline, expires_at=expires_at)


class CommandRequester:
    """One broker connection and one reply queue for many commands: :meth:`send` publishes
    a request and returns a future of its result (results nobody waits for any more are
    dropped: the command's document in MongoDB has the same)."""

    def __init__(self, settings: Settings, *, component: str = "cli") -> None:
        self.settings = settings
        self.bus = Bus(settings.amqp_url, Topology.from_settings(settings),
                       name=f"gridlink-{component}-{uuid.uuid4().hex[:8]}", component=component)
        self._user = amqp_user(settings.amqp_url)
        self._waiting: dict[str, asyncio.Future[CommandResult]] = {}
        self._reply_queue: Any = None

    @property
    def connected(self) -> bool:
        return self._reply_queue is not None and self.bus.connected

    async def connect(self, *, attempts: int | None = 1) -> None:
        """Connect, declare the reply queue and consume it (``attempts`` None: retry)."""
        await self.bus.connect(attempts=attempts)
        self._reply_queue = await self.bus.declare_private_queue(
            self.bus.topology.requester_queue(str(uuid.uuid4()), self.bus.component))
        await self.bus.consume(self._reply_queue, self._on_result, ack=False)

    async def _on_result(self, message: Any) -> None:
        waiting = self._waiting.pop(message.correlation_id or "", None)
        if waiting is not None and not waiting.done():
            waiting.set_result(CommandResult.model_validate_json(message.body))

    async def send(self, request: CommandRequest) -> asyncio.Future[CommandResult]:
        """Publish ``request``; the future of its result (:meth:`forget` it if not awaited)."""
        assert self._reply_queue is not None, "connect() first"
        result: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._waiting[request.command_id] = result
        try:
            await self.bus.publish(self.bus.topology.commands_in, "command", request.to_bytes(),
                                   reply_to=self._reply_queue.name,
                                   correlation_id=request.command_id, user_id=self._user)
        except BaseException:
            self._waiting.pop(request.command_id, None)
            raise
        return result

    def forget(self, command_id: str) -> None:
        """Stop waiting for a command's result."""
        waiting = self._waiting.pop(command_id, None)
        if waiting is not None and not waiting.done():
            waiting.cancel()

    async def close(self) -> None:
        for command_id in list(self._waiting):
            self.forget(command_id)
        await self.bus.close()


async def send_command(settings: Settings, station: str, action: str, payload: dict[str, Any],
                       *, timeout_s: float, command_id: str | None = None, wait: bool = True,
                       queue_if_offline: bool = False, expires_in_s: float | None = None,
                       ) -> CommandResult | None:
    """Send, and wait for the result unless ``wait`` is false (then None).

    Raises TimeoutError when no result comes in time (:func:`result_wait_s`: after the
    commands service's own deadline for it, so a command ends with a status).
    """
    requester = CommandRequester(settings, component="cli")
    await requester.connect(attempts=1)
    try:
        request = new_request(station, action, payload, timeout_s=timeout_s,
                              command_id=command_id, queue_if_offline=queue_if_offline,
                              expires_in_s=expires_in_s)
        result = await requester.send(request)
        if not wait:
            return None
        return await asyncio.wait_for(result, result_wait_s(timeout_s, expires_in_s))
    finally:
        await requester.close()
