"""Every component runs as its own broker user, allowed only what it needs: on a RabbitMQ node
with exactly the deployment's users and permissions (deploy/rabbitmq/definitions.json, which
docker compose and the dev overlay load), a charger boots, charges, receives a command and is
taken over across gateway pods; and each user is refused what it must not do: the gateway
publishing to ``{ns}.stations`` or reading a service queue, a service reading a gateway's
queue, the CLI doing anything but sending commands and reading its replies, the API's webhook
worker binding its queue to anything but the public events.

The node is private (tests/rabbitmq_node.py): users and permissions never touch the machine's
shared broker. Each component's URL is the one docker compose gives it, pointed at the node.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import aiormq
import httpx
import pytest
from aio_pika.abc import AbstractChannel

from api import keys
from api.webhooks.repository import WebhookRepository
from api.webhooks.secret_box import SecretBox
from api.webhooks.subscriptions import SubscriptionCreate, Subscriptions
from api.webhooks.worker import WebhookWorker
from gateway.connection import CLOSE_REPLACED
from gridlink import components
from services.bus import Bus
from services.envelope import CsmsCall, Takeover
from services.settings import Settings
from services.topology import DEFAULT_EXCHANGE, HEALTH_KEYS, Topology
from tests.charger import Charger, now
from tests.deploy import sources
from tests.processes import Process, Stack, finish, free_port, wait_for
from tests.rabbitmq_node import RabbitNode

pytestmark = pytest.mark.integration

DEFINITIONS = sources.DEPLOY / "rabbitmq" / "definitions.json"
# The docker compose service whose URL each user logs in with.
COMPOSE_SERVICE = {"gateway": "gateway-1", "authz": "authz", "transactions": "transactions",
                   "commands": "commands", "cli": "cli", "api": "api"}
NAMESPACE = "gridlink"  # the definitions' regexes are for the default namespace
T = Topology(NAMESPACE)


def node_url(node: RabbitNode, component: str) -> str:
    """The component's compose URL (user, password, vhost), at the private node."""
    parts = urlsplit(sources.compose_env(COMPOSE_SERVICE[component])["GRIDLINK_AMQP_URL"])
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{node.amqp_port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass
class Deployment:
    node: RabbitNode
    stack: Stack
    urls: dict[str, str]
    gateways: list[Process]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    with RabbitNode(tmp_path_factory.mktemp("rabbitmq")) as node:
        node.ctl("import_definitions", str(DEFINITIONS))
        yield node


@pytest.fixture(scope="module")
async def deployment(node: RabbitNode, mongo_url: str,
                     tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    """The four components as real processes, each as its own user; the CLI as its own."""
    urls = {component: node_url(node, component) for component in COMPOSE_SERVICE}
    stack = Stack(amqp_url=urls["cli"], mongo_url=mongo_url, namespace=NAMESPACE,
                  database=f"glperm_{uuid.uuid4().hex[:8]}",
                  logs=Path(tmp_path_factory.mktemp("logs")))
    try:
        for name in components.SERVICES:
            await stack.wait_ready(stack.spawn(name, amqp_url=urls[name]))
        gateways = [await stack.start_gateway(amqp_url=urls["gateway"]) for _ in range(2)]
        yield Deployment(node, stack, urls, gateways)
    finally:
        await stack.stop()


# --- what they can do ---------------------------------------------------------------------


async def test_a_charger_boots_charges_takes_commands_and_moves_pods(
        deployment: Deployment) -> None:
    stack, (first, second) = deployment.stack, deployment.gateways
    station, tag = f"PERM-{uuid.uuid4().hex[:6]}", f"T{uuid.uuid4().hex[:8]}"
    for command in (("stations", "add", station), ("tags", "add", tag)):
        code, _, err = await stack.cli(*command)
        assert code == 0, err
    async with Charger.connect(f"ws://127.0.0.1:{first.port}/ocpp", station) as charger:
        assert (await charger.boot())["status"] == "Accepted"  # admission, authz, a reply
        assert await charger.result("Heartbeat", {})  # answered at the edge
        assert (await charger.result("Authorize", {"idTag": tag}))["idTagInfo"][
            "status"] == "Accepted"
        start = await charger.result("StartTransaction", {
            "connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": now()})
        assert await command_answered(stack, charger, station, "ClearCache") == {
            "status": "Accepted"}  # requester -> commands -> gateway -> charger -> requester
        async with Charger.connect(f"ws://127.0.0.1:{second.port}/ocpp", station) as moved:
            # The newer connection, on the other pod, took over through {ns}.takeovers.
            await asyncio.wait_for(charger.ws.wait_closed(), 10)
            assert charger.ws.close_code == CLOSE_REPLACED
            assert await moved.result("StopTransaction", {
                "transactionId": start["transactionId"], "meterStop": 500,
                "timestamp": now(), "reason": "Local"}) == {}
            assert await command_answered(stack, moved, station, "ClearCache") == {
                "status": "Accepted"}
    document = await stack.db().transactions.find_one({"_id": start["transactionId"]})
    assert document is not None and document["energy_wh"] == 500


async def command_answered(stack: Stack, charger: Charger, station: str, action: str
                           ) -> dict[str, Any]:
    """``gridlink command`` (as the CLI's user) answered by the charger: what it prints."""
    cli = await stack.start_cli("command", station, action)
    frame = await charger.next_csms_call(timeout=30)
    assert frame[2] == action
    await charger.answer([3, frame[1], {"status": "Accepted"}])
    code, out, err = await finish(cli, 30)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


# --- what they cannot ---------------------------------------------------------------------

Operation = Callable[[AbstractChannel], Awaitable[Any]]


async def refused(url: str, operation: Operation) -> None:
    """``operation`` on a fresh channel of ``url``'s user fails with ACCESS_REFUSED (403),
    not for another reason (an exclusive queue's RESOURCE_LOCKED, a missing exchange)."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await operation(channel)
            await channel.declare_exchange(T.calls, passive=True)  # the refusal has arrived


async def allowed(url: str, operation: Operation) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        await operation(await connection.channel(publisher_confirms=True))


def publish(exchange: str, key: str, body: bytes = b"{}") -> Operation:
    async def run(channel: AbstractChannel) -> None:
        target = (channel.default_exchange if exchange == DEFAULT_EXCHANGE
                  else await channel.get_exchange(exchange, ensure=False))
        await target.publish(aio_pika.Message(body), routing_key=key)
    return run


def consume(queue: str) -> Operation:
    async def ignore(_: Any) -> None:
        return None

    async def run(channel: AbstractChannel) -> None:
        await (await channel.get_queue(queue, ensure=False)).consume(ignore)
    return run


def bind_own_queue(queue: str, exchange: str, key: str) -> Operation:
    async def run(channel: AbstractChannel) -> None:
        own = await channel.declare_queue(queue, exclusive=True, auto_delete=True)
        await own.bind(exchange, routing_key=key)
    return run


def declare_exchange(name: str, kind: str) -> Operation:
    async def run(channel: AbstractChannel) -> None:
        await channel.declare_exchange(name, aio_pika.ExchangeType(kind), durable=True)
    return run


def declare_queue(name: str) -> Operation:
    async def run(channel: AbstractChannel) -> None:
        await channel.declare_queue(name, exclusive=True, auto_delete=True)
    return run


def delete_exchange(name: str) -> Operation:
    async def run(channel: AbstractChannel) -> None:
        await channel.exchange_delete(name)
    return run


def gateway_queue(deployment: Deployment) -> str:
    return T.gateway_queue(f"gateway-{deployment.gateways[0].port}")


async def test_the_gateway_cannot_reach_stations_services_or_the_topology(
        deployment: Deployment) -> None:
    url = deployment.urls["gateway"]
    command = CsmsCall(command_id="forged", station="ANY", action="Reset",
                       payload={"type": "Hard"}, timeout_s=30).to_bytes()
    await refused(url, publish(T.stations, "ANY", command))  # a CSMS call to any charger
    await refused(url, publish(DEFAULT_EXCHANGE, T.work_queue_name("transactions")))
    await refused(url, publish(T.commands_in, "command"))
    await refused(url, publish(T.events, "transaction.started"))
    for queue in T.all_queues(components.SERVICES):
        await refused(url, consume(queue))
    intruder = T.gateway_queue("intruder")
    await refused(url, bind_own_queue(intruder, T.events, "#"))  # only health reports
    await refused(url, bind_own_queue(intruder, T.calls, "call.*"))
    await refused(url, declare_queue(T.work_queue_name("authz")))
    await refused(url, declare_exchange(T.calls, "topic"))
    await refused(url, delete_exchange(T.stations))
    # What it needs, it may: its own queue, health reports, a station's binding, takeovers.
    await allowed(url, bind_own_queue(intruder, T.events, HEALTH_KEYS))
    await allowed(url, bind_own_queue(intruder, T.stations, "ANY"))
    await allowed(url, publish(T.takeovers, "ANY", Takeover(station="ANY", session="s")
                               .to_bytes()))


async def test_a_gateway_believes_only_takeovers_from_the_takeovers_exchange(
        deployment: Deployment) -> None:
    stack, gateway = deployment.stack, deployment.gateways[0]
    station = f"PERM-{uuid.uuid4().hex[:6]}"
    code, _, err = await stack.cli("stations", "add", station)
    assert code == 0, err
    async with Charger.connect(f"ws://127.0.0.1:{gateway.port}/ocpp", station) as charger:
        await charger.boot()
        forged = CsmsCall(command_id="forged", station=station, action="Reset",
                          payload={"type": "Hard"}, timeout_s=30)
        await allowed(deployment.urls["gateway"], publish(T.takeovers, station,
                                                          forged.to_bytes()))
        with pytest.raises(TimeoutError):
            await charger.next_csms_call(timeout=2)
        assert await command_answered(stack, charger, station, "ClearCache") == {
            "status": "Accepted"}
        assert not charger.ws.close_code


async def test_services_cannot_read_a_gateways_queue_or_speak_for_chargers(
        deployment: Deployment) -> None:
    own = gateway_queue(deployment)
    for service in components.SERVICES:
        url = deployment.urls[service]
        await refused(url, consume(own))  # 403 before the exclusive queue's 405
        await refused(url, publish(T.calls, "call.StartTransaction"))
        await refused(url, publish(T.commands_in, "command"))
        await refused(url, consume(T.gateway_queue("other")))
    await refused(deployment.urls["transactions"], publish(DEFAULT_EXCHANGE, own))
    other = {"authz": "transactions", "transactions": "commands", "commands": "authz"}
    for service, neighbour in other.items():
        await refused(deployment.urls[service], consume(T.work_queue_name(neighbour)))


async def test_the_cli_sends_commands_and_reads_its_replies_only(deployment: Deployment) -> None:
    url = deployment.urls["cli"]
    await refused(url, publish(T.stations, "ANY"))
    await refused(url, publish(T.calls, "call.BootNotification"))
    await refused(url, publish(T.takeovers, "ANY"))
    await refused(url, publish(DEFAULT_EXCHANGE, gateway_queue(deployment)))
    for queue in (*T.all_queues(components.SERVICES), gateway_queue(deployment)):
        await refused(url, consume(queue))
    await refused(url, bind_own_queue(T.requester_queue("x"), T.events, "command.*"))
    await refused(url, declare_queue(T.work_queue_name("commands")))
    await refused(url, declare_queue(T.gateway_queue("fake")))
    await allowed(url, declare_queue(T.requester_queue(uuid.uuid4().hex)))
    await allowed(url, publish(T.commands_in, "command", b"not a command"))


async def test_the_api_user_runs_the_webhook_worker_on_the_public_events_only(
        deployment: Deployment) -> None:
    """As gridlink-api, the webhook worker declares, binds and consumes {ns}.webhooks, and
    a charger's connection reaches it (gateway fact -> authz -> {ns}.events); the user can
    bind that queue to nothing but the public events, nor read GridLink's other queues."""
    stack, url = deployment.stack, deployment.urls["api"]
    settings = Settings(amqp_url=url, mongo_url=stack.mongo_url, mongo_db=stack.database,
                        namespace=NAMESPACE, webhook_dev_key=True,
                        webhook_allow_private_urls=True)
    bus = Bus(url, T, name="webhooks-permissions", component="api")
    await bus.connect()
    box = SecretBox.from_settings(settings)
    worker = WebhookWorker(settings, stack.db(), bus, box)
    await worker.start()
    try:
        view, _ = await Subscriptions(WebhookRepository(stack.db()), box, settings,
                                      bind=worker.want).create(
            SubscriptionCreate(url="http://127.0.0.1:9/", events=["station.connected"]))
        station = f"PERM-{uuid.uuid4().hex[:6]}"
        code, _, err = await stack.cli("stations", "add", station)
        assert code == 0, err
        gateway = deployment.gateways[0]
        async with Charger.connect(f"ws://127.0.0.1:{gateway.port}/ocpp", station) as charger:
            await charger.boot()

        async def delivered_to_us() -> bool:
            found = await stack.db().webhook_deliveries.find_one(
                {"subscription": view["id"], "event": "station.connected"})
            return found is not None and json.loads(found["body"])["data"]["station"] == station

        await wait_for(delivered_to_us, what="station.connected in the delivery log")
    finally:
        await worker.stop()
        await bus.close()
    webhooks = T.webhooks_queue().name
    for key in ("#", "certificate.requested", "command.sent", HEALTH_KEYS):
        await refused(url, bind(webhooks, T.events, key))
    await refused(url, publish(T.events, "transaction.started"))
    for queue in T.all_queues(components.SERVICES):
        await refused(url, consume(queue))
    await allowed(url, bind(webhooks, T.events, "transaction.updated"))
    await allowed(url, unbind(webhooks, T.events, "transaction.updated"))  # reconciliation


def bind(queue: str, exchange: str, key: str) -> Operation:
    async def run(channel: AbstractChannel) -> None:
        await (await channel.get_queue(queue, ensure=False)).bind(exchange, routing_key=key)
    return run


def unbind(queue: str, exchange: str, key: str) -> Operation:
    async def run(channel: AbstractChannel) -> None:
        await (await channel.get_queue(queue, ensure=False)).unbind(exchange, routing_key=key)
    return run


async def test_the_cli_says_when_no_service_has_declared_the_exchanges(
        deployment: Deployment) -> None:
    code, out, err = await deployment.stack.cli("command", "CP", "Reset", '{"type": "Soft"}',
                                                namespace="gridlink-undeclared")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "has no exchange gridlink-undeclared.calls" in err, err
    assert "the GridLink services declare them" in err


async def test_the_api_sends_commands_as_its_own_user_and_nothing_more(
        deployment: Deployment) -> None:
    """The HTTP API, logged in as gridlink-api: a command round trip through it, and the
    broker refuses it everything a requester must not do."""
    stack, gateway = deployment.stack, deployment.gateways[0]
    port = free_port()
    api = stack.spawn("api", amqp_url=deployment.urls["api"], api_port=port,
                      api_host="127.0.0.1")
    await stack.wait_ready(api)
    _, key = await keys.create_key(stack.db(), "permissions", ["commands"])
    station = f"PERM-{uuid.uuid4().hex[:6]}"
    code, _, err = await stack.cli("stations", "add", station)
    assert code == 0, err
    async with Charger.connect(f"ws://127.0.0.1:{gateway.port}/ocpp", station) as charger, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                              headers={"Authorization": f"Bearer {key}"}) as http:
        await charger.boot()
        sending = asyncio.create_task(http.post(
            f"/api/v1/stations/{station}/commands/ClearCache?wait=20", json={}))
        frame = await charger.next_csms_call(timeout=30)
        await charger.answer([3, frame[1], {"status": "Accepted"}])
        answer = await sending
    assert answer.status_code == 200, answer.text
    assert answer.json()["sender"] == "gridlink-api"
    url = deployment.urls["api"]
    await refused(url, publish(T.stations, "ANY"))
    await refused(url, publish(T.events, "command.accepted"))
    for queue in (*T.all_queues(components.SERVICES), gateway_queue(deployment)):
        await refused(url, consume(queue))
    await refused(url, declare_queue(T.requester_queue("x")))  # the CLI's, not its own
    await allowed(url, declare_queue(T.requester_queue(uuid.uuid4().hex, "api")))
    await stack.stop_process(api)
