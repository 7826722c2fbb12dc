"""The service runtime over the in-memory bus and store: bindings, dispatch, replies before
events, store outages retried, graceful stop."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from services.envelope import CallReply, ChargerCall
from services.errors import StoreUnavailable
from services.memory import MemoryBus, MemoryMessage
from services.ocpp16 import call, call_result
from services.router import CallContext, Router
from services.runtime import Route, Service, ServiceRuntime, ServiceSpec
from services.topology import ServiceQueue
from tests.helpers import memory_runtime


class Probe:
    """What the test service's handlers saw."""

    def __init__(self) -> None:
        self.pings: list[bytes] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.jobs = 0


def spec(probe: Probe) -> ServiceSpec:
    def build(runtime: ServiceRuntime) -> Service:
        router = Router("test")

        @router.on("Heartbeat")
        async def beat(request: call.Heartbeat, ctx: CallContext) -> call_result.Heartbeat:
            ctx.emit("station.seen", {"station": ctx.station, "at": ctx.received_at})
            return call_result.Heartbeat(current_time="2026-01-01T00:00:00.000Z")

        @router.on("Authorize", lane="rpc")
        async def authorize(request: call.Authorize, ctx: CallContext
                            ) -> call_result.Authorize:
            return call_result.Authorize(id_tag_info={"status": "Accepted"})

        async def ping(message: MemoryMessage) -> None:
            probe.pings.append(message.body)
            if message.body == b"slow":
                probe.started.set()
                await probe.release.wait()

        async def job(_: ServiceRuntime) -> None:
            probe.jobs += 1

        return Service(router=router, routes=(Route("events", "ping.*", ping),),
                       background=(job,))

    return ServiceSpec(name="probe", build=build)


def charger_call(action: str, payload: dict[str, Any], station: str = "CP-1") -> bytes:
    return ChargerCall(station=station, session="s1", unique_id="u1", action=action,
                       payload=payload, received_at=datetime(2026, 1, 1, tzinfo=UTC)).to_bytes()


@pytest.fixture
async def running() -> Any:
    probe = Probe()
    runtime = memory_runtime(spec(probe))
    consumers = await runtime.start()
    bus = runtime.bus
    assert isinstance(bus, MemoryBus)
    gateway = await bus.declare_private_queue("gw")
    bus.bind(gateway, runtime.topology.stations, "CP-1")
    events = await bus.declare_queue(ServiceQueue("events", ((runtime.topology.events,
                                                              "station.*"),)))
    yield runtime, bus, probe, consumers, events
    runtime.stopping.set()
    await runtime.stop(consumers)
    await runtime.close()


async def test_queues_are_bound_to_what_the_service_consumes(running: Any) -> None:
    runtime, bus, *_ = running
    t = runtime.topology
    assert bus.bound_keys("memory.probe") == {(t.calls, "call.Heartbeat"), (t.events, "ping.*")}
    assert bus.bound_keys("memory.probe.rpc") == {(t.calls, "call.Authorize")}
    assert runtime.readiness() == (True, "ready")


async def test_a_call_is_answered_on_the_stations_key_and_its_events_follow(
        running: Any) -> None:
    runtime, bus, probe, _, events = running
    await bus.publish(runtime.topology.calls, "call.Heartbeat", charger_call("Heartbeat", {}))
    await bus.publish(runtime.topology.calls, "call.Authorize",
                      charger_call("Authorize", {"idTag": "T"}))
    await bus.settled()
    replies = [CallReply.model_validate_json(m.body) for m in bus.waiting("gw")]
    assert [r.payload for r in replies] == [
        {"currentTime": "2026-01-01T00:00:00.000Z"}, {"idTagInfo": {"status": "Accepted"}}]
    [event] = bus.waiting(events.name)
    assert event.routing_key == "station.seen"
    body = json.loads(event.body)
    assert event.message_id == body.pop("event_id")  # the id consumers dedupe on
    assert body.pop("event_at")
    assert body == {"station": "CP-1", "at": "2026-01-01T00:00:00.000Z"}
    order = [m.routing_key for m in bus.published if m.routing_key in ("CP-1", "station.seen")]
    assert order[:2] == ["CP-1", "station.seen"]  # the reply is confirmed before the event
    assert probe.jobs == 1


