"""Publish one command message and wait for its result: ``gridlink command``, and the public
client face for other Python services (``from gridlink import send_command``).

The command path itself lives in the kernel (:mod:`services.command_requests`), which the
HTTP API uses too; this module keeps the names the CLI and other services import.
Other services do the same with their own AMQP client: see docs/commands.md.
"""

from __future__ import annotations

from services.command_requests import (
    RESULT_MARGIN_S,
    CommandRequester,
    amqp_user,
    result_wait_s,
    send_command,
)

__all__ = ["RESULT_MARGIN_S", "CommandRequester", "amqp_user", "result_wait_s", "send_command"]
