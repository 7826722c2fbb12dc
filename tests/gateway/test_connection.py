"""One connection's handling of charger calls, with a bridge that stands in for the broker."""

from __future__ import annotations

import json
from typing import Any

from gateway import codec
from gateway.connection import ConnectionHandler
from gateway.registry import Registry
from gateway.session import Session
from services.envelope import CallOutcome, ChargerCall, CsmsCall, StationSeen, Takeover
from services.errors import Unroutable
from tests.helpers import Spawned, memory_settings


class Sent:
    """What the handler sends on the charger's WebSocket."""

    def __init__(self) -> None:
        self.frames: list[list[Any]] = []

    async def send(self, text: str) -> None:
        self.frames.append(json.loads(text))


class Nobody:
    """A broker where no service consumes the call (and what was published on it)."""

    def __init__(self) -> None:
        self.published: list[ChargerCall] = []
        self.outcomes: list[CallOutcome] = []
        self.takeovers: list[tuple[str, str, int]] = []

    async def attach(self, station: str, session_id: str, profile: int = 0) -> None:
        return None

    async def take_over(self, station: str, session_id: str, profile: int) -> None:
        self.takeovers.append((station, session_id, profile))

    async def detach(self, station: str) -> None:
        return None

    async def publish_call(self, call: ChargerCall) -> None:
        self.published.append(call)
        raise Unroutable("no queue")

    async def publish_seen(self, seen: StationSeen) -> None:
        return None

    async def publish_outcome(self, outcome: CallOutcome) -> None:
        self.outcomes.append(outcome)

    async def publish_connection(self, session: Session, state: str,
                                 code: int | None = None) -> None:
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


class Socket(Sent):
    def __init__(self) -> None:
        super().__init__()
        self.closed: tuple[int, str] | None = None

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def attached(profile: int) -> tuple[ConnectionHandler, Nobody, Spawned, Session, Socket]:
    bridge, spawned, registry = Nobody(), Spawned(), Registry()
    handler = ConnectionHandler(memory_settings(), registry, bridge, spawn=spawned)
    session, socket = Session("CP-1", profile=profile), Socket()
    registry.register(session, socket)  # type: ignore[arg-type]
    return handler, bridge, spawned, session, socket


async def test_a_forged_csms_call_never_reaches_the_charger() -> None:
    handler, bridge, spawned, _, socket = attached(1)
    for action, payload in (("StopTransaction", {"transactionId": 1, "meterStop": 0,
                                                 "timestamp": "2026-01-01T00:00:00Z"}),
                            ("Reset", {"type": {"$in": ["Hard"]}})):
        handler.on_station_message(CsmsCall(command_id=f"c-{action}", station="CP-1",
                                            action=action, payload=payload, timeout_s=5))
    await spawned.run()
    assert socket.frames == []
    assert [(o.command_id, o.status) for o in bridge.outcomes] == [
        ("c-StopTransaction", "invalid"), ("c-Reset", "invalid")]
    assert all((o.error_description or "").startswith("not sent:") for o in bridge.outcomes)


async def test_a_takeover_by_a_weaker_login_is_refused_and_the_station_taken_back() -> None:
    handler, bridge, spawned, session, socket = attached(2)
    handler.on_station_message(Takeover(station="CP-1", session="other", profile=0))
    await spawned.run()
    assert socket.closed is None
    assert bridge.takeovers == [("CP-1", session.session_id, 2)]
    handler.on_station_message(Takeover(station="CP-1", session="other", profile=2))
    await spawned.run()
    assert socket.closed is not None and socket.closed[0] == 1000


async def test_a_connection_without_an_admission_decision_is_closed() -> None:
    class Unadmitted(Socket):
        subprotocol = "ocpp1.6"

        class request:  # the attribute websockets has
            path = "/ocpp/CP-1"

    bridge, registry = Nobody(), Registry()
    handler = ConnectionHandler(memory_settings(), registry, bridge, spawn=Spawned())
    socket = Unadmitted()
    await handler.handle(socket)  # type: ignore[arg-type]
    assert socket.closed == (1008, "not admitted") and len(registry) == 0
