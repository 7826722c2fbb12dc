"""Through a real gateway and services: binary frames, deep nesting, values GridLink could
not store, CALLs sent without waiting, edge Heartbeats, identities (docs/bad-input.md)."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from services.transaction_records import TRANSACTIONS
from tests.charger import Charger, now
from tests.helpers import add_station, add_tag, new_id, new_tag
from tests.processes import Stack, metric_value, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def charger(stack: Stack):  # type: ignore[no-untyped-def]
    station = new_id("FRAME")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        yield charger


async def test_a_binary_frame_closes_the_connection_with_1003(charger: Charger) -> None:
    await charger.ws.send(b'[2, "bin-1", "Heartbeat", {}]')
    await asyncio.wait_for(charger.ws.wait_closed(), 10)
    assert charger.ws.close_code == 1003


@pytest.mark.parametrize(("frame", "answer_id"), [
    ("[" * 200_000, "-1"),
    ('[2, "deep-1", "DataTransfer", {"vendorId": "v", "data": ' + "[" * 2000 + "]" * 2000
     + "}]", "deep-1"),
])
async def test_deep_nesting_is_a_formation_violation_and_the_session_goes_on(
        charger: Charger, frame: str, answer_id: str) -> None:
    if answer_id == "-1":
        await charger.ws.send(frame)
        answer = await asyncio.wait_for(charger.unsolicited.get(), 10)
    else:
        answer = await charger.send_raw(frame, answer_id=answer_id)  # type: ignore[assignment]
    assert answer[:3] == [4, answer_id, "FormationViolation"]
    assert "currentTime" in await charger.result("Heartbeat", {})


async def test_a_meter_start_beyond_64_bits_is_refused_and_nothing_is_stored(
        stack: Stack, charger: Charger) -> None:
    tag = new_tag()
    await add_tag(stack, tag)
    frame = ('[2, "big-1", "StartTransaction", {"connectorId": 1, "idTag": "' + tag
             + '", "meterStart": 9223372036854775808, "timestamp": "' + now() + '"}]')
    answer = await charger.send_raw(frame, answer_id="big-1")
    assert answer is not None and answer[:3] == [4, "big-1", "TypeConstraintViolation"]
    early = json.dumps([2, "old-1", "StartTransaction", {
        "connectorId": 1, "idTag": tag, "meterStart": 0,
        "timestamp": "0001-01-01T00:00:00+01:00"}])
    answer = await charger.send_raw(early, answer_id="old-1")
    assert answer is not None and answer[:3] == [4, "old-1", "TypeConstraintViolation"]
    assert await stack.db()[TRANSACTIONS].count_documents({"id_tag": tag}) == 0
    assert "currentTime" in await charger.result("Heartbeat", {})


async def test_calls_sent_without_waiting_are_all_answered_in_order(
        stack: Stack, charger: Charger) -> None:
    """Ten CALLs at once: each waits for the one before (OCPP-J §4.1.1), none is refused."""
    tag = new_tag()
    await add_tag(stack, tag)
    gateway = stack.gateways[0]
    metrics = gateway.url("/metrics", gateway.metrics_port)
    sample = 'gridlink_gateway_calls_delayed_total{reason="outstanding"}'
    held_before = await metric_value(metrics, sample)
    ids = [f"burst-{n}" for n in range(10)]
    futures = {}
    for unique_id in ids:
        futures[unique_id] = asyncio.get_running_loop().create_future()
        charger.answers[unique_id] = futures[unique_id]
    for unique_id in ids:
        await charger.ws.send(json.dumps([2, unique_id, "Authorize", {"idTag": tag}]))
    answers = [await asyncio.wait_for(futures[i], 30) for i in ids]
    assert [a[0] for a in answers] == [3] * 10
    assert all(a[2]["idTagInfo"]["status"] == "Accepted" for a in answers)
    held = await metric_value(metrics, sample)
    # Ten frames leave faster than one round trip through broker and authz: some were held.
    assert held is not None and held_before is not None and held > held_before


async def test_an_edge_heartbeat_moves_last_seen(stack: Stack, charger: Charger) -> None:
    station = charger.ws.request.path.rsplit("/", 1)[-1]  # type: ignore[union-attr]
    before = (await stack.db().stations.find_one({"_id": station}))["last_seen"]
    assert "currentTime" in await charger.result("Heartbeat", {})

    async def moved() -> bool:  # the fact travels broker -> authz -> database: nothing to await
        document = await stack.db().stations.find_one({"_id": station})
        return bool(document["last_seen"] > before)

    await wait_for(moved, what="last_seen moved by the edge Heartbeat")


@pytest.mark.parametrize("segment", ["CP%7F1", "CP%E2%80%AE1", "CP%E2%80%8B1", "CP-1%20"])
async def test_an_identity_outside_the_character_set_is_refused_with_400(
        stack: Stack, segment: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{stack.gateway_url}/{segment}", subprotocols=["ocpp1.6"]):
            pass
    assert refused.value.response.status_code == 400
