"""CSMS-initiated calls through the commands service and `gridlink command`."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest
from aio_pika.exceptions import AMQPError

from gridlink.client import amqp_user
from services import stations
from services.envelope import CommandRequest, CommandResult
from tests.charger import Charger
from tests.helpers import add_station, new_id
from tests.processes import Stack

pytestmark = pytest.mark.integration


async def test_command_round_trip(stack: Stack) -> None:
    station = new_id("CMD")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("command", station, "Reset", '{"type": "Soft"}')
        frame = await charger.next_csms_call(timeout=20)
        assert frame[0] == 2 and frame[2] == "Reset" and frame[3] == {"type": "Soft"}
        await charger.answer([3, frame[1], {"status": "Accepted"}])
        out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    assert json.loads(out) == {"status": "Accepted"}
    stored = await stack.db().commands.find_one({"station": station})
    assert stored["status"] == "accepted"
    assert [h["status"] for h in stored["history"]] == ["queued", "sent", "accepted"]
    assert stored["response"] == {"status": "Accepted"}
    assert stored["sender"] == amqp_user(stack.amqp_url)  # the CLI's login, checked by RabbitMQ


async def test_rabbitmq_refuses_a_request_whose_user_id_is_not_its_login(stack: Stack) -> None:
    """Why ``sender`` can be believed: a user_id that is not the connection's user closes
    the channel, and the request goes nowhere."""
    station = new_id("FORGE")
    await add_station(stack, station)
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"{stack.namespace}.commands.in")
        request = CommandRequest(command_id=f"forged-{uuid.uuid4()}", station=station,
                                 action="ClearCache")
        with pytest.raises(AMQPError):
            await exchange.publish(aio_pika.Message(request.to_bytes(),
                                                    user_id="somebody-else"),
                                   routing_key="command")
            await channel.get_exchange(f"{stack.namespace}.commands.in")  # the close arrives
    code, out, err = await stack.cli("commands", "list", "--station", station, "--json")
    assert code == 0 and json.loads(out) == [], err


async def test_a_new_authorization_key_reaches_the_charger_and_nothing_else(
        stack: Stack) -> None:
    """A01 end to end: the key in the ChangeConfiguration frame, and in no document, no
    result, no event and no log line of any process."""
    station = new_id("KEY")
    key = uuid.uuid4().hex + "0123abcd"
    await add_station(stack, station)  # profile 0: the key is its first (A05's prerequisite)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("command", station, "ChangeConfiguration",
                                        json.dumps({"key": "AuthorizationKey", "value": key}))
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2:] == ["ChangeConfiguration", {"key": "AuthorizationKey", "value": key}]
        await charger.answer([3, frame[1], {"status": "Accepted"}])
        out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    assert json.loads(out) == {"status": "Accepted"}
    registered = await stack.db().stations.find_one({"_id": station})
    assert stations.check_password(key, registered["password_hash"])
    code, listed, _ = await stack.cli("commands", "list", "--station", station, "--json")
    assert code == 0 and json.loads(listed)[0]["sender"] == amqp_user(stack.amqp_url)
    db = stack.db()
    for name in await db.list_collection_names():
        async for document in db[name].find({}):
            assert key not in json.dumps(document, default=str), name
    logs = sorted(stack.logs.glob("*.log"))
    assert {log.name.split("-")[0] for log in logs} >= {"gateway", "commands", "authz"}
    for log in logs:
        assert key not in log.read_text(errors="replace"), log.name
    assert key not in listed + out.decode() + err.decode()


async def test_command_answered_with_callerror(stack: Stack) -> None:
    station = new_id("CMD")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("command", station, "ClearCache")
        frame = await charger.next_csms_call(timeout=20)
        await charger.answer([4, frame[1], "NotSupported", "no cache here", {}])
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert err.decode().strip() == "gridlink: CALLERROR: NotSupported no cache here"


async def test_command_answered_with_garbage_is_a_callerror(stack: Stack) -> None:
    station = new_id("CMD")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("command", station, "UnlockConnector", '{"connectorId": 1}')
        frame = await charger.next_csms_call(timeout=20)
        await charger.answer([3, frame[1], {"status": "Maybe"}])
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "CALLERROR: PropertyConstraintViolation" in err.decode()


async def test_command_to_offline_station(stack: Stack) -> None:
    station = new_id("OFF")
    await add_station(stack, station)
    code, out, err = await stack.cli("command", station, "Reset", '{"type": "Hard"}')
    assert code == 1 and out == ""
    assert err.strip().startswith("gridlink: station offline")
    assert len(err.strip().splitlines()) == 1
    stored = await stack.db().commands.find_one({"station": station})
    assert stored["status"] == "offline"


@pytest.mark.parametrize(("args", "message"), [
    (["Reset", '{"type": "Sideways"}'], "invalid command: PropertyConstraintViolation"),
    (["Reset", "{}"], "invalid command: OccurenceConstraintViolation"),
    (["Teleport", "{}"], "invalid command: NotImplemented"),
    (["BootNotification", '{"chargePointVendor": "a", "chargePointModel": "b"}'],
     "invalid command: NotSupported"),
    (["Reset", "{not json"], "JSON_PAYLOAD is not valid JSON"),
])
async def test_invalid_command_never_reaches_the_charger(stack: Stack, args: list[str],
                                                         message: str) -> None:
    station = new_id("INV")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        code, out, err = await stack.cli("command", station, *args)
        assert code != 0 and out == ""
        assert message in err and len(err.strip().splitlines()) == 1
        # The charger heard nothing.
        assert "currentTime" in await charger.result("Heartbeat", {})
        assert charger.incoming.empty()
    assert await stack.db().commands.count_documents({"station": station}) == 0


async def test_command_for_unknown_station_is_invalid(stack: Stack) -> None:
    code, _, err = await stack.cli("command", f"ghost-{uuid.uuid4().hex}", "ClearCache")
    assert code == 1 and "unknown station" in err


async def test_command_timeout(stack: Stack) -> None:
    station = new_id("SLOW")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        process = await stack.start_cli("command", station, "ClearCache", "{}", "--timeout", "1")
        frame = await charger.next_csms_call(timeout=20)
        assert frame[2] == "ClearCache"  # received, never answered
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert err.decode().startswith("gridlink: timeout")
    stored = await stack.db().commands.find_one({"station": station})
    assert stored["status"] == "timeout"


async def test_one_outstanding_call_at_a_time_in_order(stack: Stack) -> None:
    station = new_id("SEQ")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        first = await stack.start_cli("command", station, "ChangeConfiguration",
                                  '{"key": "A", "value": "1"}')
        one = await charger.next_csms_call(timeout=20)
        second = await stack.start_cli("command", station, "ChangeConfiguration",
                                   '{"key": "B", "value": "2"}')
        # The second waits while the first is outstanding: prove it by answering a
        # charger call meanwhile and seeing no new CSMS call arrive.
        for _ in range(3):
            await charger.result("Heartbeat", {})
        assert charger.incoming.empty()
        await charger.answer([3, one[1], {"status": "Accepted"}])
        two = await charger.next_csms_call(timeout=20)
        assert (one[3]["key"], two[3]["key"]) == ("A", "B")
        await charger.answer([3, two[1], {"status": "RebootRequired"}])
        assert (await asyncio.wait_for(first.wait(), 30)) == 0
        assert (await asyncio.wait_for(second.wait(), 30)) == 0


async def test_same_command_id_runs_once_for_two_requesters(stack: Stack) -> None:
    """The contract for other services: publish to {ns}.commands.in, results to reply_to."""
    station = new_id("IDEM")
    await add_station(stack, station)
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection, Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        channel = await connection.channel()
        results: asyncio.Queue[CommandResult] = asyncio.Queue()
        queues = []

        async def on_result(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await results.put(CommandResult.model_validate_json(message.body))

        for _ in range(2):
            queue = await channel.declare_queue(exclusive=True)
            await queue.consume(on_result, no_ack=True)
            queues.append(queue)
        exchange = await channel.get_exchange(f"{stack.namespace}.commands.in")
        request = CommandRequest(command_id=f"op-{uuid.uuid4()}", station=station,
                                 action="UnlockConnector", payload={"connectorId": 1})
        for queue in queues:
            await exchange.publish(aio_pika.Message(request.to_bytes(), reply_to=queue.name),
                                   routing_key="command")
        frame = await charger.next_csms_call(timeout=20)
        await charger.answer([3, frame[1], {"status": "Unlocked"}])
        got = [await asyncio.wait_for(results.get(), 20) for _ in range(2)]
        assert {r.status for r in got} == {"accepted"}
        assert {r.command_id for r in got} == {request.command_id}
        # The charger saw it once.
        assert "currentTime" in await charger.result("Heartbeat", {})
        assert charger.incoming.empty()


async def test_every_transition_is_published_as_an_event(stack: Stack) -> None:
    station = new_id("EVT")
    await add_station(stack, station)
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection, Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        channel = await connection.channel()
        events = await channel.declare_queue(exclusive=True)
        await events.bind(f"{stack.namespace}.events", routing_key="command.*")
        seen: asyncio.Queue[tuple[str, CommandResult]] = asyncio.Queue()

        async def on_event(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            result = CommandResult.model_validate_json(message.body)
            if result.station == station:
                await seen.put((message.routing_key or "", result))

        await events.consume(on_event, no_ack=True)
        process = await stack.start_cli("command", station, "ClearCache")
        frame = await charger.next_csms_call(timeout=20)
        await charger.answer([3, frame[1], {"status": "Accepted"}])
        assert (await asyncio.wait_for(process.wait(), 30)) == 0
        keys = [(await asyncio.wait_for(seen.get(), 20))[0] for _ in range(3)]
    assert keys == ["command.queued", "command.sent", "command.accepted"]
