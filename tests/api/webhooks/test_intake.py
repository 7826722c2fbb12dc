"""The worker's intake over the in-memory bus and store: one delivery per subscription that
wants an event, none for a redelivery, nothing for an event no one wants, and a malformed
event rejected (dead-lettered by the broker), never dropped in silence; and a subscription
whose events cannot be bound is not stored."""

from __future__ import annotations

import json

import pytest

from api.webhooks.repository import WebhookRepository
from api.webhooks.secret_box import SecretBox
from api.webhooks.subscriptions import SubscriptionCreate, Subscriptions
from api.webhooks.worker import WebhookWorker
from services.errors import Reject
from services.events import stamped
from services.memory import MemoryBus, MemoryMessage, memory_store
from services.topology import Topology
from tests.helpers import memory_settings


def subscription(sub_id: str, events: list[str], *, active: bool = True) -> dict[str, object]:
    return {"_id": sub_id, "url": "https://example.com/", "events": events, "active": active,
            "secret": "sealed", "version": 1}


def event(key: str, body: dict[str, object], *identity: object) -> MemoryMessage:
    return MemoryMessage(json.dumps(stamped(key, body, *identity)).encode(), "ns.events", key)


async def test_intake_makes_one_delivery_per_wanting_subscription_once() -> None:
    settings = memory_settings(webhook_dev_key=True)
    store = memory_store()
    worker = WebhookWorker(settings, store.db, MemoryBus(Topology.from_settings(settings)),
                           SecretBox.from_settings(settings))
    repo = WebhookRepository(store.db)
    await repo.ensure_indexes()
    for document in (subscription("wh_a", ["transaction.*"]), subscription("wh_b", ["*"]),
                     subscription("wh_c", ["station.status"]),
                     subscription("wh_d", ["*"], active=False)):
        await repo.create_subscription(document)
    started = event("transaction.started", {"transaction_id": 7}, 7)
    await worker.on_event(started)
    await worker.on_event(started)  # the broker delivered it again
    deliveries = await store.db["webhook_deliveries"].find({}).to_list()
    assert sorted(d["subscription"] for d in deliveries) == ["wh_a", "wh_b"]
    assert {json.loads(d["body"])["data"]["transactionId"] for d in deliveries} == {7}
    await worker.on_event(event("health.authz", {"ok": True}, "x"))  # not a public event
    assert await store.db["webhook_deliveries"].count_documents({}) == 2
    for garbage in (b"not json", b"[1, 2]"):
        with pytest.raises(Reject):
            await worker.on_event(MemoryMessage(garbage, "ns.events", "station.booted"))
    await worker.sender.close()


async def test_a_subscription_whose_events_cannot_be_bound_is_not_stored() -> None:
    """The broker away when a subscription is created: the bind fails first, so nothing is
    stored (the route answers 503); a bind that works runs before and after the insert."""
    settings = memory_settings(webhook_dev_key=True, webhook_allow_private_urls=True)
    store = memory_store()
    repo = WebhookRepository(store.db)
    calls: list[tuple[list[str], int]] = []

    async def broken(events: list[str]) -> None:
        raise ConnectionError("broker unreachable")

    async def working(events: list[str]) -> None:
        calls.append((events, await repo.subscriptions.count_documents({})))

    box = SecretBox.from_settings(settings)
    request = SubscriptionCreate(url="http://127.0.0.1:9/", events=["station.*"])
    with pytest.raises(ConnectionError):
        await Subscriptions(repo, box, settings, bind=broken).create(request)
    assert await repo.subscriptions.count_documents({}) == 0
    await Subscriptions(repo, box, settings, bind=working).create(request)
    assert calls == [(["station.*"], 0), (["station.*"], 1)]  # before and after the insert
