"""Newest connection wins (on one gateway and across gateway processes), probes, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from tests.charger import Charger
from tests.helpers import add_station, new_id
from tests.processes import Stack, http_status, http_text

pytestmark = pytest.mark.integration


async def closed_code(charger: Charger) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(charger.ws.wait_closed(), 15)
        await charger.ws.recv()
    received = closed.value.rcvd
    assert received is not None
    return received.code


async def test_newest_connection_wins_on_one_gateway(stack: Stack) -> None:
    station = new_id("TWICE")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as old:
        await old.boot()
        async with Charger.connect(stack.gateway_url, station) as new:
            assert await closed_code(old) == 1000
            assert (await new.boot())["status"] == "Accepted"


async def test_newest_connection_wins_across_gateways(stack: Stack) -> None:
    second = await stack.start_gateway()
    try:
        station = new_id("MOVE")
        await add_station(stack, station)
        other_url = f"ws://127.0.0.1:{second.port}/ocpp"
        async with Charger.connect(stack.gateway_url, station) as old:
            await old.boot()
            async with Charger.connect(other_url, station) as new:
                assert await closed_code(old) == 1000
                # Replies and commands for the station now reach the new pod only.
                assert (await new.boot())["status"] == "Accepted"
                process = await stack.start_cli("command", station, "ClearCache")
                frame = await new.next_csms_call(timeout=20)
                await new.answer([3, frame[1], {"status": "Accepted"}])
                out, err = await asyncio.wait_for(process.communicate(), 30)
                assert process.returncode == 0, err
                assert json.loads(out) == {"status": "Accepted"}
    finally:
        stack.gateways.remove(second)
        assert await stack.stop_process(second) == 0




async def test_probes_and_metrics(stack: Stack) -> None:
    port = stack.gateways[0].port
    assert await http_status(f"http://127.0.0.1:{port}/healthz") == 200
    assert await http_status(f"http://127.0.0.1:{port}/readyz") == 200
    assert await http_status(f"http://127.0.0.1:{port}/metrics") == 404  # public port
    text = await http_text(stack.gateways[0].url("/metrics", stack.gateways[0].metrics_port))
    assert "gridlink_gateway_connections_open" in text
    assert 'gridlink_gateway_calls_total{action="BootNotification",outcome="ok"}' in text
    for process in stack.processes:
        if process.name != "gateway" and process.popen.poll() is None:
            url = f"http://127.0.0.1:{process.port}"
            assert await http_status(url + "/healthz") == 200
            body = await http_text(url + "/metrics")
            assert "gridlink_service_handler_seconds" in body
            # Labels never carry a station id.
            labels = {name for family in text_string_to_metric_families(body)
                      for sample in family.samples for name in sample.labels}
            assert not any("station" in name for name in labels), labels


async def test_metrics_on_a_separate_port_stay_off_the_public_one(stack: Stack) -> None:
    from tests.processes import free_port

    metrics_port = free_port()
    gateway = await stack.start_gateway(gateway_metrics_port=metrics_port)
    try:
        public = f"http://127.0.0.1:{gateway.port}"
        private = f"http://127.0.0.1:{metrics_port}"
        assert await http_status(private + "/metrics") == 200
        assert await http_status(private + "/readyz") == 200
        assert await http_status(public + "/metrics") == 404
        assert await http_status(public + "/readyz") == 200
    finally:
        stack.gateways.remove(gateway)
        assert await stack.stop_process(gateway) == 0
async def test_one_station_connecting_to_two_gateways_at_once_keeps_one_session(
        stack: Stack) -> None:
    """Regression (found by the duplicate-identity fault scenario): each gateway published
    its takeover before binding the station, so two connections attaching at once could
    miss each other's takeover and both stay open, each receiving the station's calls."""
    second = await stack.start_gateway()
    try:
        station = new_id("TWIN")
        await add_station(stack, station)
        urls = [stack.gateway_url, f"ws://127.0.0.1:{second.port}/ocpp"]
        for _ in range(6):
            async with contextlib.AsyncExitStack() as exits:
                twins = await asyncio.gather(*(exits.enter_async_context(
                    Charger.connect(url, station)) for url in urls))
                # However the race goes, the gateways close all but (at most) one of them.
                async with asyncio.timeout(15):
                    while sum(1 for t in twins if t.ws.close_code is None) > 1:
                        await asyncio.wait([asyncio.create_task(t.ws.wait_closed())
                                            for t in twins if t.ws.close_code is None],
                                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        stack.gateways.remove(second)
        assert await stack.stop_process(second) == 0
