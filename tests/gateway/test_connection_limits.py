"""A connection's charger calls one at a time, at the station's rate, the edge Heartbeat's
last-seen fact, binary frames — with a bridge and a socket that stand in (no broker)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gateway import codec
from gateway.connection import ConnectionHandler
from gateway.registry import Registry
from gateway.session import CallRate, Session
from services.envelope import CallOutcome, CallReply, ChargerCall, StationSeen
from services.metrics import CALLS_DELAYED, FRAMES_REFUSED, UNMATCHED_ANSWERS
from tests.helpers import Spawned, memory_settings


class Socket:
    """The charger's WebSocket as the handler sees it."""

    def __init__(self) -> None:
        self.frames: list[list[Any]] = []
        self.closed: tuple[int, str] | None = None
        self._closed = asyncio.Event()

    async def send(self, text: str) -> None:
        self.frames.append(json.loads(text))

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()


class Broker:
    """Takes every publish and keeps it."""

    def __init__(self) -> None:
        self.calls: list[ChargerCall] = []
        self.seen: list[StationSeen] = []
        self.published = asyncio.Event()

    async def attach(self, station: str, session_id: str, profile: int = 0) -> None:
        return None

    async def take_over(self, station: str, session_id: str, profile: int) -> None:
        return None

    async def detach(self, station: str) -> None:
        return None

    async def publish_call(self, call: ChargerCall) -> None:
        self.calls.append(call)
        self.published.set()

    async def publish_seen(self, seen: StationSeen) -> None:
        self.seen.append(seen)

    async def publish_outcome(self, outcome: CallOutcome) -> None:
        return None

    async def publish_connection(self, session: Session, state: str,
                                 code: int | None = None) -> None:
        return None


def connected(**settings: Any) -> tuple[ConnectionHandler, Broker, Spawned, Session, Socket]:
    broker, spawned, registry = Broker(), Spawned(), Registry()
    handler = ConnectionHandler(memory_settings(**settings), registry, broker, spawn=spawned,
                                clock=lambda: 1000.0)  # time stands still for the buckets
    session, socket = Session("CP-1"), Socket()
    registry.register(session, socket)  # type: ignore[arg-type]
    return handler, broker, spawned, session, socket


def authorize(unique_id: str) -> codec.IncomingCall:
    return codec.IncomingCall(unique_id, "Authorize", {"idTag": "T"})


