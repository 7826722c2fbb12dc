"""The HTTP API against the real stack: ``api`` is a running ``python -m api`` (its own
process, on the session's stack: real RabbitMQ, SecantusDB, the real commands service and
gateway), with one key per scope; ``client`` is an httpx client for it with the admin key.

Other test packages (tests/api/webhooks, tests/console) use the same fixtures: put them
under tests/api/ or import nothing — add ``pytest_plugins`` is not needed below tests/api.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from api import keys
from tests.processes import Process, Stack, free_port


@dataclass
class ApiServer:
    """A running API: its base URL (``http://127.0.0.1:PORT``), its probe port's process,
    and a key per scope (``keys["read"]``, ``keys["commands"]``, ``keys["admin"]``)."""

    base_url: str
    process: Process
    keys: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)

    def client(self, scope: str | None = "admin", **options: object) -> httpx.AsyncClient:
        """An httpx client for the API, with the key of ``scope`` (None: no key)."""
        headers = {"Authorization": f"Bearer {self.keys[scope]}"} if scope else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30,
                                 **options)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
async def api(stack: Stack) -> AsyncIterator[ApiServer]:
    """``python -m api`` on the session's stack, ready, with a key per scope."""
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
