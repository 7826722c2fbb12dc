"""The life of a command over the in-memory bus and store: validate, record, send, answer,
finish — offline, queued for a boot, idempotent by command id, timed out by the sweep."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from commands.hooks import CommandHooks
from commands.lifecycle import Lifecycle
from commands.repository import CommandRepository
from commands.service import SPEC
from services import stations
from services.envelope import CallOutcome, CommandRequest, CommandResult, CsmsCall
from services.errors import CommandRefused
from services.memory import MemoryBus, MemoryMessage
from services.ocpp16 import utcnow
from services.router import Router
from services.runtime import ServiceRuntime
from tests.helpers import memory_runtime


class World:
    """A commands process without features, a charger's gateway queue and a requester."""

    def __init__(self) -> None:
        self.runtime: ServiceRuntime = memory_runtime(SPEC)
        self.hooks = CommandHooks(runtime=self.runtime, router=Router("commands"))
        self.lifecycle = Lifecycle(self.runtime, CommandRepository(self.runtime.store.db),
                                   self.hooks)
        bus = self.runtime.bus
        assert isinstance(bus, MemoryBus)
        self.bus = bus
        self.finished: list[dict[str, Any]] = []

    async def setup(self) -> World:
        await self.bus.declare_private_queue("requester")
        await stations.add_station(self.runtime.store.db, "CP-1", registration="Accepted",
                                   password=None, now=utcnow())
        return self

    async def online(self) -> None:
        """A gateway holds CP-1: its queue is bound to the station's key."""
        gateway = await self.bus.declare_private_queue("gateway")
        self.bus.bind(gateway, self.runtime.topology.stations, "CP-1")

    async def request(self, action: str, payload: dict[str, Any], *,
                      user_id: str | None = None, **fields: Any) -> None:
        body = CommandRequest(station=fields.pop("station", "CP-1"), action=action,
                              payload=payload, command_id=fields.pop("command_id", "c1"),
                              **fields).to_bytes()
        await self.lifecycle.handle_request(MemoryMessage(  # type: ignore[arg-type]
            body, self.runtime.topology.commands_in, "command", reply_to="requester",
            correlation_id="c1", user_id=user_id))

    def results(self) -> list[CommandResult]:
        return [CommandResult.model_validate_json(m.body) for m in self.bus.waiting("requester")]

    def sent(self) -> list[CsmsCall]:
        return [CsmsCall.model_validate_json(m.body) for m in self.bus.waiting("gateway")]

    async def outcome(self, command_id: str, status: str, **fields: Any) -> None:
        outcome = CallOutcome(command_id=command_id, station="CP-1", action="Reset",
                              status=status, at=utcnow(), **fields)
        await self.lifecycle.handle_outcome(MemoryMessage(  # type: ignore[arg-type]
            outcome.to_bytes(), self.runtime.topology.calls, "outcome.Reset"))

    async def command(self, command_id: str = "c1") -> dict[str, Any]:
        found = await self.lifecycle.repo.get(command_id)
        assert found is not None
        return found


@pytest.fixture
async def world() -> World:
    return await World().setup()


async def test_invalid_requests_are_answered_and_never_recorded(world: World) -> None:
    await world.request("Reset", {"type": "Sometimes"})
    await world.request("Reset", {"type": "Soft"}, station="NOBODY", command_id="c2")
    await world.request("Frobnicate", {}, command_id="c3")
    assert [(r.status, r.error_code) for r in world.results()] == [
        ("invalid", "PropertyConstraintViolation"), ("invalid", "UnknownStation"),
        ("invalid", "NotImplemented")]
    assert await world.runtime.store.db["commands"].count_documents({}) == 0


async def test_an_offline_station_ends_the_command_offline(world: World) -> None:
    await world.request("Reset", {"type": "Soft"})
    [result] = world.results()
    assert result.status == "offline" and "no gateway" in (result.error_description or "")
    assert [h["status"] for h in (await world.command())["history"]] == [
        "queued", "sent", "offline"]


