"""Webhook fixtures: a real HTTP receiver on a free port (plain asyncio, scripted answers),
and the webhook worker running in the test process against the session's real stack
(RabbitMQ namespace, SecantusDB database), with a small backoff."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from api.webhooks.repository import PENDING, WebhookRepository
from api.webhooks.secret_box import SecretBox
from api.webhooks.subscriptions import Subscriptions
from api.webhooks.worker import WebhookWorker
from services.bus import Bus
from services.settings import Settings
from services.topology import Topology
from tests.processes import Stack


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class Receiver:
    """An HTTP/1.1 server answering each POST as scripted per path: ``200``, ``500``,
    ``"hang"`` (never answers: the sender's timeout), ``302``; then 200 once the script is
    used up. Every request is recorded and put on its path's queue."""

    port: int = 0
    scripts: dict[str, list[int | str]] = field(default_factory=dict)
    arrived: dict[str, asyncio.Queue[Received]] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    _hung: list[asyncio.Event] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def queue(self, path: str) -> asyncio.Queue[Received]:
        return self.arrived.setdefault(path, asyncio.Queue())

    async def next(self, path: str, timeout: float = 20) -> Received:
        return await asyncio.wait_for(self.queue(path).get(), timeout)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = Received(path, headers, body)
            self.requests.append(request)
            script = self.scripts.get(path, [])
            answer = script.pop(0) if script else 200
            self.queue(path).put_nowait(request)
            if answer == "hang":
                hung = asyncio.Event()
                self._hung.append(hung)
                await hung.wait()
                return
            extra = "Location: http://127.0.0.1:1/\r\n" if answer == 302 else ""
            writer.write(f"HTTP/1.1 {answer} X\r\nContent-Length: 2\r\n{extra}"
                         "Connection: close\r\n\r\nok".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    received = Receiver()
    server = await asyncio.start_server(received.handle, "127.0.0.1", 0)
    received.port = server.sockets[0].getsockname()[1]
    yield received
    for hung in received._hung:
        hung.set()
    server.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 5)


@dataclass
class Webhooks:
    worker: WebhookWorker
    subscriptions: Subscriptions
    repo: WebhookRepository
    box: SecretBox
    bus: Bus
    settings: Settings

    async def settled(self, subscription: str, delivery: str, *, timeout: float = 20
                      ) -> dict[str, Any]:
        """The delivery once it is no longer pending (awaiting the worker's "attempt
        recorded"; the document is read under its lock, so no notice is missed)."""
        deadline = asyncio.get_running_loop().time() + timeout
        async with self.worker.recorded:
            while True:
                document = await self.repo.delivery(subscription, delivery)
                assert document is not None
                if document["state"] != PENDING:
                    return document
                left = deadline - asyncio.get_running_loop().time()
                assert left > 0, f"delivery still pending: {document['attempts']}"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.worker.recorded.wait(), left)


def settings_for(stack: Stack, **changes: object) -> Settings:
    return Settings(amqp_url=stack.amqp_url, mongo_url=stack.mongo_url,
                    mongo_db=stack.database, namespace=stack.namespace,
                    webhook_allow_private_urls=True, webhook_backoff_base_s=0.2,
                    webhook_backoff_max_s=0.4, webhook_timeout_s=1.0,
                    webhook_poll_interval_s=0.05, webhook_lease_s=5,
                    webhook_dev_key=True, shutdown_grace_s=2, **changes)  # type: ignore[arg-type]


@pytest.fixture
async def webhooks(stack: Stack) -> AsyncIterator[Webhooks]:
    """A started worker (prefetch 1: events are taken one at a time, in order) and the
    subscription operations, on the stack's database; every subscription deleted after.
    Secrets are sealed with the development key, as the API process of ``api`` does (its
    worker, when it runs, shares the queue and the deliveries)."""
    settings = settings_for(stack)
    box = SecretBox.from_settings(settings)  # the development key, as the API process's
    bus = Bus(settings.amqp_url, Topology.from_settings(settings), name="webhooks-test",
              component="webhooks-test")
    await bus.connect(prefetch=1)
    db = stack.db()
    worker = WebhookWorker(settings, db, bus, box)
    await worker.start()
    repo = WebhookRepository(db)
    hooks = Webhooks(worker, Subscriptions(repo, box, settings, wake=worker.wake.set,
                                           bind=worker.want), repo, box, bus, settings)
    yield hooks
    await worker.stop()
    await bus.close()
    await repo.subscriptions.delete_many({})
