"""AuthorizationKey rotation (A01) and SecurityProfile upgrades (A05) through the commands
service over the in-memory bus and store: the key reaches the charger and is kept nowhere,
the station's password and profile follow the charger's answer, once."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from commands.features import FEATURES
from commands.hooks import CommandHooks
from commands.lifecycle import Lifecycle
from commands.repository import CommandRepository
from commands.service import SPEC
from gridlink import queries
from services import security_events, stations
from services.envelope import CallOutcome, CommandRequest, CommandResult, CsmsCall
from services.memory import MemoryBus, MemoryMessage
from services.ocpp16 import utcnow
from services.router import Router
from tests.helpers import memory_runtime

OLD_KEY = "the-old-key-0123456789"
NEW_KEY = "7f3a9c0e51b24d68a0c1e2f3a4b5c6d7e8f90123"


class World:
    """A commands process with every feature, CP-1 online (profile 1, OLD_KEY), a
    requester."""

    def __init__(self, **settings: Any) -> None:
        self.runtime = memory_runtime(SPEC, **settings)
        self.hooks = CommandHooks(runtime=self.runtime, router=Router("commands"))
        self.lifecycle = Lifecycle(self.runtime, CommandRepository(self.runtime.store.db),
                                   self.hooks)
        for _, register in FEATURES:
            register(self.hooks, self.lifecycle)
        bus = self.runtime.bus
        assert isinstance(bus, MemoryBus)
        self.bus = bus
        self.db = self.runtime.store.db

    async def setup(self, *, password: str | None = OLD_KEY, profile: int | None = None
                    ) -> World:
        await self.bus.declare_private_queue("requester")
        gateway = await self.bus.declare_private_queue("gateway")
        self.bus.bind(gateway, self.runtime.topology.stations, "CP-1")
        await stations.add_station(self.db, "CP-1", registration="Accepted",
                                   password=password, now=utcnow(), security_profile=profile)
        return self

    async def request(self, action: str, payload: dict[str, Any], *, command_id: str = "c1",
                      redelivered: bool = False, **fields: Any) -> None:
        body = CommandRequest(station="CP-1", action=action, payload=payload,
                              command_id=command_id, **fields).to_bytes()
        await self.lifecycle.handle_request(MemoryMessage(  # type: ignore[arg-type]
            body, self.runtime.topology.commands_in, "command", reply_to="requester",
            correlation_id=command_id, user_id="ops", redelivered=redelivered))

    async def change(self, key: str, value: str, *, command_id: str = "c1") -> None:
        await self.request("ChangeConfiguration", {"key": key, "value": value},
                           command_id=command_id)

    async def answer(self, command_id: str, action: str, payload: dict[str, Any], *,
                     redelivered: bool = False) -> None:
        outcome = CallOutcome(command_id=command_id, station="CP-1", action=action,
                              status="result", payload=payload, at=utcnow())
        await self.lifecycle.handle_outcome(MemoryMessage(  # type: ignore[arg-type]
            outcome.to_bytes(), self.runtime.topology.calls, f"outcome.{action}",
            redelivered=redelivered))

    def results(self) -> list[CommandResult]:
        return [CommandResult.model_validate_json(m.body) for m in self.bus.waiting("requester")]

    def sent(self) -> list[CsmsCall]:
        return [CsmsCall.model_validate_json(m.body) for m in self.bus.waiting("gateway")]

    async def station(self) -> dict[str, Any]:
        found = await self.db[stations.COLLECTION].find_one({"_id": "CP-1"})
        assert found is not None
        return found

    async def events(self) -> list[dict[str, Any]]:
        return await self.db[security_events.COLLECTION].find({}).to_list()

    async def everything_stored(self) -> str:
        """Every document of every collection, as text."""
        texts = []
        for name in await self.db.list_collection_names():
            async for document in self.db[name].find({}):
                texts.append(json.dumps(document, default=str))
        return "\n".join(texts)


@pytest.fixture
async def world() -> World:
    return await World().setup()


async def test_a_new_key_reaches_the_charger_and_is_kept_nowhere(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    old_hash = (await world.station())["password_hash"]
    await world.change("AuthorizationKey", NEW_KEY)
    [sent] = world.sent()
    assert sent.payload == {"key": "AuthorizationKey", "value": NEW_KEY}
    await world.answer("c1", "ChangeConfiguration", {"status": "Accepted"})
    [result] = world.results()
    assert (result.status, result.response) == ("accepted", {"status": "Accepted"})

    station = await world.station()
    assert stations.check_password(NEW_KEY, station["password_hash"])
    assert station["previous_password_hash"] == old_hash  # the old key works a while
    command = await world.db["commands"].find_one({"_id": "c1"})
    assert command is not None
    assert command["payload"] == {"key": "AuthorizationKey", "value": "********"}
    assert command["new_key_hash"] == station["password_hash"]
    assert command["sender"] == "ops"
    assert station["previous_valid_until"].replace(tzinfo=None) == (
        command["updated_at"] + timedelta(seconds=300)).replace(tzinfo=None)
    [event] = await world.events()
    assert (event["type"], event["source"]) == ("ReconfigurationOfSecurityParameters", "csms")
    assert "AuthorizationKey changed by command c1 from ops" in event["tech_info"]
    snapshot = await world.db["station_configuration"].find_one({"_id": "CP-1"})
    assert snapshot is not None and snapshot["keys"] == [
        {"key": "AuthorizationKey", "value": "********", "readonly": False,
         "reboot_required": False}]

    # Nowhere but in the call to the charger: not in the database, on the bus, in the logs,
    # nor in what `gridlink commands list` prints.
    assert NEW_KEY not in await world.everything_stored()
    carrying = [m for m in world.bus.published if NEW_KEY.encode() in m.body]
    assert [(m.exchange, m.routing_key) for m in carrying] == [
        (world.runtime.topology.stations, "CP-1")]
    assert [r for r in caplog.records if NEW_KEY in str(vars(r))] == []
    rows = await queries.list_commands(world.db, "CP-1", 10)
    assert rows[0]["sender"] == "ops" and NEW_KEY not in json.dumps(rows)


async def test_after_reboot_required_the_old_key_works_until_the_reboot(world: World) -> None:
    await world.change("AuthorizationKey", NEW_KEY)
    await world.answer("c1", "ChangeConfiguration", {"status": "RebootRequired"})
    station = await world.station()
    assert stations.check_password(NEW_KEY, station["password_hash"])
    command = await world.db["commands"].find_one({"_id": "c1"})
    assert command is not None
    assert station["previous_valid_until"].replace(tzinfo=None) == (
        command["updated_at"] + timedelta(days=30)).replace(tzinfo=None)


@pytest.mark.parametrize("answer", ["Rejected", "NotSupported"])
async def test_a_declined_key_changes_nothing(world: World, answer: str) -> None:
    before = await world.station()
    await world.change("AuthorizationKey", NEW_KEY)
    await world.answer("c1", "ChangeConfiguration", {"status": answer})
    assert [r.status for r in world.results()] == ["rejected"]
    assert await world.station() == before  # A01.FR.04: the old key stays, alone
    assert await world.events() == []
    assert NEW_KEY not in await world.everything_stored()


async def test_an_answer_is_applied_once_and_a_stale_one_never_brings_a_key_back(
        world: World) -> None:
    second = "a-second-key-0123456789"
    await world.change("AuthorizationKey", NEW_KEY)
    await world.answer("c1", "ChangeConfiguration", {"status": "Accepted"})
    await world.answer("c1", "ChangeConfiguration", {"status": "Accepted"}, redelivered=True)
    first = await world.station()
    assert stations.check_password(NEW_KEY, first["password_hash"])
    await world.change("AuthorizationKey", second, command_id="c2")
    await world.answer("c2", "ChangeConfiguration", {"status": "Accepted"})
    # c1's answer once more, after c2 (a redelivery that waited): nothing changes.
    await world.answer("c1", "ChangeConfiguration", {"status": "Accepted"}, redelivered=True)
    station = await world.station()
    assert stations.check_password(second, station["password_hash"])
    assert station["previous_password_hash"] == first["password_hash"]
    assert len(await world.events()) == 2  # one per command
    assert [r.command_id for r in world.results()] == ["c1", "c1", "c2", "c1"]


async def test_a_redelivered_request_sends_the_key_from_the_message(world: World) -> None:
    send = world.lifecycle.send

    async def process_dies(document: dict[str, Any], payload: Any = None) -> None:
        world.lifecycle.send = send  # type: ignore[method-assign]
        raise RuntimeError("the process died between recording and sending")

    world.lifecycle.send = process_dies  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await world.change("AuthorizationKey", NEW_KEY)
    command = await world.db["commands"].find_one({"_id": "c1"})
    assert command is not None and command["status"] == "queued" and world.sent() == []
    await world.request("ChangeConfiguration", {"key": "AuthorizationKey", "value": NEW_KEY},
                        redelivered=True)
    [sent] = world.sent()
    assert sent.payload == {"key": "AuthorizationKey", "value": NEW_KEY}
    await world.answer("c1", "ChangeConfiguration", {"status": "Accepted"})
    assert stations.check_password(NEW_KEY, (await world.station())["password_hash"])
    assert NEW_KEY not in await world.everything_stored()


@pytest.mark.parametrize(("value", "options", "code"), [
    ("too-short", {}, "PropertyConstraintViolation"),
    ("has-a-tab\there-0123456789", {}, "PropertyConstraintViolation"),
    (NEW_KEY, {"queue_if_offline": True}, "NotQueueable"),
])
async def test_a_bad_key_request_is_refused_before_anything_is_stored(
        world: World, value: str, options: dict[str, Any], code: str) -> None:
    await world.request("ChangeConfiguration", {"key": "AuthorizationKey", "value": value},
                        **options)
    [result] = world.results()
    assert (result.status, result.error_code) == ("invalid", code)
    assert value not in (result.error_description or "")
    assert world.sent() == []
    assert await world.db["commands"].count_documents({}) == 0


async def test_a_key_a_charger_should_not_return_is_not_kept(world: World) -> None:
    await world.request("GetConfiguration", {})
    await world.answer("c1", "GetConfiguration", {"configurationKey": [
        {"key": "AuthorizationKey", "readonly": False, "value": NEW_KEY},
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"}]})
    [result] = world.results()
    assert result.response == {"configurationKey": [
        {"key": "AuthorizationKey", "readonly": False, "value": "********"},
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"}]}
    snapshot = await world.db["station_configuration"].find_one({"_id": "CP-1"})
    assert snapshot is not None
    assert [k["value"] for k in snapshot["keys"]] == ["********", "300"]
    assert NEW_KEY not in await world.everything_stored()
    assert not [m for m in world.bus.published if NEW_KEY.encode() in m.body]


# --- SecurityProfile ----------------------------------------------------------------------


async def test_an_accepted_profile_upgrade_is_scheduled_once() -> None:
    world = await World(tls_trusted_proxies=["10.0.0.0/8"]).setup()
    await world.change("SecurityProfile", "2")
    assert [c.payload for c in world.sent()] == [{"key": "SecurityProfile", "value": "2"}]
    await world.answer("c1", "ChangeConfiguration", {"status": "Accepted"})
    await world.answer("c1", "ChangeConfiguration", {"status": "Accepted"}, redelivered=True)
    station = await world.station()
    assert (station["security_profile"], station["next_profile"]) == (1, 2)
    [event] = await world.events()
    assert "SecurityProfile 2 scheduled by command c1 from ops" in event["tech_info"]


async def test_a_rejected_profile_upgrade_changes_nothing() -> None:
    world = await World(tls_trusted_proxies=["10.0.0.0/8"]).setup()
    await world.change("SecurityProfile", "3")
    await world.answer("c1", "ChangeConfiguration", {"status": "Rejected"})
    assert "next_profile" not in await world.station()
    assert await world.events() == []


@pytest.mark.parametrize(("settings", "password", "profile", "value", "said"), [
    ({}, OLD_KEY, 1, "1", "lower or the same"),
    ({}, OLD_KEY, 2, "1", "lower or the same"),
    ({}, OLD_KEY, 1, "4", "an integer from 0 to 3"),
    ({}, OLD_KEY, 1, "two", "an integer from 0 to 3"),
    ({}, None, 0, "1", "set an AuthorizationKey first"),
    ({"tls_trusted_proxies": ["10.0.0.1"]}, None, 0, "2", "set an AuthorizationKey first"),
    ({}, OLD_KEY, 1, "2", "needs TLS"),
    ({"tls_cert_file": "/c.pem", "tls_key_file": "/k.pem"}, OLD_KEY, 2, "3",
     "client certificates"),
])
async def test_a_profile_change_gridlink_cannot_follow_is_refused(
        settings: dict[str, Any], password: str | None, profile: int, value: str,
        said: str) -> None:
    world = await World(**settings).setup(password=password, profile=profile)
    await world.change("securityprofile", value)
    [result] = world.results()
    assert (result.status, result.error_code) == ("invalid", "PropertyConstraintViolation")
    assert said in (result.error_description or "")
    assert world.sent() == []


async def test_profile_3_needs_no_password_but_client_certificates() -> None:
    world = await World(tls_cert_file="/c.pem", tls_key_file="/k.pem",
                        tls_client_ca_file="/ca.pem").setup(password=None, profile=0)
    await world.change("SecurityProfile", "3")
    await world.answer("c1", "ChangeConfiguration", {"status": "Accepted"})
    assert (await world.station())["next_profile"] == 3