async def test_sent_then_answered_then_every_waiter_gets_the_result(world: World) -> None:
    await world.online()
    world.hooks.after("Reset")(lambda rt, doc: _record(world, doc))
    await world.request("Reset", {"type": "Soft"})
    [sent] = world.sent()
    assert (sent.command_id, sent.action, sent.payload) == ("c1", "Reset", {"type": "Soft"})
    await world.request("Reset", {"type": "Soft"})  # the same id again: runs once
    assert len(world.sent()) == 1
    await world.outcome("c1", "result", payload={"status": "Accepted"})
    await world.outcome("c1", "result", payload={"status": "Rejected"})  # late: ignored
    results = world.results()
    assert [r.status for r in results] == ["accepted"]
    assert results[0].response == {"status": "Accepted"}
    assert (await world.command())["reply_to"] == ["requester"]
    assert [doc["status"] for doc in world.finished] == ["accepted"]
    events = [m.routing_key for m in world.bus.sent(world.runtime.topology.events, "command.*")]
    assert events == ["command.queued", "command.sent", "command.accepted", "command.finished"]
    await world.request("Reset", {"type": "Soft"})  # after the end: the stored result again
    assert [r.status for r in world.results()] == ["accepted", "accepted"]


async def _record(world: World, document: dict[str, Any]) -> None:
    world.finished.append(document)


async def test_declined_answers_callerrors_and_closed_connections(world: World) -> None:
    await world.online()
    for command_id, (status, fields) in {
            "a": ("result", {"payload": {"status": "Rejected"}}),
            "b": ("callerror", {"error_code": "NotSupported", "error_description": "no"}),
            "c": ("closed", {}), "d": ("timeout", {})}.items():
        await world.request("Reset", {"type": "Soft"}, command_id=command_id)
        await world.outcome(command_id, status, **fields)
    assert [(r.command_id, r.status) for r in world.results()] == [
        ("a", "rejected"), ("b", "callerror"), ("c", "offline"), ("d", "timeout")]


async def test_queued_until_the_station_boots(world: World) -> None:
    await world.request("Reset", {"type": "Soft"}, queue_if_offline=True)
    assert world.results() == []
    assert (await world.command())["status"] == "queued"
    await world.online()
    await world.lifecycle.handle_event(MemoryMessage(  # type: ignore[arg-type]
        json.dumps({"station": "CP-1"}).encode(), world.runtime.topology.events,
        "station.booted"))
    assert [c.command_id for c in world.sent()] == ["c1"]
    assert (await world.command())["status"] == "sent"


async def test_features_refuse_before_anything_is_recorded(world: World) -> None:
    @world.hooks.validate("Reset")
    async def no_hard_resets(rt: ServiceRuntime, request: CommandRequest) -> None:
        if request.payload["type"] == "Hard":
            raise CommandRefused("NoHardReset", "not on weekdays")

    await world.online()
    await world.request("Reset", {"type": "Hard"})
    assert [(r.status, r.error_code) for r in world.results()] == [("invalid", "NoHardReset")]
    assert world.sent() == []
    assert await world.lifecycle.submit(CommandRequest(
        command_id="own", station="CP-1", action="Reset", payload={"type": "Hard"}),
        origin="test") is None  # a feature's own command is refused alike


async def test_features_may_rewrite_a_request_before_it_is_checked_and_recorded(
        world: World) -> None:
    @world.hooks.prepare("Reset")
    async def always_soft(rt: ServiceRuntime, request: CommandRequest) -> CommandRequest:
        return request.model_copy(update={"payload": {"type": "Soft"}})

    @world.hooks.prepare("ChangeConfiguration")
    async def break_it(rt: ServiceRuntime, request: CommandRequest) -> CommandRequest:
        return request.model_copy(update={"payload": {"key": "K"}})  # no value

    await world.online()
    await world.request("Reset", {"type": "Hard"})
    assert [c.payload for c in world.sent()] == [{"type": "Soft"}]
    assert (await world.command())["payload"] == {"type": "Soft"}
    await world.request("ChangeConfiguration", {"key": "K", "value": "V"}, command_id="c2")
    assert [(r.status, r.error_code) for r in world.results()] == [  # checked again
        ("invalid", "OccurenceConstraintViolation")]


