"""Transactions across real processes: a tag's concurrent-session limit holds with two
transactions replicas taking StartTransactions at once, and a connector's unfinished
transaction is superseded, not a reason to refuse the driver."""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import AsyncExitStack

import pytest

from tests.charger import Charger, now
from tests.helpers import add_station, fresh_tag, new_id, new_tag
from tests.processes import Process, Stack, http_text

pytestmark = pytest.mark.integration

STATIONS = 16


async def starts_handled(process: Process) -> float:
    """StartTransactions this transactions process answered (its /metrics)."""
    text = await http_text(process.url("/metrics", process.metrics_port))
    wanted = {'action="StartTransaction"', 'component="transactions"', 'outcome="ok"'}
    for found in re.finditer(r"^gridlink_service_calls_total\{(.*)\} (\S+)$", text,
                             re.MULTILINE):
        if set(found.group(1).split(",")) == wanted:
            return float(found.group(2))
    return 0.0


@pytest.mark.parametrize("limit", [1, 3])
async def test_a_tags_limit_holds_with_two_replicas_starting_at_once(stack: Stack,
                                                                    limit: int) -> None:
    [first] = [p for p in stack.processes if p.name == "transactions"][:1]
    second = stack.spawn("transactions")
    await stack.wait_ready(second)
    try:
        tag = new_tag("F")
        code, _, err = await stack.cli("tags", "add", tag, "--max-concurrent", str(limit))
        assert code == 0, err
        stations = [new_id("RACE") for _ in range(STATIONS)]
        for station in stations:
            await add_station(stack, station)
        handled_before = await starts_handled(first)
        async with AsyncExitStack() as exits:
            chargers = [await exits.enter_async_context(
                Charger.connect(stack.gateway_url, station)) for station in stations]
            await asyncio.gather(*(charger.boot() for charger in chargers))
            timestamp = now()
            answers = await asyncio.gather(*(charger.result("StartTransaction", {
                "connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": timestamp})
                for charger in chargers))
            statuses = [answer["idTagInfo"]["status"] for answer in answers]
            assert sorted(statuses) == sorted(["Accepted"] * limit
                                              + ["ConcurrentTx"] * (STATIONS - limit))
            db = stack.db()
            assert await db.tag_sessions.count_documents({"tag": tag}) == limit
            # Both replicas took some of them.
            assert await starts_handled(second) > 0
            assert await starts_handled(first) > handled_before

            # A stop frees its slot, once, however often it is delivered.
            index = statuses.index("Accepted")
            stop = {"transactionId": answers[index]["transactionId"], "meterStop": 10,
                    "timestamp": now(), "reason": "Local"}
            assert await chargers[index].result("StopTransaction", stop) == {}
            assert await chargers[index].result("StopTransaction", stop) == {}
            assert await db.tag_sessions.count_documents({"tag": tag}) == limit - 1
            refused = statuses.index("ConcurrentTx")
            again = await chargers[refused].result("StartTransaction", {
                "connectorId": 1, "idTag": tag, "meterStart": 5, "timestamp": now()})
            assert again["idTagInfo"]["status"] == "Accepted"
            later = await chargers[index].result("StartTransaction", {
                "connectorId": 2, "idTag": tag, "meterStart": 10, "timestamp": now()})
            assert later["idTagInfo"]["status"] == "ConcurrentTx"  # full again
            assert await db.tag_sessions.count_documents({"tag": tag}) == limit
    finally:
        assert await stack.stop_process(second) == 0


async def test_a_connector_whose_stop_was_lost_takes_a_new_start(stack: Stack) -> None:
    station = new_id()
    await add_station(stack, station)
    tag = await fresh_tag(stack)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        lost = await charger.result("StartTransaction", {
            "connectorId": 1, "idTag": tag, "meterStart": 100, "timestamp": now()})
        assert lost["idTagInfo"]["status"] == "Accepted"
        await charger.result("MeterValues", {
            "connectorId": 1, "transactionId": lost["transactionId"], "meterValue": [{
                "timestamp": now(), "sampledValue": [{"value": "NaN"}, {"value": "400"}]}]})
    # Power loss: the charger comes back without its StopTransaction and starts again.
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        fresh = await charger.result("StartTransaction", {
            "connectorId": 1, "idTag": tag, "meterStart": 400, "timestamp": now()})
        assert fresh["idTagInfo"]["status"] == "Accepted"
        elsewhere = await charger.result("StartTransaction", {
            "connectorId": 2, "idTag": tag, "meterStart": 0, "timestamp": now()})
        assert elsewhere["idTagInfo"]["status"] == "ConcurrentTx"
    code, out, err = await stack.cli("transactions", "list", "--station", station, "--json")
    assert code == 0, err
    rows = {row["transactionId"]: row for row in json.loads(out)}
    assert (rows[lost["transactionId"]]["state"], rows[lost["transactionId"]]["supersededBy"],
            rows[lost["transactionId"]]["energyWh"]) == ("superseded", fresh["transactionId"],
                                                         300)
    assert rows[lost["transactionId"]]["flags"] == ["superseded", "meter:not_finite"]
    assert rows[fresh["transactionId"]]["state"] == "active"
    assert rows[elsewhere["transactionId"]]["status"] == "ConcurrentTx"
    code, out, err = await stack.cli("transactions", "list", "--station", station)
    assert code == 0, err
    assert "superseded,meter:not_finite" in out and "state" in out.splitlines()[0]
