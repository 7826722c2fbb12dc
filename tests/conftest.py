"""Shared fixtures: a real RabbitMQ, a real MongoDB-wire server (SecantusDB), real processes.

Every test session uses its own namespace (exchange/queue prefix) and database, and deletes
its queues and exchanges at the end, so leftovers on a shared broker cannot leak in. Tests
reach the database through one client for the session (``mongo_client``, and the stack's
``db()``); each test that needs a scratch database gets a fresh one of its own (``db``).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from api import keys
from gridlink import embedded_db
from services.store import client_for
from tests.helpers import MAX_UPLOAD, ApiServer, delete_namespace
from tests.processes import Stack, answers, free_port, wait_for

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
async def mongo_client(mongo_url: str) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """The tests' one database client (the processes under test have their own)."""
    client: AsyncMongoClient[dict[str, Any]] = client_for(mongo_url, app_name="gridlink-tests")
    yield client
    await client.close()


@pytest.fixture
def db(mongo_client: AsyncMongoClient[dict[str, Any]]) -> AsyncDatabase[dict[str, Any]]:
    """A database no other test uses (on the session's client)."""
    return mongo_client[f"scratch_{uuid.uuid4().hex[:12]}"]


@pytest.fixture(scope="session")
def namespace() -> str:
    return f"gltest-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
async def _broker_cleanup(amqp_url: str, namespace: str) -> AsyncIterator[None]:
    yield
    await delete_namespace(amqp_url, namespace)


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


@pytest.fixture(scope="module")
async def files_base(stack: Stack) -> AsyncIterator[str]:
    """A commands replica whose file server the tests (and the CLI) know the address of.

    The stack's own commands replica keeps running: either may take a command, and both
    share the tokens and files in the database.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    replica = stack.spawn("commands", files_port=port, files_public_url=base,
                          max_upload_bytes=MAX_UPLOAD)
    await stack.wait_ready(replica)
    await wait_for(lambda: answers(f"{base}/firmware/{'t' * 32}/none", 404),
                   what="file server")
    yield base
    await stack.stop_process(replica)



@pytest.fixture(scope="session")
async def api(stack: Stack) -> AsyncIterator[ApiServer]:
    """The HTTP API (``python -m api``) on the session's stack, ready, with a key per scope
    (tests/api, and the console's and webhooks' tests)."""
    port = free_port()
    process = stack.spawn("api", api_port=port, api_host="127.0.0.1")
    await stack.wait_ready(process)
    server = ApiServer(f"http://127.0.0.1:{port}", process)
    for scope in keys.SCOPES:
        key_id, key = await keys.create_key(stack.db(), f"tests-{scope}", [scope])
        server.keys[scope], server.key_ids[scope] = key, key_id
    yield server
    await stack.stop_process(process)


@pytest.fixture
async def client(api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client for the API with the admin key."""
    async with api.client("admin") as http:
        yield http
