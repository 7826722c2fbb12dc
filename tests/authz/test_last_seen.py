"""The gateways' ``seen`` facts (edge Heartbeats) move last_seen, over the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from authz.last_seen import LastSeen
from authz.repository import AuthzRepository
from authz.service import SPEC
from services import stations
from services.envelope import StationSeen
from services.memory import MemoryMessage
from services.topology import SEEN_KEY, Subscription
from tests.helpers import built, memory_runtime

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def seen(station: str, at: datetime) -> MemoryMessage:
    return MemoryMessage(StationSeen(station=station, at=at).to_bytes(), "calls", SEEN_KEY)


async def test_a_seen_fact_moves_last_seen_forward_only() -> None:
    runtime = memory_runtime(SPEC)
    db = runtime.store.db
    await stations.add_station(db, "CP-1", registration="Accepted", password=None, now=NOW)
    handler = LastSeen(runtime, AuthzRepository(db, default_registration="Accepted"))
    await handler.handle(seen("CP-1", NOW))  # type: ignore[arg-type]
    await handler.handle(seen("CP-1", NOW - timedelta(minutes=5)))  # type: ignore[arg-type]
    assert (await db[stations.COLLECTION].find_one({"_id": "CP-1"}))["last_seen"] == NOW
    await handler.handle(seen("NOBODY", NOW))  # type: ignore[arg-type]
    assert await db[stations.COLLECTION].find_one({"_id": "NOBODY"}) is None  # no upsert


def test_authz_consumes_the_seen_facts_on_its_work_queue() -> None:
    assert Subscription("calls", SEEN_KEY, "work") in built(SPEC).subscriptions()