async def test_a_call_from_a_stale_binding_is_answered_not_supported(running: Any) -> None:
    runtime, bus, *_ = running
    bus.bind(bus.queues["memory.probe"], runtime.topology.calls, "call.MeterValues")  # stale
    await bus.publish(runtime.topology.calls, "call.MeterValues",
                      charger_call("MeterValues", {"connectorId": 1, "meterValue": []}))
    await bus.settled()
    [reply] = [CallReply.model_validate_json(m.body) for m in bus.waiting("gw")]
    assert reply.error_code == "NotSupported"


async def test_malformed_messages_are_dead_lettered_and_routes_get_theirs(
        running: Any) -> None:
    runtime, bus, probe, *_ = running
    await bus.publish(runtime.topology.calls, "call.Heartbeat", b"not json")
    await bus.publish(runtime.topology.events, "ping.one", b"hello")
    await bus.settled()
    assert [m.body for m in bus.dead_letters] == [b"not json"]
    assert probe.pings == [b"hello"]


async def test_a_store_outage_is_retried_and_reported_only_after_the_grace() -> None:
    runtime = memory_runtime(spec(Probe()), store_outage_grace_s=0)
    await runtime.bus.connect()
    runtime.consuming = True
    seen: list[tuple[bool, str]] = []  # readiness at each attempt

    async def flaky() -> str:
        seen.append(runtime.readiness())
        if len(seen) < 3:
            raise StoreUnavailable("down")
        return "done"

    assert await runtime.with_store(flaky) == "done"
    assert seen == [(True, "ready"), (False, "mongodb unreachable"),
                    (False, "mongodb unreachable")]
    assert runtime.readiness() == (True, "ready")

    patient = memory_runtime(spec(Probe()), store_outage_grace_s=60)
    await patient.bus.connect()
    patient.consuming = True
    seen.clear()
    assert await patient.with_store(flaky) == "done"
    assert seen == [(True, "ready")] * 3  # a short outage is not reported


async def test_stop_lets_messages_in_flight_finish_and_takes_no_new_ones(
        running: Any) -> None:
    runtime, bus, probe, consumers, _ = running
    await bus.publish(runtime.topology.events, "ping.slow", b"slow")
    await probe.started.wait()
    runtime.stopping.set()
    stopping = asyncio.create_task(runtime.stop(consumers))
    await asyncio.sleep(0)
    await bus.publish(runtime.topology.events, "ping.late", b"late")
    assert not stopping.done()  # waits for the slow one
    probe.release.set()
    await asyncio.wait_for(stopping, 5)
    assert probe.pings == [b"slow"]
    assert [m.body for m in bus.waiting("memory.probe")] == [b"late"]  # left for a replica
    assert runtime.readiness() == (False, "shutting down")


async def test_a_call_that_can_never_succeed_is_answered_once_and_acknowledged() -> None:
    attempts: list[str] = []

    def build(runtime: ServiceRuntime) -> Service:
        router = Router("broken")

        @router.on("Heartbeat")
        async def broken(request: call.Heartbeat, ctx: CallContext) -> None:
            attempts.append(ctx.station)
            raise KeyError("a bug")

        return Service(router=router)

    runtime = memory_runtime(ServiceSpec(name="broken", build=build))
    consumers = await runtime.start()
    bus = runtime.bus
    assert isinstance(bus, MemoryBus)
    gateway = await bus.declare_private_queue("gw")
    bus.bind(gateway, runtime.topology.stations, "CP-1")
    await bus.publish(runtime.topology.calls, "call.Heartbeat", charger_call("Heartbeat", {}))
    await bus.settled()
    [reply] = [CallReply.model_validate_json(m.body) for m in bus.waiting("gw")]
    assert (reply.error_code, reply.error_description) == (
        "InternalError", "the call could not be processed")
    assert attempts == ["CP-1"]  # never requeued
    assert bus.dead_letters == []
    runtime.stopping.set()
    await runtime.stop(consumers)
    await runtime.close()
