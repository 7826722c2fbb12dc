"""Publish one command message and wait for its result: ``gridlink command``, and the public
client face for other Python services (``from gridlink import send_command``).

Other services do the same with their own AMQP client: see docs/commands.md. The request
carries the AMQP ``user_id`` of the login (RabbitMQ checks it against the connection's user),
and the commands service records it as the command's ``sender``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
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


async def send_command(settings: Settings, station: str, action: str, payload: dict[str, Any],
                       *, timeout_s: float, command_id: str | None = None, wait: bool = True,
                       queue_if_offline: bool = False, expires_in_s: float | None = None,
                       ) -> CommandResult | None:
    """Send, and wait for the result unless ``wait`` is false (then None).

    Raises TimeoutError when no result comes in time (:func:`result_wait_s`: after the
    commands service's own deadline for it, so a command ends with a status).
    """
    bus = Bus(settings.amqp_url, Topology.from_settings(settings),
              name=f"gridlink-cli-{uuid.uuid4().hex[:8]}", component="cli")
    await bus.connect(attempts=1)
    try:
        reply_queue = await bus.declare_private_queue(bus.topology.requester_queue(
            str(uuid.uuid4())))
        result: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        expires_at = utcnow() + timedelta(seconds=expires_in_s) if expires_in_s else None
        request = CommandRequest(command_id=command_id or str(uuid.uuid4()), station=station,
                                 action=action, payload=payload, timeout_s=timeout_s,
                                 queue_if_offline=queue_if_offline, expires_at=expires_at)

        async def on_result(message: Any) -> None:
            if message.correlation_id == request.command_id and not result.done():
                result.set_result(CommandResult.model_validate_json(message.body))

        await bus.consume(reply_queue, on_result, ack=False)
        await bus.publish(bus.topology.commands_in, "command", request.to_bytes(),
                          reply_to=reply_queue.name, correlation_id=request.command_id,
                          user_id=amqp_user(settings.amqp_url))
        if not wait:
            return None
        return await asyncio.wait_for(result, result_wait_s(timeout_s, expires_in_s))
    finally:
        await bus.close()
