"""An API process killed in the middle of an attempt loses nothing: its lease runs out and
another worker delivers the same delivery (the same id and bytes); the killed attempt, never
finished, is not in the log. The API process runs in a namespace and database of this test's
own, so no other worker (the session's API, the in-process ones) can take the delivery."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from api.webhooks import rules
from api.webhooks.bindings import EventBindings
from api.webhooks.repository import DELIVERED, WebhookRepository
from api.webhooks.secret_box import SecretBox
from api.webhooks.subscriptions import SubscriptionCreate, Subscriptions
from api.webhooks.worker import WebhookWorker
from services.bus import Bus
from services.events import stamped
from services.topology import Topology
from tests.api.webhooks.conftest import Receiver, settings_for
from tests.helpers import delete_namespace
from tests.processes import Stack, free_port

pytestmark = pytest.mark.integration

LEASE_S, TIMEOUT_S = 4, 3  # the attempt hangs longer than it takes to kill the process


@pytest.fixture
async def own_namespace(stack: Stack) -> AsyncIterator[str]:
    namespace = f"glkill-{uuid.uuid4().hex[:8]}"
    yield namespace
    await delete_namespace(stack.amqp_url, namespace)
    client = stack.db().client
    await client.drop_database(namespace.replace("-", "_"))


async def test_a_killed_api_process_loses_no_delivery(stack: Stack, receiver: Receiver,
                                                      own_namespace: str) -> None:
    database = own_namespace.replace("-", "_")
    settings = settings_for(stack).model_copy(update={
        "namespace": own_namespace, "mongo_db": database, "webhook_lease_s": LEASE_S,
        "webhook_timeout_s": TIMEOUT_S})
    db = stack.db().client[database]
    bus = Bus(settings.amqp_url, Topology(own_namespace), name="webhooks-kill",
              component="webhooks-test")
    await bus.connect(prefetch=1)  # declares the namespace's exchanges for the API
    queue = await bus.declare_queue(bus.topology.webhooks_queue())  # events wait for the API
    try:
        api = stack.spawn("api", namespace=own_namespace, mongo_db=database,
                          api_port=free_port(), api_host="127.0.0.1",
                          webhook_lease_s=LEASE_S, webhook_timeout_s=TIMEOUT_S)
        await stack.wait_ready(api)
        box = SecretBox.from_settings(settings)
        bindings = EventBindings(queue, bus.topology.events, WebhookRepository(db))
        view, secret = await Subscriptions(WebhookRepository(db), box, settings,
                                           bind=bindings.want).create(
            SubscriptionCreate(url=receiver.url("/kill"), events=["station.booted"]))
        receiver.scripts["/kill"] = ["hang"]  # the API's attempt never gets an answer
        event = stamped("station.booted", {"station": "CP-KILL"}, "kill")
        await bus.publish(bus.topology.events, "station.booted", json.dumps(event).encode())
        first = await receiver.next("/kill")
        api.signal(signal.SIGKILL)  # mid-attempt: nothing recorded, the lease held
        assert await api.exit_code(10) == -signal.SIGKILL
        worker = WebhookWorker(settings, db, bus, box)
        await worker.start()
        try:
            second = await receiver.next("/kill", timeout=LEASE_S + 20)
            delivery = second.headers[rules.DELIVERY_HEADER.lower()]
            assert delivery == first.headers[rules.DELIVERY_HEADER.lower()]
            assert second.body == first.body
            assert json.loads(second.body)["id"] == event["event_id"]
            assert rules.verify(secret, second.headers[rules.SIGNATURE_HEADER.lower()],
                                second.body, now=time.time())
            async with worker.recorded:
                while (document := await WebhookRepository(db).delivery(
                        view["id"], delivery))["state"] != DELIVERED:
                    await worker.recorded.wait()
            assert [a["status"] for a in document["attempts"]] == [200]
        finally:
            await worker.stop()
    finally:
        await bus.close()