async def test_the_sweep_times_out_commands_whose_gateway_vanished(world: World) -> None:
    await world.online()
    await world.request("Reset", {"type": "Soft"}, timeout_s=1)
    repo = world.lifecycle.repo
    overdue = await repo.overdue(utcnow() + timedelta(seconds=60))
    assert [d["_id"] for d in overdue] == ["c1"]
    for document in overdue:
        await world.lifecycle.finish(document["_id"], "timeout", {
            "error_description": "no answer from the gateway before the deadline"},
            ["sent", "queued"])
    assert [r.status for r in world.results()] == ["timeout"]


async def test_the_commands_service_wires_its_features_in_order() -> None:
    runtime = memory_runtime(SPEC)
    service = SPEC.build(runtime)
    assert service.router.actions == {"FirmwareStatusNotification",
                                      "DiagnosticsStatusNotification", "LogStatusNotification",
                                      "SignedFirmwareStatusNotification",
                                      "SecurityEventNotification", "SignCertificate"}
    keys = {route.key for route in service.routes}
    assert {"command", "outcome.*", "station.booted", "transaction.started",
            "certificate.requested"} <= keys
    assert service.indexes["commands"] and service.indexes["reservations"]
    assert service.indexes["certificate_requests"] and service.indexes["security_events"]


async def test_the_sender_is_the_requests_amqp_user_or_gridlink_itself(world: World) -> None:
    await world.online()
    await world.request("Reset", {"type": "Soft"}, user_id="billing-service")
    await world.request("Reset", {"type": "Soft"}, command_id="c2")
    assert (await world.command("c1"))["sender"] == "billing-service"
    assert (await world.command("c2"))["sender"] is None  # the publisher set no user_id
    own = await world.lifecycle.submit(CommandRequest(
        command_id="own", station="CP-1", action="Reset", payload={"type": "Soft"}),
        origin="load_management")
    assert own is not None and own["sender"] == "gridlink:load_management"
    assert (await world.command("own"))["sender"] == "gridlink:load_management"


async def test_the_sender_travels_with_the_message_through_the_bus() -> None:
    runtime = memory_runtime(SPEC)
    consumers = await runtime.start()
    bus = runtime.bus
    assert isinstance(bus, MemoryBus)
    await stations.add_station(runtime.store.db, "CP-1", registration="Accepted",
                               password=None, now=utcnow())
    request = CommandRequest(command_id="c1", station="CP-1", action="ClearCache")
    await bus.publish(runtime.topology.commands_in, "command", request.to_bytes(),
                      user_id="ops-team")
    await bus.settled()
    stored = await runtime.store.db["commands"].find_one({"_id": "c1"})
    assert stored is not None and stored["sender"] == "ops-team"
    runtime.stopping.set()
    await runtime.stop(consumers)
    await runtime.close()


async def test_a_secret_is_stored_redacted_and_sent_in_clear(world: World) -> None:
    await world.online()
    key = "0123456789abcdef0123"
    await world.request("ChangeConfiguration", {"key": "authorizationKEY", "value": key})
    [sent] = world.sent()
    assert sent.payload == {"key": "authorizationKEY", "value": key}
    assert (await world.command())["payload"] == {"key": "authorizationKEY",
                                                  "value": "********"}


async def test_a_secret_cannot_wait_for_an_offline_station(world: World) -> None:
    await world.request("ChangeConfiguration", {"key": "AuthorizationKey",
                                                "value": "0123456789abcdef0123"},
                        queue_if_offline=True)
    [result] = world.results()
    assert (result.status, result.error_code) == ("invalid", "NotQueueable")
    assert "never stored in clear" in (result.error_description or "")
    assert await world.runtime.store.db["commands"].count_documents({}) == 0
