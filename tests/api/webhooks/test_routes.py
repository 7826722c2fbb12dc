"""``/api/v1/webhooks`` on the running API process (its own delivery worker): scopes,
problem+json errors, ETags, pagination, the delivery log, replay and ping, and a charger's
transaction delivered by the API's worker to a real receiver, signature verified."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from api.webhooks import rules
from tests.api.webhooks.conftest import Receiver
from tests.charger import Charger, now
from tests.helpers import ApiServer, add_station, fresh_tag, new_id
from tests.processes import Stack, wait_for

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


async def create(client: httpx.AsyncClient, receiver: Receiver, path: str,
                 events: list[str]) -> dict[str, Any]:
    answer = await client.post("/api/v1/webhooks", json={
        "url": receiver.url(path), "events": events, "description": path})
    assert answer.status_code == 201, answer.text
    assert answer.headers["Location"] == f"/api/v1/webhooks/{answer.json()['id']}"
    return answer.json()  # type: ignore[no-any-return]


async def test_subscriptions_crud_with_scopes_etags_and_problems(
        api: ApiServer, client: httpx.AsyncClient, receiver: Receiver) -> None:
    made = await create(client, receiver, "/crud", ["transaction.*"])
    assert made["secret"].startswith("whsec_") and made["active"] is True
    sub = made["id"]
    async with api.client("read") as reader:
        got = await reader.get(f"/api/v1/webhooks/{sub}")
        assert got.status_code == 200 and "secret" not in got.json()
        assert got.json()["events"] == ["transaction.*"]
        etag = got.headers["ETag"]
        again = await reader.get(f"/api/v1/webhooks/{sub}", headers={"If-None-Match": etag})
        assert again.status_code == 304
        refused = await reader.post("/api/v1/webhooks", json={
            "url": receiver.url("/x"), "events": ["*"]})
        assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM
    async with api.client(None) as nobody:
        assert (await nobody.get("/api/v1/webhooks")).status_code == 401
    changed = await client.patch(f"/api/v1/webhooks/{sub}", headers={"If-Match": etag},
                                 json={"events": ["transaction.stopped"], "active": False})
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["transaction.stopped"]
    assert changed.json()["secret"] is None and not changed.json()["active"]
    stale = await client.patch(f"/api/v1/webhooks/{sub}", headers={"If-Match": etag},
                               json={"active": True})
    assert stale.status_code == 412 and stale.headers["content-type"] == PROBLEM
    rotated = await client.patch(f"/api/v1/webhooks/{sub}", json={"rotateSecret": True})
    assert rotated.json()["secret"] not in (None, made["secret"])
    for body, field in (({"url": "ftp://example.com/", "events": ["*"]}, "body: url"),
                        ({"url": receiver.url("/y"), "events": ["nothing.*"]}, "body: events"),
                        ({"url": receiver.url("/y"), "events": []}, "body: events"),
                        ({"url": receiver.url("/y"), "events": ["*"], "extra": 1},
                         "body: extra")):
        bad = await client.post("/api/v1/webhooks", json=body)
        assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM, bad.text
        assert bad.json()["errors"][0]["field"] == field
    assert (await client.get("/api/v1/webhooks/wh_" + "0" * 24)).status_code == 404
    assert (await client.get("/api/v1/webhooks/not-an-id")).status_code == 422
    assert (await client.delete(f"/api/v1/webhooks/{sub}")).status_code == 204
    assert (await client.get(f"/api/v1/webhooks/{sub}")).status_code == 404


async def test_subscriptions_are_paginated(client: httpx.AsyncClient,
                                           receiver: Receiver) -> None:
    made = {(await create(client, receiver, f"/page{i}", ["*"]))["id"] for i in range(3)}
    seen: list[str] = []
    url: str | None = "/api/v1/webhooks?limit=2"
    while url:
        answer = await client.get(url)
        assert answer.status_code == 200
        seen += [item["id"] for item in answer.json()["items"]]
        url = answer.json()["next"]
    assert made <= set(seen) and len(seen) == len(set(seen)) and seen == sorted(seen)
    for sub in made:
        await client.delete(f"/api/v1/webhooks/{sub}")


async def test_a_transaction_is_delivered_by_the_api_with_its_log_replay_and_ping(
        stack: Stack, client: httpx.AsyncClient, receiver: Receiver) -> None:
    made = await create(client, receiver, "/api-tx", ["transaction.started"])
    sub, secret = made["id"], made["secret"]
    station, tag = new_id("WA"), await fresh_tag(stack)
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        started = await charger.result("StartTransaction", {
            "connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": now()})
    request = await receiver.next("/api-tx")
    header = request.headers[rules.SIGNATURE_HEADER.lower()]
    assert rules.verify(secret, header, request.body, now=time.time())
    body = json.loads(request.body)
    assert body["type"] == "transaction.started"
    assert body["data"]["transactionId"] == started["transactionId"]
    delivery = request.headers[rules.DELIVERY_HEADER.lower()]

    async def logged() -> dict[str, Any]:
        answer = await client.get(f"/api/v1/webhooks/{sub}/deliveries/{delivery}")
        assert answer.status_code == 200
        return answer.json()  # type: ignore[no-any-return]

    async def recorded() -> bool:  # the API process writes the log after the answer
        return bool((await logged())["state"] != "pending")

    await wait_for(recorded, what="the attempt in the delivery log")
    entry = await logged()
    assert entry["state"] == "delivered" and entry["attempts"][0]["status"] == 200
    assert entry["eventId"] == body["id"]
    log = await client.get(f"/api/v1/webhooks/{sub}/deliveries?state=delivered")
    assert [d["id"] for d in log.json()["items"]] == [delivery]
    replay = await client.post(f"/api/v1/webhooks/{sub}/deliveries/{delivery}/replay")
    assert replay.status_code == 202 and replay.json()["replayOf"] == delivery
    replayed = await receiver.next("/api-tx")
    assert replayed.body == request.body
    assert replayed.headers[rules.DELIVERY_HEADER.lower()] == replay.json()["id"]
    ping = await client.post(f"/api/v1/webhooks/{sub}/ping")
    assert ping.status_code == 202
    pinged = await receiver.next("/api-tx")
    assert json.loads(pinged.body)["type"] == rules.PING
    newest = (await client.get(f"/api/v1/webhooks/{sub}/deliveries?limit=1")).json()
    assert newest["items"][0]["id"] == ping.json()["id"] and newest["next"]
    missing = await client.post(f"/api/v1/webhooks/{sub}/deliveries/dlv_{'0' * 24}/replay")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    await client.delete(f"/api/v1/webhooks/{sub}")
