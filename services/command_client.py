"""Publish one command message and wait for its result (the CLI's ``gridlink command``).

Other services do the same with their own AMQP client: see docs/commands.md.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from services.bus import Bus
from services.envelope import CommandRequest, CommandResult
from services.settings import Settings
from services.topology import Topology


async def send_command(settings: Settings, station: str, action: str, payload: dict[str, Any],
                       *, timeout_s: float, command_id: str | None = None) -> CommandResult:
    """Send and wait; raises TimeoutError when no result comes within ``timeout_s`` + 5 s."""
    bus = Bus(settings.amqp_url, Topology.from_settings(settings),
              name=f"gridlink-cli-{uuid.uuid4().hex[:8]}", component="cli")
    await bus.connect(attempts=1)
    try:
        reply_queue = await bus.declare_private_queue(f"{settings.namespace}.cli.{uuid.uuid4()}")
        result: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        request = CommandRequest(command_id=command_id or str(uuid.uuid4()), station=station,
                                 action=action, payload=payload, timeout_s=timeout_s)

        async def on_result(message: Any) -> None:
            if message.correlation_id == request.command_id and not result.done():
                result.set_result(CommandResult.model_validate_json(message.body))

        await bus.consume(reply_queue, on_result, ack=False)
        await bus.publish(bus.topology.commands_in, "command", request.to_bytes(),
                          reply_to=reply_queue.name, correlation_id=request.command_id)
        return await asyncio.wait_for(result, timeout_s + 5)
    finally:
        await bus.close()
