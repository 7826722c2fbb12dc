"""Auth and scopes, problem documents, request ids, the audit trail, the docs page, and
`gridlink api-keys`."""

from __future__ import annotations

import json

import httpx
import pytest

from api import keys
from tests.helpers import ApiServer
from tests.processes import Stack, metric_value, wait_for

pytestmark = pytest.mark.integration


async def test_keys_are_checked_and_refusals_counted(stack: Stack, api: ApiServer) -> None:
    refusals = api.process.url("/metrics")
    before = await metric_value(refusals, 'gridlink_api_refusals_total{reason="invalid"}') or 0
    key_id, key = await keys.create_key(stack.db(), "to-revoke", ["read"])
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        good = await http.get("/api/v1/stations?limit=1",
                              headers={"Authorization": f"Bearer {key}"})
        await keys.revoke(stack.db(), key_id)
        revoked = await http.get("/api/v1/stations?limit=1",
                                 headers={"Authorization": f"Bearer {key}"})
        forged = await http.get("/api/v1/stations?limit=1",
                                headers={"Authorization": f"Bearer {key[:-4]}AAAA"})
        basic = await http.get("/api/v1/stations", headers={"Authorization": "Basic eDp5"})
    assert good.status_code == 200
    for refused in (revoked, forged, basic):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
    after = await metric_value(refusals, 'gridlink_api_refusals_total{reason="invalid"}')
    assert after == before + 2
    assert key not in api.process.output()  # never logged
    assert "peer" in api.process.output() and key_id in api.process.output()


async def test_scopes(api: ApiServer) -> None:
    async with api.client("read") as reader, api.client("commands") as commander, \
            api.client("admin") as admin:
        assert (await reader.get("/api/v1/id-tags")).status_code == 200
        assert (await reader.put("/api/v1/id-tags/SCOPE1", json={})).status_code == 403
        assert (await commander.get("/api/v1/commands")).status_code == 200  # implies read
        assert (await commander.put("/api/v1/id-tags/SCOPE1", json={})).status_code == 403
        assert (await admin.put("/api/v1/id-tags/SCOPE1", json={})).status_code == 201


async def test_every_error_is_a_problem_document(client: httpx.AsyncClient) -> None:
    no_route = await client.get("/api/v1/nothing-here")
    wrong_method = await client.delete("/api/v1/commands")
    bad_query = await client.get("/api/v1/transactions?active=maybe")
    bad_json = await client.put("/api/v1/id-tags/T1", content=b"{not json",
                                headers={"Content-Type": "application/json"})
    for answer, status in ((no_route, 404), (wrong_method, 405), (bad_query, 422),
                           (bad_json, 422)):
        assert answer.status_code == status
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem["status"] == status and problem["title"]
    assert bad_query.json()["errors"][0]["field"] == "query: active"


async def test_request_ids_are_echoed_or_made_and_audited(stack: Stack, api: ApiServer,
                                                          client: httpx.AsyncClient) -> None:
    mine = await client.get("/api/v1/stations?limit=1", headers={"X-Request-ID": "abc-123.x"})
    insane = await client.get("/api/v1/stations?limit=1",
                              headers={"X-Request-ID": "bad id\twith spaces" + "x" * 200})
    assert mine.headers["x-request-id"] == "abc-123.x"
    made = insane.headers["x-request-id"]
    assert made != "" and " " not in made and len(made) <= 128
    # The record is written as the response ends (after the client has it).
    await wait_for(lambda: stack.db().api_audit.find_one({"request_id": "abc-123.x"}),
                   timeout=10, what="the audit record")
    record = await stack.db().api_audit.find_one({"request_id": "abc-123.x"})
    assert record is not None
    assert record["key_id"] == api.key_ids["admin"] and record["method"] == "GET"
    assert record["route"] == "/api/v1/stations" and record["status"] == 200
    indexes = await stack.db().api_audit.index_information()
    assert indexes["gridlink_retention"]["expireAfterSeconds"] == 90 * 86400
    assert "abc-123.x" in api.process.output()  # logged


async def test_openapi_31_and_an_offline_docs_page(api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        spec = (await http.get("/openapi.json")).json()
        page = (await http.get("/docs")).text
        script = await http.get("/static-docs/swagger-ui-bundle.js")
    assert spec["openapi"].startswith("3.1")
    assert "/api/v1/stations/{station}/commands/{action}" in spec["paths"]
    assert "/static-docs/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    assert script.status_code == 200 and len(script.content) > 100_000


async def test_gridlink_api_keys_add_list_revoke(stack: Stack, api: ApiServer) -> None:
    code, out, err = await stack.cli("api-keys", "add", "ci-bot", "--scope", "read",
                                     "--json")
    assert code == 0, err
    made = json.loads(out)
    async with httpx.AsyncClient(base_url=api.base_url,
                                 headers={"Authorization": f"Bearer {made['key']}"}) as http:
        assert (await http.get("/api/v1/stations?limit=1")).status_code == 200
        code, out, err = await stack.cli("api-keys", "list", "--json")
        assert code == 0, err
        listed = {row["keyId"]: row for row in json.loads(out)}
        assert listed[made["keyId"]]["scopes"] == "read"
        assert made["key"] not in out
        code, _, err = await stack.cli("api-keys", "revoke", made["keyId"])
        assert code == 0, err
        assert (await http.get("/api/v1/stations?limit=1")).status_code == 401
    code, _, err = await stack.cli("api-keys", "revoke", "000000000000")
    assert code == 1 and err.strip() == "gridlink: no API key '000000000000'"
    code, _, err = await stack.cli("api-keys", "add", "x", "--scope", "root")
    assert code == 2 and "invalid choice" in err


async def test_a_body_larger_than_a_frame_is_refused(client: httpx.AsyncClient) -> None:
    huge = b'{"type": "' + b"x" * (1 << 20) + b'"}'
    answer = await client.post("/api/v1/stations/ANY/commands/Reset", content=huge,
                               headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert "GRIDLINK_MAX_FRAME_BYTES" in answer.json()["detail"]
