"""Command monitoring (GRIDLINK_DB_COMMAND_STATS): every round trip a service's client makes
is counted by collection, command and the message it was sent for, and timed."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from services.db_stats import collection_of, working_on
from services.store import Store


def _count(component: str, collection: str, command: str, work: str) -> float:
    value = REGISTRY.get_sample_value("gridlink_service_db_commands_total", {
        "component": component, "collection": collection, "command": command, "work": work})
    return value or 0.0


def _timed(component: str, collection: str, command: str) -> float:
    value = REGISTRY.get_sample_value("gridlink_service_db_command_seconds_count", {
        "component": component, "collection": collection, "command": command})
    return value or 0.0


def test_the_collection_of_a_command() -> None:
    assert collection_of("insert", {"insert": "meter_values", "ordered": True}) == "meter_values"
    assert collection_of("getMore", {"getMore": 12, "collection": "transactions"}) == \
        "transactions"
    assert collection_of("ping", {"ping": 1}) == "-"
    assert collection_of("aggregate", {"aggregate": 1, "pipeline": []}) == "-"


async def test_commands_are_counted_per_collection_and_work(mongo_url: str) -> None:
    component = f"test-{uuid.uuid4().hex[:6]}"
    store = Store(mongo_url, f"stats_{uuid.uuid4().hex[:8]}", component=component,
                  command_stats=True)
    try:
        with working_on("call.StartTransaction"):
            await store.db["transactions"].insert_one({"_id": 1})
            assert await store.db["transactions"].find_one({"_id": 1}) == {"_id": 1}
        await store.db["transactions"].find_one({"_id": 2})
        assert _count(component, "transactions", "insert", "call.StartTransaction") == 1
        assert _count(component, "transactions", "find", "call.StartTransaction") == 1
        assert _count(component, "transactions", "find", "other") == 1
        assert _timed(component, "transactions", "find") == 2
    finally:
        await store.close()


async def test_without_the_setting_nothing_is_counted(mongo_url: str) -> None:
    component = f"test-{uuid.uuid4().hex[:6]}"
    store = Store(mongo_url, f"stats_{uuid.uuid4().hex[:8]}", component=component)
    try:
        await store.db["transactions"].find_one({"_id": 1})
        assert _count(component, "transactions", "find", "other") == 0
    finally:
        await store.close()