async def yielded_until(condition: Any) -> None:
    """Let other tasks run until ``condition()`` holds (no timed sleep)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_a_call_sent_before_the_reply_waits_for_it() -> None:
    handler, broker, spawned, session, socket = connected()
    held_before = CALLS_DELAYED.labels("outstanding")._value.get()
    await handler._on_call(session, socket, authorize("1"))  # type: ignore[arg-type]
    assert [c.unique_id for c in broker.calls] == ["1"]
    second = asyncio.create_task(handler._on_call(
        session, socket, authorize("2")))  # type: ignore[arg-type]
    await yielded_until(lambda: CALLS_DELAYED.labels("outstanding")._value.get() > held_before)
    assert [c.unique_id for c in broker.calls] == ["1"]  # not forwarded, not refused
    assert socket.frames == []
    handler.on_station_message(CallReply(station="CP-1", session=session.session_id,
                                         unique_id="1", payload={"idTagInfo": {
                                             "status": "Accepted"}}))
    await spawned.run()
    await second
    assert [c.unique_id for c in broker.calls] == ["1", "2"]
    assert socket.frames == [[3, "1", {"idTagInfo": {"status": "Accepted"}}]]
    assert session.awaiting == "2"


async def test_a_held_call_goes_on_when_the_reply_is_overdue() -> None:
    handler, broker, _, session, socket = connected(station_call_wait_s=0.01)
    await handler._on_call(session, socket, authorize("1"))  # type: ignore[arg-type]
    await handler._on_call(session, socket, authorize("2"))  # type: ignore[arg-type]
    assert [c.unique_id for c in broker.calls] == ["1", "2"]  # forwarded, never dropped
    assert set(session.pending) == {"1", "2"}  # the late reply to "1" is still delivered


async def test_a_held_call_of_a_connection_that_closes_is_not_forwarded() -> None:
    handler, broker, _, session, socket = connected()
    await handler._on_call(session, socket, authorize("1"))  # type: ignore[arg-type]
    second = asyncio.create_task(handler._on_call(
        session, socket, authorize("2")))  # type: ignore[arg-type]
    await yielded_until(lambda: session.session_id in handler._replied)
    await socket.close(1000, "bye")
    await second
    assert [c.unique_id for c in broker.calls] == ["1"]  # the charger resends it


async def test_calls_beyond_the_rate_are_delayed_not_refused() -> None:
    handler, _, _, session, socket = connected()
    session.rate = CallRate(per_s=1000.0, burst=1)
    delayed_before = CALLS_DELAYED.labels("rate")._value.get()
    for n in range(3):
        await handler._on_call(session, socket, codec.IncomingCall(  # type: ignore[arg-type]
            f"h{n}", "Heartbeat", {}))
    assert CALLS_DELAYED.labels("rate")._value.get() - delayed_before == 2
    assert [frame[:2] for frame in socket.frames] == [[3, "h0"], [3, "h1"], [3, "h2"]]


async def test_the_edge_heartbeat_publishes_only_that_the_station_was_seen() -> None:
    handler, broker, _, session, socket = connected(edge_heartbeat=True)
    await handler._on_call(session, socket, codec.IncomingCall(  # type: ignore[arg-type]
        "h", "Heartbeat", {}))
    assert broker.calls == []  # no call: no handler runs, no response is thrown away
    [seen] = broker.seen
    assert seen.station == "CP-1"
    [frame] = socket.frames
    assert frame[:2] == [3, "h"] and frame[2]["currentTime"].startswith(
        seen.at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert session.awaiting is None and not session.pending


async def test_without_the_edge_heartbeat_it_is_a_call_like_any_other() -> None:
    handler, broker, _, session, socket = connected(edge_heartbeat=False)
    await handler._on_call(session, socket, codec.IncomingCall(  # type: ignore[arg-type]
        "h", "Heartbeat", {}))
    assert [c.action for c in broker.calls] == ["Heartbeat"] and broker.seen == []
    assert socket.frames == []  # authz answers


async def test_a_binary_frame_closes_the_connection_with_1003() -> None:
    handler, broker, _, session, socket = connected()
    before = FRAMES_REFUSED.labels("binary")._value.get()
    await handler._on_frame(session, socket, b'[2, "b", "Heartbeat", {}]')  # type: ignore[arg-type]
    assert socket.closed is not None and socket.closed[0] == 1003
    assert broker.calls == [] and socket.frames == []
    assert FRAMES_REFUSED.labels("binary")._value.get() == before + 1


async def test_deep_nesting_is_answered_and_counted() -> None:
    handler, _, _, session, socket = connected()
    before = FRAMES_REFUSED.labels("too_deep")._value.get()
    await handler._on_frame(session, socket, "[" * 200_000)  # type: ignore[arg-type]
    assert socket.frames == [[4, "-1", "FormationViolation", socket.frames[0][3], {}]]
    assert socket.closed is None
    assert FRAMES_REFUSED.labels("too_deep")._value.get() == before + 1


async def test_answers_to_no_outstanding_call_are_counted() -> None:
    handler, _, _, session, socket = connected()
    before = UNMATCHED_ANSWERS._value.get()
    for n in range(5):
        await handler._on_frame(session, socket, f'[3, "nothing-{n}", {{}}]')  # type: ignore[arg-type]
    assert UNMATCHED_ANSWERS._value.get() == before + 5
    assert session.unmatched == 4  # one log line so far, for the first
