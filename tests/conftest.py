"""Shared fixtures: a real RabbitMQ, a real MongoDB-wire server (SecantusDB), real processes.

Every test session uses its own namespace (exchange/queue prefix) and database, and deletes
its queues and exchanges at the end, so leftovers on a shared broker cannot leak in.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import pytest

from gridlink import components, embedded_db
from services.topology import Topology
from tests.processes import Stack, free_port

AMQP_URL = os.environ.get("GRIDLINK_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture(scope="session")
def amqp_url() -> str:
    host_port = AMQP_URL.split("@", 1)[-1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    with socket.socket() as sock:
        sock.settimeout(2)
        if sock.connect_ex((host, int(port or 5672))) != 0:
            pytest.fail(f"RabbitMQ is not reachable at {host_port}: run `make test`, which "
                        "starts or installs it (scripts/ensure-rabbitmq.sh)")
    return AMQP_URL


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SecantusDB server for the whole session (its own process, in-memory storage)."""
    port = free_port()
    log = tmp_path_factory.mktemp("secantus") / "secantusd.log"
    process = embedded_db.start(port, ":memory:", log_file=log)
    yield embedded_db.url(port)
    if process is not None:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="session")
def namespace() -> str:
    return f"gltest-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
async def _broker_cleanup(amqp_url: str, namespace: str) -> AsyncIterator[None]:
    yield
    await delete_namespace(amqp_url, namespace)


async def delete_namespace(amqp_url: str, namespace: str) -> None:
    """Delete the queues and exchanges of a test namespace."""
    topology = Topology(namespace)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for name in topology.all_queues(components.SERVICES):
            channel = await connection.channel()
            try:
                await channel.queue_delete(name)
            except aio_pika.exceptions.AMQPError:
                pass
        for name in topology.all_exchanges():
            channel = await connection.channel()
            try:
                await channel.exchange_delete(name)
            except aio_pika.exceptions.AMQPError:
                pass


@pytest.fixture(scope="session")
async def stack(amqp_url: str, mongo_url: str, namespace: str, _broker_cleanup: None,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """gateway + authz + transactions + commands as real processes, for the whole session."""
    logs = tmp_path_factory.mktemp("stack-logs")
    stack = Stack(amqp_url=amqp_url, mongo_url=mongo_url, namespace=namespace,
                  database=namespace.replace("-", "_"), logs=Path(logs))
    await stack.start_services()
    await stack.start_gateway()
    yield stack
    await stack.stop()

