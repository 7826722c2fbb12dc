"""Retention as TTL indexes, against the real MongoDB wire protocol (SecantusDB): created,
changed in place, dropped, and documents really expire."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from authz.service import SPEC as AUTHZ
from services.ocpp16 import utcnow
from services.retention import INDEX_NAME, Retention, ensure_retention
from tests.helpers import built, memory_runtime
from tests.processes import wait_for
from transactions.service import SPEC as TRANSACTIONS


async def ttl(db: AsyncDatabase[dict[str, Any]], collection: str) -> dict[str, Any] | None:
    return (await db[collection].index_information()).get(INDEX_NAME)


async def test_a_ttl_index_is_created_once_and_changed_in_place(
        db: AsyncDatabase[dict[str, Any]]) -> None:
    events = (Retention("events", "received_at", 90),)
    assert await ensure_retention(db, events) == {"events": "created"}
    index = await ttl(db, "events")
    assert index is not None and index["expireAfterSeconds"] == 90 * 86_400
    assert [tuple(k) for k in index["key"]] == [("received_at", 1)]
    assert await ensure_retention(db, events) == {"events": "kept"}  # a restart, a replica

    shorter = (Retention("events", "received_at", 0.5),)
    assert await ensure_retention(db, shorter) == {"events": "changed"}  # collMod, no error
    index = await ttl(db, "events")
    assert index is not None and index["expireAfterSeconds"] == 43_200

    forever = (Retention("events", "received_at", 0),)
    assert await ensure_retention(db, forever) == {"events": "dropped"}
    assert await ttl(db, "events") is None
    assert await ensure_retention(db, forever) == {"events": "none"}


async def test_a_ttl_index_on_another_field_is_replaced(
        db: AsyncDatabase[dict[str, Any]]) -> None:
    await db["events"].create_index("at", name=INDEX_NAME, expireAfterSeconds=60)
    assert await ensure_retention(db, (Retention("events", "received_at", 1),)) == {
        "events": "created"}
    index = await ttl(db, "events")
    assert index is not None and [tuple(k) for k in index["key"]] == [("received_at", 1)]
    assert index["expireAfterSeconds"] == 86_400


async def test_the_services_declare_the_retention_settings() -> None:
    authz = built(AUTHZ, retention_data_transfers_days=7, retention_security_events_days=30)
    transactions = built(TRANSACTIONS, retention_status_events_days=14)
    assert {(r.collection, r.field, r.days) for r in authz.retention} == {
        ("data_transfers", "received_at", 7), ("security_events", "received_at", 30)}
    assert {(r.collection, r.field, r.days) for r in transactions.retention} == {
        ("status_events", "received_at", 14), ("meter_values", "received_at", 0)}


async def test_secantusdb_deletes_expired_documents(
        db: AsyncDatabase[dict[str, Any]]) -> None:
    """The server's TTL monitor runs once a minute: this waits for it (up to two)."""
    now = utcnow()
    await db["events"].insert_many([
        {"_id": "old", "received_at": now - timedelta(days=2)},
        {"_id": "new", "received_at": now},
        {"_id": "undated"}])
    await ensure_retention(db, (Retention("events", "received_at", 1),))

    async def old_gone() -> bool:
        return await db["events"].count_documents({"_id": "old"}) == 0

    await wait_for(old_gone, timeout=150, what="the TTL monitor")
    assert {d["_id"] async for d in db["events"].find()} == {"new", "undated"}


async def test_the_runtime_applies_retention_at_start_up() -> None:
    """Over the in-memory store (the real database: tests/integration/test_retention.py)."""
    runtime = memory_runtime(TRANSACTIONS, retention_status_events_days=3)
    consumers = await runtime.start()
    try:
        index = await ttl(runtime.store.db, "status_events")
        assert index is not None and index["expireAfterSeconds"] == 3 * 86_400
        assert await ttl(runtime.store.db, "meter_values") is None  # kept forever
    finally:
        runtime.stopping.set()
        await runtime.stop(consumers)
        await runtime.close()


class Refusing:
    """A database whose server refuses some index commands (what SecantusDB never does: an
    operator's index holding the key, a user without the collMod privilege)."""

    def __init__(self, *, create: int | None = None, coll_mod: int | None = None) -> None:
        self.indexes: dict[str, dict[str, Any]] = {}
        self.create_code, self.coll_mod_code = create, coll_mod
        self.calls: list[str] = []

    def __getitem__(self, name: str) -> Refusing:
        return self

    async def index_information(self) -> dict[str, Any]:
        return dict(self.indexes)

    async def create_index(self, key: list[tuple[str, int]], *, name: str,
                           expireAfterSeconds: int) -> str:
        self.calls.append("create")
        if self.create_code is not None:
            raise OperationFailure("refused", self.create_code)
        self.indexes[name] = {"key": key, "expireAfterSeconds": expireAfterSeconds}
        return name

    async def drop_index(self, name: str) -> None:
        self.calls.append("drop")
        del self.indexes[name]

    async def command(self, name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(name)
        if self.coll_mod_code is not None:
            raise OperationFailure("not authorized", self.coll_mod_code)
        return {"ok": 1}


async def test_without_the_collmod_privilege_the_index_is_made_again() -> None:
    db = Refusing(coll_mod=13)
    db.indexes[INDEX_NAME] = {"key": [("received_at", 1)], "expireAfterSeconds": 60}
    policy = (Retention("events", "received_at", 1),)
    assert await ensure_retention(db, policy) == {"events": "changed"}  # type: ignore[arg-type]
    assert db.calls == ["collMod", "drop", "create"]
    assert db.indexes[INDEX_NAME]["expireAfterSeconds"] == 86_400


async def test_a_refused_policy_is_logged_and_the_others_still_applied() -> None:
    db = Refusing(create=85)  # another index holds the key, under another name
    policies = (Retention("events", "received_at", 1), Retention("other", "at", 0))
    assert await ensure_retention(db, policies) == {  # type: ignore[arg-type]
        "events": "failed", "other": "none"}
