"""Webhook delivery against the real stack: a simulated charger's session reaches a real
HTTP receiver signed, a failing receiver is retried after backoff, a redelivered event is
delivered once, a replay is a new delivery of the same event, a process that dies
mid-attempt loses nothing, non-public addresses are refused, secrets are sealed."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from api.webhooks import rules
from api.webhooks.repository import DELIVERED, new_delivery
from api.webhooks.sender import Sender
from api.webhooks.subscriptions import SubscriptionCreate, Subscriptions, SubscriptionUpdate
from services.events import stamped
from services.ocpp16 import utcnow
from tests.api.webhooks.conftest import Received, Receiver, Webhooks
from tests.charger import Charger, now
from tests.helpers import add_station, fresh_tag, new_id
from tests.processes import Stack, free_port, wait_for

pytestmark = pytest.mark.integration
RECEIVER_SCRIPT = Path(__file__).resolve().parents[3] / "docs" / "webhook_receiver.py"


def verified(secret: str, request: Received) -> dict[str, Any]:
    """The body, once its signature checks out as a receiver checks it."""
    header = request.headers[rules.SIGNATURE_HEADER.lower()]
    assert rules.verify(secret, header, request.body, now=time.time()), header
    return json.loads(request.body)


async def subscribe(webhooks: Webhooks, receiver: Receiver, path: str, events: list[str]
                    ) -> tuple[str, str]:
    view, secret = await webhooks.subscriptions.create(SubscriptionCreate(
        url=receiver.url(path), events=events, description="test"))
    return view["id"], secret


async def publish(webhooks: Webhooks, key: str, body: dict[str, Any], *identity: object
                  ) -> str:
    """An event on {ns}.events as a service publishes it; its id."""
    event = stamped(key, body, *identity)
    await webhooks.bus.publish(webhooks.bus.topology.events, key,
                               json.dumps(event).encode(), message_id=event["event_id"])
    return event["event_id"]


async def test_a_charging_session_reaches_the_receiver_signed(
        stack: Stack, webhooks: Webhooks, receiver: Receiver) -> None:
    station, tag = new_id("WH"), await fresh_tag(stack)
    await add_station(stack, station)
    tx_sub, tx_secret = await subscribe(webhooks, receiver, "/tx", ["transaction.*"])
    st_sub, st_secret = await subscribe(webhooks, receiver, "/st", ["station.connected",
                                                                    "station.booted",
                                                                    "station.disconnected"])
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        started = await charger.result("StartTransaction", {
            "connectorId": 1, "idTag": tag, "meterStart": 1000, "timestamp": now()})
        transaction_id = started["transactionId"]
        await charger.result("MeterValues", {"connectorId": 1, "transactionId": transaction_id,
                                             "meterValue": [{"timestamp": now(),
                                                             "sampledValue": [{"value": "1500"}]}]})
        await charger.result("StopTransaction", {"transactionId": transaction_id,
                                                 "meterStop": 2000, "timestamp": now()})
    bodies = {}
    for _ in range(3):
        request = await receiver.next("/tx")
        body = verified(tx_secret, request)
        assert request.headers[rules.EVENT_HEADER.lower()] == body["type"]
        delivery = await webhooks.repo.delivery(tx_sub, request.headers[
            rules.DELIVERY_HEADER.lower()])
        assert delivery is not None and delivery["event_id"] == body["id"]
        bodies[body["type"]] = body
    assert set(bodies) == {"transaction.started", "transaction.updated",
                           "transaction.stopped"}
    assert all(b["data"]["transactionId"] == transaction_id for b in bodies.values())
    assert bodies["transaction.started"]["data"]["idTag"] == tag
    assert bodies["transaction.updated"]["data"]["values"] == [
        {"measurand": "Energy.Active.Import.Register", "value": "1500"}]
    assert bodies["transaction.stopped"]["data"]["energyWh"] == 1000
    seen = [verified(st_secret, await receiver.next("/st")) for _ in range(3)]
    assert {b["type"] for b in seen} == {"station.connected", "station.booted",
                                         "station.disconnected"}
    assert all(b["data"]["station"] == station for b in seen)
    closed = next(b for b in seen if b["type"] == "station.disconnected")
    connected = next(b for b in seen if b["type"] == "station.connected")
    assert closed["data"]["session"] == connected["data"]["session"]
    assert closed["data"]["gateway"] == connected["data"]["gateway"]
    for request in (await webhooks.repo.list_deliveries(tx_sub, limit=10)):
        settled = await webhooks.settled(tx_sub, request["_id"])
        assert settled["state"] == DELIVERED and settled["attempts"][0]["status"] == 200
    assert len(await webhooks.repo.list_deliveries(st_sub, limit=10)) == 3


async def test_a_failing_receiver_is_retried_after_backoff_until_it_answers(
        webhooks: Webhooks, receiver: Receiver) -> None:
    receiver.scripts["/flaky"] = [500, "hang", 302]
    sub, secret = await subscribe(webhooks, receiver, "/flaky", ["command.finished"])
    event_id = await publish(webhooks, "command.finished", {
        "command_id": new_id("c"), "station": "CP-X", "action": "Reset",
        "status": "accepted"}, uuid.uuid4().hex)
    attempts = [await receiver.next("/flaky") for _ in range(4)]
    assert len({a.headers[rules.DELIVERY_HEADER.lower()] for a in attempts}) == 1
    assert len({a.body for a in attempts}) == 1  # the same bytes every time
    assert all(verified(secret, a)["id"] == event_id for a in attempts)
    [listed] = await webhooks.repo.list_deliveries(sub, limit=5)
    delivery = await webhooks.settled(sub, listed["_id"])
    assert delivery["state"] == DELIVERED
    log = delivery["attempts"]
    assert [a["status"] for a in log] == [500, None, 302, 200]
    assert "timeout" in log[1]["error"] and log[2]["error"] == "redirect not followed"
    gaps = [(b["at"] - a["at"]).total_seconds() for a, b in itertools.pairwise(log)]
    assert all(gap >= 0.1 for gap in gaps)  # backoff base 0.2 s, equal jitter: >= 0.1 s


async def test_an_event_delivered_twice_is_sent_once_and_a_replay_again(
        webhooks: Webhooks, receiver: Receiver) -> None:
    sub, secret = await subscribe(webhooks, receiver, "/once", ["security.*", "station.status"])
    body = {"station": "CP-Y", "type": "TamperDetectionActivated", "critical": True}
    first = await publish(webhooks, "security.event", body, "same-fact")
    again = await publish(webhooks, "security.event", body, "same-fact")  # redelivered
    marker = await publish(webhooks, "station.status", {"station": "CP-Y", "connector": 1,
                                                        "status": "Available"}, "marker")
    assert first == again
    received = [verified(secret, await receiver.next("/once")) for _ in range(2)]
    assert sorted(r["id"] for r in received) == sorted([first, marker])
    # the worker takes events in order: the duplicate came before the marker and added none
    log = await webhooks.repo.list_deliveries(sub, limit=10)
    assert sorted(d["event_id"] for d in log) == sorted([first, marker])
    original = next(d for d in log if d["event_id"] == first)
    replay = await webhooks.subscriptions.replay(sub, original["_id"])
    assert replay["replayOf"] == original["_id"] and replay["eventId"] == first
    replayed = await receiver.next("/once")
    assert verified(secret, replayed)["id"] == first
    assert replayed.headers[rules.DELIVERY_HEADER.lower()] == replay["id"] != original["_id"]
    assert receiver.queue("/once").empty()
    ping = await webhooks.subscriptions.ping(sub)
    pinged = verified(secret, await receiver.next("/once"))
    assert pinged["type"] == rules.PING and pinged["id"] == ping["eventId"]


async def test_a_delivery_claimed_by_a_process_that_died_is_taken_again_after_its_lease(
        webhooks: Webhooks, receiver: Receiver) -> None:
    repo = webhooks.repo
    sub, _ = await subscribe(webhooks, receiver, "/lease", ["*"])
    start = utcnow() + timedelta(days=1)  # due tomorrow: no running worker takes it today
    document = new_delivery(sub, "station.booted", uuid.uuid4().hex, "{}", start,
                            event_at=start)
    await repo.add_delivery(document)
    assert await repo.add_delivery({**document, "_id": "dlv_other"}) is False  # same key
    first = await repo.claim(start, lease_s=30)
    assert first is not None and first["_id"] == document["_id"]
    assert await repo.claim(start + timedelta(seconds=29), lease_s=30) is None  # leased
    taken = await repo.claim(start + timedelta(seconds=31), lease_s=30)  # the lease ran out
    assert taken is not None and taken["_id"] == document["_id"]
    attempt = {"at": start, "duration_ms": 1, "status": 200, "error": None, "response": ""}
    # the first claimant's late result is not recorded over the second's lease
    assert not await repo.record_attempt(first, attempt, state=DELIVERED,
                                         next_attempt_at=None)
    assert await repo.record_attempt(taken, attempt, state=DELIVERED, next_attempt_at=None)
    assert await repo.claim(start + timedelta(hours=1), lease_s=30) is None


async def test_non_public_addresses_are_refused_at_creation_and_at_delivery(
        webhooks: Webhooks, receiver: Receiver) -> None:
    strict = Subscriptions(webhooks.repo, webhooks.box,
                           webhooks.settings.model_copy(
                               update={"webhook_allow_private_urls": False}))
    for url in (receiver.url("/x"), "http://localhost:9/", "http://169.254.169.254/latest",
                "http://[::1]/", "http://10.0.0.1/"):
        with pytest.raises(rules.InvalidSubscription, match="public addresses only") as no:
            await strict.create(SubscriptionCreate(url=url, events=["*"]))
        assert no.value.field == "url"
    with pytest.raises(rules.InvalidSubscription, match="only http"):
        await strict.create(SubscriptionCreate(url="gopher://example.com/", events=["*"]))
    sender = Sender(timeout_s=1, max_response_bytes=64, allow_private=False)
    outcome = await sender.attempt(receiver.url("/x"), "{}", {})
    await sender.close()
    assert outcome.status is None and outcome.error is not None
    assert outcome.error.startswith("refused") and not receiver.requests


async def test_the_signing_secret_is_stored_sealed(webhooks: Webhooks,
                                                   receiver: Receiver) -> None:
    sub, secret = await subscribe(webhooks, receiver, "/sealed", ["*"])
    raw = await webhooks.repo.subscriptions.find_one({"_id": sub})
    assert raw is not None and secret not in json.dumps(raw, default=str)
    assert webhooks.box.open(raw["secret"]) == secret
    view, rotated = await webhooks.subscriptions.update(
        sub, SubscriptionUpdate(rotateSecret=True))
    assert rotated and rotated != secret and "secret" not in view


async def test_the_documented_receiver_verifies_and_prints_a_delivery(
        webhooks: Webhooks, receiver: Receiver) -> None:
    port = free_port()
    script = RECEIVER_SCRIPT
    view, secret = await webhooks.subscriptions.create(SubscriptionCreate(
        url=f"http://127.0.0.1:{port}/gridlink", events=["station.booted"]))
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), secret, str(port), stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert b"listening" in await asyncio.wait_for(process.stdout.readline(), 20)
        await publish(webhooks, "station.booted", {"station": "CP-DOC",
                                                   "registration": "Accepted"}, "doc")
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.split(" ", 1)[0] == "station.booted"
        assert json.loads(line.split(" ", 1)[1]) == {"station": "CP-DOC",
                                                     "registration": "Accepted"}
        [delivery] = await webhooks.repo.list_deliveries(view["id"])
        settled = await webhooks.settled(view["id"], delivery["_id"])
        assert settled["attempts"][-1]["status"] == 204
        # signed with another secret (rotated, the receiver still has the old one): 401
        await webhooks.subscriptions.update(view["id"], SubscriptionUpdate(rotateSecret=True))
        stale = await publish(webhooks, "station.booted", {"station": "CP-DOC2"}, "doc2")
        key = f"{view['id']}/{stale}"
        await wait_for(lambda: webhooks.repo.deliveries.find_one({"key": key}),
                       what="the delivery of the second event")
        found = await webhooks.repo.deliveries.find_one({"key": key})
        assert found is not None
        refused = await webhooks.settled(view["id"], found["_id"])  # retried until failed
        assert refused["state"] == "failed"
        assert {a["status"] for a in refused["attempts"]} == {401}
        assert process.stdout.at_eof() is False  # it printed nothing for those
    finally:
        process.terminate()
        await process.wait()
