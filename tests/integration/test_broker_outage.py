"""A RabbitMQ restart loses nothing: gateways close chargers (1013) and report not-ready,
every process reconnects by itself, and charging continues where it stopped.

The broker is a private RabbitMQ node (tests/rabbitmq_node.py) under a stack of this test's
own, so stopping it disturbs no other test and no other run on the machine.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.charger import Charger, now
from tests.processes import Stack, answers, wait_for
from tests.rabbitmq_node import RabbitNode

pytestmark = pytest.mark.integration

TRY_AGAIN_LATER = 1013


@pytest.fixture
def rabbit_node(tmp_path: Path) -> Iterator[RabbitNode]:
    """A RabbitMQ node of this test's own, shut down at the end whatever happens."""
    with RabbitNode(tmp_path / "rabbitmq") as node:
        yield node


async def test_broker_restart_loses_nothing(rabbit_node: RabbitNode, mongo_url: str,
                                            tmp_path: Path) -> None:
    namespace = f"glbroker-{uuid.uuid4().hex[:8]}"
    logs = tmp_path / "logs"
    logs.mkdir()
    stack = Stack(amqp_url=rabbit_node.amqp_url, mongo_url=mongo_url, namespace=namespace,
                  database=namespace.replace("-", "_"), logs=logs)
    try:
        await stack.start_services()
        gateway = await stack.start_gateway()
        station, tag = "BROKER-1", "TAG-BROKER"
        for command in (("stations", "add", station), ("tags", "add", tag)):
            code, _, err = await stack.cli(*command)
            assert code == 0, err
        readyz = f"http://127.0.0.1:{gateway.port}/readyz"
        async with Charger.connect(stack.gateway_url, station) as charger:
            await charger.boot()
            start = await charger.result("StartTransaction", {
                "connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": now()})
            stop = {"transactionId": start["transactionId"], "meterStop": 750,
                    "timestamp": now(), "reason": "Local"}
            await asyncio.to_thread(rabbit_node.stop_app)
            try:
                await asyncio.wait_for(charger.ws.wait_closed(), 30)
                assert charger.ws.close_code == TRY_AGAIN_LATER
                assert charger.unsolicited.empty()  # no CALLERROR was sent
                await wait_for(lambda: answers(readyz, 503), what="gateway not ready")
            finally:
                await asyncio.to_thread(rabbit_node.start_app)
        for process in stack.processes:  # each reconnects by itself (wait_ready: or exited)
            await stack.wait_ready(process, timeout=90)
        async with Charger.connect(stack.gateway_url, station) as charger:
            assert await charger.result("StopTransaction", stop) == {}
            cli = await asyncio.create_subprocess_exec(
                *stack.cli_command("command", station, "ClearCache"), env=stack.env(),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                frame = await charger.next_csms_call(timeout=30)
                assert frame[2] == "ClearCache"
                await charger.answer([3, frame[1], {"status": "Accepted"}])
                out, err = await asyncio.wait_for(cli.communicate(), 30)
            finally:
                if cli.returncode is None:
                    cli.kill()
                    await cli.wait()
            assert json.loads(out) == {"status": "Accepted"}, err
        doc = await stack.db().transactions.find_one({"_id": start["transactionId"]})
        assert doc is not None and doc["energy_wh"] == 750
    finally:
        await stack.stop()
