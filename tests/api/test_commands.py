"""Commands through the API to a simulated charger: ?wait, 202 + poll, idempotency, bulk,
validation, and a transaction stopped remotely."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from services.clock import iso, utcnow
from tests.charger import Charger
from tests.helpers import ApiServer, add_station, answer_next, fresh_tag, new_id, start_transaction
from tests.processes import Stack, wait_for

pytestmark = pytest.mark.integration


async def test_a_command_answered_within_wait_is_200_with_the_answer(
        stack: Stack, api: ApiServer) -> None:
    station = new_id("APICMD")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger, \
            api.client("commands") as http:
        await charger.boot()
        sending = asyncio.create_task(http.post(
            f"/api/v1/stations/{station}/commands/Reset?wait=20", json={"type": "Soft"}))
        frame = await answer_next(charger, "Reset", {"status": "Accepted"})
        answer = await sending
    assert frame[3] == {"type": "Soft"}
    assert answer.status_code == 200, answer.text
    command = answer.json()
    assert command["status"] == "accepted" and command["response"] == {"status": "Accepted"}
    assert command["station"] == station and command["action"] == "Reset"
    assert answer.headers["location"] == f"/api/v1/commands/{command['id']}"
    stored = await stack.db().commands.find_one({"_id": command["id"]})
    assert stored["status"] == "accepted"
    assert stored["sender"] == "guest"  # the API's broker login, checked by RabbitMQ


async def test_without_wait_202_then_poll_the_location(stack: Stack, api: ApiServer) -> None:
    station = new_id("APIPOLL")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger, \
            api.client("commands") as http:
        await charger.boot()
        answer = await http.post(f"/api/v1/stations/{station}/commands/ClearCache", json={})
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] in ("queued", "sent")
        location = answer.headers["location"]
        await answer_next(charger, "ClearCache", {"status": "Rejected"})

        async def ended() -> bool:  # poll as a client does, until it has a final status
            return (await http.get(location)).json()["status"] not in ("queued", "sent")

        await wait_for(ended, timeout=20, what="the command's final status")
        polled = (await http.get(location)).json()
    assert polled["status"] == "rejected" and polled["response"] == {"status": "Rejected"}
    assert [h["status"] for h in polled["history"]] == ["queued", "sent", "rejected"]


async def test_the_same_idempotency_key_sends_once(stack: Stack, api: ApiServer) -> None:
    station = new_id("APIIDEM")
    await add_station(stack, station)
    headers = {"Idempotency-Key": f"k-{station}"}
    async with Charger.connect(stack.gateway_url, station) as charger, \
            api.client("commands") as http:
        await charger.boot()
        first = asyncio.create_task(http.post(
            f"/api/v1/stations/{station}/commands/Reset?wait=20", json={"type": "Hard"},
            headers=headers))
        await answer_next(charger, "Reset", {"status": "Accepted"})
        first_answer = await first
        again = await http.post(f"/api/v1/stations/{station}/commands/Reset?wait=20",
                                json={"type": "Hard"}, headers=headers)
        other = await http.post(f"/api/v1/stations/{station}/commands/Reset",
                                json={"type": "Soft"}, headers=headers)
        # Nothing more reached the charger: the next call it gets is this one.
        probe = asyncio.create_task(http.post(
            f"/api/v1/stations/{station}/commands/ClearCache?wait=20", json={}))
        await answer_next(charger, "ClearCache", {"status": "Accepted"})
        assert (await probe).status_code == 200
    assert first_answer.status_code == 200 and again.status_code == 200
    assert again.json()["id"] == first_answer.json()["id"]
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    assert await stack.db().commands.count_documents(
        {"station": station, "action": "Reset"}) == 1


async def test_a_bad_payload_names_the_field_and_the_rule(stack: Stack,
                                                          api: ApiServer) -> None:
    station = new_id("APIBAD")
    await add_station(stack, station)
    async with api.client("commands") as http:
        wrong_type = await http.post(f"/api/v1/stations/{station}/commands/Reset",
                                     json={"type": "Warm"})
        missing = await http.post(f"/api/v1/stations/{station}/commands/UnlockConnector",
                                  json={})
        unknown = await http.post(f"/api/v1/stations/{station}/commands/Explode", json={})
        nobody = await http.post("/api/v1/stations/NOBODY-HERE/commands/Reset",
                                 json={"type": "Soft"})
        too_long = await http.post(f"/api/v1/stations/{station}/commands/Reset?wait=9999",
                                   json={"type": "Soft"})
    assert wrong_type.status_code == 422
    problem = wrong_type.json()
    assert wrong_type.headers["content-type"] == "application/problem+json"
    assert problem["errors"][0]["field"] == "body: type"
    assert problem["errors"][0]["rule"] == "PropertyConstraintViolation"
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["rule"] == "OccurenceConstraintViolation"
    assert "connectorId" in missing.json()["detail"]
    assert unknown.status_code == 404 and "Explode" in unknown.json()["detail"]
    assert nobody.status_code == 404
    assert too_long.status_code == 422
    assert await stack.db().commands.count_documents({"station": station}) == 0


async def test_bulk_sends_one_command_per_station(stack: Stack, api: ApiServer) -> None:
    ids = [new_id("APIBULK") for _ in range(2)]
    for station in ids:
        await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, ids[0]) as one, \
            Charger.connect(stack.gateway_url, ids[1]) as two, api.client("commands") as http:
        await one.boot()
        await two.boot()
        sending = asyncio.create_task(http.post(
            "/api/v1/commands/ClearCache?wait=20", json={"stations": ids, "payload": {}}))
        await asyncio.gather(answer_next(one, "ClearCache", {"status": "Accepted"}),
                             answer_next(two, "ClearCache", {"status": "Rejected"}))
        answer = await sending
        unknown = await http.post("/api/v1/commands/ClearCache",
                                  json={"stations": [ids[0], "NOT-REGISTERED"], "payload": {}})
    assert answer.status_code == 200, answer.text
    statuses = {item["station"]: item["status"] for item in answer.json()["items"]}
    assert statuses == {ids[0]: "accepted", ids[1]: "rejected"}
    assert unknown.status_code == 404 and unknown.json()["stations"] == ["NOT-REGISTERED"]


async def test_an_offline_station_ends_offline_and_the_list_filters(
        stack: Stack, api: ApiServer) -> None:
    station = new_id("APIOFF")
    await add_station(stack, station)
    async with api.client("commands") as http:
        answer = await http.post(f"/api/v1/stations/{station}/commands/ClearCache?wait=20",
                                 json={})
        listed = await http.get(f"/api/v1/commands?station={station}&status=offline")
        none = await http.get(f"/api/v1/commands?station={station}&status=accepted")
    assert answer.status_code == 200 and answer.json()["status"] == "offline"
    assert [c["id"] for c in listed.json()["items"]] == [answer.json()["id"]]
    assert none.json()["items"] == []


async def test_stop_a_transaction_remotely(stack: Stack, api: ApiServer) -> None:
    station = new_id("APISTOP")
    await add_station(stack, station)
    tag = await fresh_tag(stack)
    async with Charger.connect(stack.gateway_url, station) as charger, \
            api.client("commands") as http:
        await charger.boot()
        transaction_id = await start_transaction(charger, tag)
        listed = await http.get(f"/api/v1/transactions?station={station}&active=true")
        stopping = asyncio.create_task(http.post(
            f"/api/v1/transactions/{transaction_id}/stop?wait=20"))
        frame = await answer_next(charger, "RemoteStopTransaction", {"status": "Accepted"})
        stopped = await stopping
        missing = await http.post("/api/v1/transactions/2147483000/stop")
    assert [t["id"] for t in listed.json()["items"]] == [transaction_id]
    item = listed.json()["items"][0]
    assert item["idTag"] == tag and item["stoppedAt"] is None and item["connectorId"] == 1
    assert frame[3] == {"transactionId": transaction_id}
    assert stopped.status_code == 200 and stopped.json()["status"] == "accepted"
    assert missing.status_code == 404


async def test_the_read_scope_cannot_send(api: ApiServer) -> None:
    async with api.client("read") as http:
        answer = await http.post("/api/v1/stations/X/commands/Reset", json={"type": "Soft"})
    assert answer.status_code == 403 and "commands" in answer.json()["detail"]



async def test_reserve_and_cancel_through_the_command_path(stack: Stack,
                                                           api: ApiServer) -> None:
    station = new_id("APIRES")
    await add_station(stack, station)
    tag = await fresh_tag(stack)
    async with Charger.connect(stack.gateway_url, station) as charger, \
            api.client("commands") as http:
        await charger.boot()
        request = {"station": station, "connectorId": 1, "idTag": tag,
                   "expiryDate": iso(utcnow() + timedelta(hours=1))}
        # Refused by the commands service (connector 1 never reported): invalid, not sent.
        refused = await http.post("/api/v1/reservations?wait=20", json=request)
        polled = (await http.get(refused.headers["location"])).json()
        await charger.result("StatusNotification", {
            "connectorId": 1, "status": "Available", "errorCode": "NoError"})
        reserving = asyncio.create_task(http.post("/api/v1/reservations?wait=20",
                                                  json=request))
        frame = await answer_next(charger, "ReserveNow", {"status": "Accepted"})
        reserved = await reserving
        reservation_id = frame[3]["reservationId"]
        listed = (await http.get(f"/api/v1/reservations?station={station}")).json()["items"]
        cancelling = asyncio.create_task(http.delete(
            f"/api/v1/reservations/{reservation_id}?wait=20"))
        cancel = await answer_next(charger, "CancelReservation", {"status": "Accepted"})
        cancelled = await cancelling
        past = await http.post("/api/v1/reservations", json={
            "station": station, "connectorId": 1, "idTag": tag,
            "expiryDate": iso(utcnow() - timedelta(hours=1))})
        unknown = await http.delete("/api/v1/reservations/2147483000")
    assert refused.status_code == 200 and refused.json()["status"] == "invalid"
    assert polled["status"] == "invalid" and "connector" in polled["errorDescription"]
    assert reserved.status_code == 200 and reserved.json()["status"] == "accepted"
    assert frame[3]["idTag"] == tag and frame[3]["connectorId"] == 1
    assert [r["id"] for r in listed] == [reservation_id]
    assert cancel[3] == {"reservationId": reservation_id}
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "accepted"
    assert past.status_code == 422 and unknown.status_code == 404
