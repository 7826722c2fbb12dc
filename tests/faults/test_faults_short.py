"""The short fault run of ``make test`` (``make faults`` runs them all): under a fleet's
load, a transactions replica is killed outright and the harness's own RabbitMQ node is
stopped and started again; every answered transaction message is stored once, nothing is
stored that no charger sent, and every message the fleet sent was answered in the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.cluster import Cluster
from tests.faults.scenarios import run_scenario, short_scenario, table

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with Cluster(tmp_path) as running:
        yield running


async def test_a_killed_replica_and_a_broker_restart_lose_and_duplicate_nothing(
        cluster: Cluster) -> None:
    row = await run_scenario(cluster, short_scenario())
    print(table([row]))
    assert cluster.unit("transactions-1").restarts == 1  # the fault did happen
    assert row.result.problems == [], row.result.problems[:20]
    assert row.result.transactions > 0 and row.result.messages >= 100
    assert row.clean
