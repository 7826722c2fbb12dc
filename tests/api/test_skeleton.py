"""The API process: probes, auth, problem documents, the stations list."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import ApiServer, add_station, new_id
from tests.processes import Stack

pytestmark = pytest.mark.integration


async def test_ready_and_lists_a_registered_station(stack: Stack, api: ApiServer,
                                                    client: httpx.AsyncClient) -> None:
    station = new_id("API")
    await add_station(stack, station)
    async with httpx.AsyncClient(base_url=api.base_url) as anonymous:
        assert (await anonymous.get("/readyz")).status_code == 200
    found = []
    url: str | None = "/api/v1/stations?limit=500"
    while url:
        page = (await client.get(url)).json()
        found += page["items"]
        url = page["next"]
    mine = next(item for item in found if item["id"] == station)
    assert mine["registration"] == "Accepted" and mine["connected"] is False
    assert mine["connectors"] == [] and mine["securityProfile"] == 0


async def test_no_key_is_401_problem(api: ApiServer) -> None:
    async with api.client(None) as anonymous:
        answer = await anonymous.get("/api/v1/stations")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
