"""A RabbitMQ restart loses nothing: gateways close chargers (1013) and report not-ready,
every process reconnects by itself, and charging continues where it stopped.

Runs last (file name) because it restarts the local broker under the whole session's stack.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid

import pytest

from tests.charger import Charger, now
from tests.integration.test_core_messages import add_station, new_id
from tests.processes import Stack, http_status, wait_for

pytestmark = pytest.mark.integration


def rabbitmqctl(*args: str) -> None:
    command = shutil.which("rabbitmqctl")
    assert command is not None, "rabbitmqctl not found: the test needs the local broker"
    subprocess.run([command, *args], check=True, capture_output=True, timeout=120)


async def test_broker_restart_loses_nothing(stack: Stack) -> None:
    station = new_id("BROKER")
    tag = f"T{uuid.uuid4().hex[:8]}"
    await add_station(stack, station)
    await stack.cli("tags", "add", tag)
    readyz = f"http://127.0.0.1:{stack.gateways[0].probe_port}/readyz"
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        start = await charger.result("StartTransaction", {
            "connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": now()})
        stop = {"transactionId": start["transactionId"], "meterStop": 750,
                "timestamp": now(), "reason": "Local"}
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, rabbitmqctl, "stop_app")
        try:
            await asyncio.wait_for(charger.ws.wait_closed(), 30)
            assert charger.ws.close_code == 1013
            assert charger.unsolicited.empty()  # no CALLERROR was sent
            await wait_for(lambda: http_status(readyz) == 503, what="gateway not ready")
        finally:
            await loop.run_in_executor(None, rabbitmqctl, "start_app")
    for process in stack.processes:
        if process.popen.poll() is None:
            await stack.wait_ready(process, timeout=90)
    async with Charger.connect(stack.gateway_url, station) as charger:
        assert await charger.result("StopTransaction", stop) == {}
        process = await asyncio.create_subprocess_exec(
            *stack.cli_command("command", station, "ClearCache"), env=stack.env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        frame = await charger.next_csms_call(timeout=30)
        await charger.answer([3, frame[1], {"status": "Accepted"}])
        out, _ = await asyncio.wait_for(process.communicate(), 30)
        assert json.loads(out) == {"status": "Accepted"}
    doc = await stack.db().transactions.find_one({"_id": start["transactionId"]})
    assert doc["energy_wh"] == 750
