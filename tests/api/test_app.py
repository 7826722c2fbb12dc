"""The application without the stack: parts (routers, mounts), the docs page, probes,
problem documents for routing errors; and the pure pieces (keys, cursors)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from bson import ObjectId
from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse

from api import keys, pagination
from api.app import create_app
from api.parts import ApiPart
from api.problems import Problem
from api.server import make_context
from services.settings import Settings


@pytest.fixture
async def app() -> AsyncIterator[FastAPI]:
    extra = APIRouter()

    @extra.get("/things")
    async def things() -> dict[str, str]:
        return {"from": "a part"}

    @extra.get("/stored")
    async def stored() -> dict[str, str]:
        found = await context.db["anything"].find_one({})
        return {"found": str(found)}

    page_router = APIRouter()

    @page_router.get("/page", include_in_schema=False)
    async def page() -> PlainTextResponse:
        return PlainTextResponse("a page")

    context = make_context(Settings(mongo_url="mongodb://127.0.0.1:1/"))  # nothing listens
    application = create_app(context, [ApiPart(name="x", router=extra, root_router=page_router)])
    yield application
    await context.store.close()


async def test_parts_are_included_where_they_say(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as http:
        assert (await http.get("/api/v1/things")).json() == {"from": "a part"}
        assert (await http.get("/page")).text == "a page"
        assert (await http.get("/healthz")).text == "ok\n"
        not_ready = await http.get("/readyz")
        assert not_ready.status_code == 503 and "rabbitmq" in not_ready.text
        missing = await http.get("/nothing")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.headers["x-request-id"]
        assert "/api/v1/things" in (await http.get("/openapi.json")).json()["paths"]
        unreachable = await http.get("/api/v1/stored")
        assert unreachable.status_code == 503 and unreachable.headers["retry-after"] == "5"
        assert unreachable.headers["content-type"] == "application/problem+json"


def test_keys_scopes_and_form() -> None:
    reader = keys.ApiKey("k", "n", frozenset({"read"}))
    commander = keys.ApiKey("k", "n", frozenset({"commands"}))
    admin = keys.ApiKey("k", "n", frozenset({"admin"}))
    assert reader.allows("read") and not reader.allows("commands")
    assert commander.allows("read") and commander.allows("commands")
    assert not commander.allows("admin")
    assert all(admin.allows(scope) for scope in keys.SCOPES)
    assert keys.check_scopes(["admin", "read", "read"]) == ["read", "admin"]
    with pytest.raises(ValueError, match="root"):
        keys.check_scopes(["root"])
    with pytest.raises(ValueError):
        keys.check_scopes([])
    assert keys.key_id_of("glk_0123456789ab_" + "A" * 43) == "0123456789ab"
    assert keys.key_id_of("glk_0123456789ab_short") is None


def test_cursors_round_trip_and_refuse_forgeries() -> None:
    moment, oid = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), ObjectId()
    cursor = pagination._encode([moment, oid, "CP-1", 7])
    assert pagination._decode(cursor, 4) == [moment, oid, "CP-1", 7]
    for forged in ("!!!", pagination._encode([{"$gt": ""}]), pagination._encode([1, 2])):
        with pytest.raises(Problem) as refused:
            pagination._decode(forged, 1)
        assert refused.value.status == 400
    assert pagination._after([("created_at", -1), ("_id", -1)], [moment, "x"]) == {
        "$or": [{"created_at": {"$lt": moment}},
                {"created_at": moment, "_id": {"$lt": "x"}}]}
