"""One connection's handling of charger calls, with a bridge that stands in for the broker."""

from __future__ import annotations

import json
from typing import Any

from gateway import codec
from gateway.connection import ConnectionHandler
from gateway.registry import Registry
from gateway.session import Session
from services.envelope import CallOutcome, ChargerCall
from services.errors import Unroutable
from tests.helpers import memory_settings


class Sent:
    """What the handler sends on the charger's WebSocket."""

    def __init__(self) -> None:
        self.frames: list[list[Any]] = []

    async def send(self, text: str) -> None:
        self.frames.append(json.loads(text))


class Nobody:
    """A broker where no service consumes the call."""

    def __init__(self) -> None:
        self.published: list[ChargerCall] = []

    async def attach(self, station: str, session_id: str) -> None:
        return None

    async def detach(self, station: str) -> None:
        return None

    async def publish_call(self, call: ChargerCall) -> None:
        self.published.append(call)
        raise Unroutable("no queue")

    async def publish_outcome(self, outcome: CallOutcome) -> None:
        return None


async def test_a_call_no_service_consumes_is_answered_not_supported() -> None:
    bridge = Nobody()
    handler = ConnectionHandler(memory_settings(), Registry(), bridge, spawn=lambda work: None)
    session, socket = Session("CP-1"), Sent()
    event = codec.IncomingCall("u1", "DataTransfer", {"vendorId": "x"})
    await handler._on_call(session, socket, event)  # type: ignore[arg-type]
    assert [c.action for c in bridge.published] == ["DataTransfer"]
    assert socket.frames == [[4, "u1", "NotSupported",
                              "DataTransfer is not supported by this central system", {}]]
    assert "u1" not in session.pending  # the charger may send the next call
