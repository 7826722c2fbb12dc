"""Stations, id tags, transactions and the read-only registries through the API: CRUD,
ETags, pagination, filters, activity."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from services.clock import iso, utcnow
from tests.charger import Charger
from tests.helpers import (
    ApiServer,
    add_station,
    fresh_tag,
    new_id,
    new_tag,
    start_transaction,
    stop_transaction,
)
from tests.processes import Stack

pytestmark = pytest.mark.integration


async def test_station_crud_with_etags(stack: Stack, client: httpx.AsyncClient) -> None:
    station = new_id("APIST")
    created = await client.put(f"/api/v1/stations/{station}",
                               json={"registration": "Pending", "securityProfile": 1})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["registration"] == "Pending" and body["securityProfile"] == 1
    assert len(body["generatedPassword"]) == 40 and body["passwordSet"] is True
    assert created.headers["location"] == f"/api/v1/stations/{station}"
    assert created.headers["cache-control"] == "no-store"
    stored = await stack.db().stations.find_one({"_id": station})
    assert stored["registration"] == "Pending"
    assert body["generatedPassword"] not in str(stored)  # only its hash

    got = await client.get(f"/api/v1/stations/{station}")
    etag = got.headers["etag"]
    assert got.json()["configuration"] is None and "generatedPassword" not in got.json()
    cached = await client.get(f"/api/v1/stations/{station}", headers={"If-None-Match": etag})
    assert cached.status_code == 304

    updated = await client.put(f"/api/v1/stations/{station}", json={"registration": "Accepted",
                                                                     "securityProfile": 1},
                               headers={"If-Match": etag})
    assert updated.status_code == 200 and updated.json()["registration"] == "Accepted"
    assert updated.json()["generatedPassword"] is None  # it had one: none generated
    stale = await client.put(f"/api/v1/stations/{station}", json={"registration": "Rejected"},
                             headers={"If-Match": etag})
    assert stale.status_code == 412
    assert (await stack.db().stations.find_one({"_id": station}))["registration"] == "Accepted"
    stale_delete = await client.delete(f"/api/v1/stations/{station}",
                                       headers={"If-Match": etag})
    assert stale_delete.status_code == 412
    deleted = await client.delete(f"/api/v1/stations/{station}",
                                  headers={"If-Match": updated.headers["etag"]})
    assert deleted.status_code == 204
    assert (await client.get(f"/api/v1/stations/{station}")).status_code == 404


async def test_bad_station_writes_are_refused(client: httpx.AsyncClient,
                                              api: ApiServer) -> None:
    station = new_id("APIBADST")
    unknown_field = await client.put(f"/api/v1/stations/{station}", json={"colour": "red"})
    bad_profile = await client.put(f"/api/v1/stations/{station}", json={"securityProfile": 7})
    short_key = await client.put(f"/api/v1/stations/{station}",
                                 json={"securityProfile": 1, "password": "short"})
    async with api.client("read") as reader:
        not_admin = await reader.put(f"/api/v1/stations/{station}", json={})
    assert unknown_field.status_code == 422 and \
        unknown_field.json()["errors"][0]["field"] == "body: colour"
    assert bad_profile.status_code == 422
    assert short_key.status_code == 422 and "password" in short_key.json()["detail"]
    assert not_admin.status_code == 403
    assert (await client.get(f"/api/v1/stations/{station}")).status_code == 404


async def test_a_connected_station_shows_connectors_configuration_and_activity(
        stack: Stack, client: httpx.AsyncClient) -> None:
    station = new_id("APILIVE")
    await add_station(stack, station)
    await stack.db().station_configuration.insert_one(
        {"_id": station, "keys": [{"key": "HeartbeatInterval", "value": "300",
                                   "readonly": False}]})
    before_etag = (await client.get(f"/api/v1/stations/{station}")).headers["etag"]
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        await charger.result("StatusNotification", {
            "connectorId": 1, "status": "Charging", "errorCode": "NoError",
            "timestamp": iso(utcnow())})
        tag = await fresh_tag(stack)
        transaction_id = await start_transaction(charger, tag)
        await charger.result("MeterValues", {"connectorId": 1, "transactionId": transaction_id,
                                             "meterValue": [{"timestamp": iso(utcnow()),
                                                             "sampledValue": [{"value": "42"}]}]})
        await stop_transaction(charger, transaction_id)
        got = await client.get(f"/api/v1/stations/{station}")
        detail, after_etag = got.json(), got.headers["etag"]
        activity = (await client.get(f"/api/v1/stations/{station}/activity")).json()
        transaction = (await client.get(f"/api/v1/transactions/{transaction_id}")).json()
        ended = (await client.get(f"/api/v1/transactions?station={station}&active=false")
                 ).json()["items"]
        by_tag = (await client.get(f"/api/v1/transactions?idTag={tag}")).json()["items"]
        later = iso(utcnow() + timedelta(hours=1))
        none_later = (await client.get("/api/v1/transactions",
                                       params={"station": station, "from": later})).json()
    assert detail["connected"] is True and detail["lastSeen"] is not None
    assert detail["connectors"] == [{"connectorId": 1, "status": "Charging",
                                     "errorCode": "NoError",
                                     "timestamp": detail["connectors"][0]["timestamp"]}]
    assert detail["configuration"] == {"HeartbeatInterval": "300"}
    # The ETag covers what operators edit, not what the station keeps changing.
    assert before_etag == after_etag
    kinds = [item["kind"] for item in activity["items"]]
    assert {"boot", "status", "transaction.started", "transaction.stopped"} <= set(kinds)
    stamps = [item["at"] for item in activity["items"]]
    assert stamps == sorted(stamps, reverse=True)
    assert transaction["id"] == transaction_id and transaction["meterStop"] == 100
    assert transaction["stoppedAt"] is not None and transaction["state"] == "stopped"
    assert [v["value"] for v in transaction["meterValues"]] == ["42"]
    assert [t["id"] for t in ended] == [transaction_id]
    assert [t["id"] for t in by_tag] == [transaction_id]
    assert none_later["items"] == []


async def test_pagination_walks_every_item_once(stack: Stack,
                                                client: httpx.AsyncClient) -> None:
    prefix = new_id("PG")
    ids = sorted(f"{prefix}-{i:02d}" for i in range(7))
    for station in ids:
        await add_station(stack, station)
    seen: list[str] = []
    url: str | None = "/api/v1/stations?limit=3"
    pages = 0
    while url:
        page = (await client.get(url)).json()
        assert len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        url = page["next"]
        pages += 1
    assert [s for s in seen if s.startswith(prefix)] == ids
    assert len(seen) == len(set(seen)) and pages >= 3
    too_many = await client.get("/api/v1/stations?limit=100000")
    garbage = await client.get("/api/v1/stations?cursor=not-a-cursor")
    assert too_many.status_code == 422 and garbage.status_code == 400
    assert garbage.headers["content-type"] == "application/problem+json"


async def test_id_tags_crud_block_and_parent(stack: Stack, client: httpx.AsyncClient) -> None:
    tag, parent = new_tag(), new_tag("P")
    expiry = iso(utcnow() + timedelta(days=30))
    created = await client.put(f"/api/v1/id-tags/{tag}", json={
        "status": "Accepted", "expiry": expiry, "parent": parent, "maxConcurrent": 2})
    assert created.status_code == 201, created.text
    assert created.json()["parent"] == parent and created.json()["maxConcurrent"] == 2
    blocked = await client.post(f"/api/v1/id-tags/{tag}/block",
                                headers={"If-Match": created.headers["etag"]})
    assert blocked.status_code == 200 and blocked.json()["status"] == "Blocked"
    assert (await stack.db().id_tags.find_one({"_id": tag}))["status"] == "Blocked"
    stale = await client.post(f"/api/v1/id-tags/{tag}/unblock",
                              headers={"If-Match": created.headers["etag"]})
    assert stale.status_code == 412
    unblocked = await client.post(f"/api/v1/id-tags/{tag}/unblock")
    assert unblocked.json()["status"] == "Accepted"
    assert unblocked.json()["expiry"].startswith(expiry[:16])  # kept
    assert unblocked.json()["maxConcurrent"] == 2
    own_parent = await client.put(f"/api/v1/id-tags/{tag}", json={"parent": tag})
    too_long = await client.put(f"/api/v1/id-tags/{'x' * 21}", json={})
    assert own_parent.status_code == 422 and too_long.status_code == 422
    assert (await client.delete(f"/api/v1/id-tags/{tag}")).status_code == 204
    assert (await client.get(f"/api/v1/id-tags/{tag}")).status_code == 404


async def test_registries_list_what_is_stored(stack: Stack, client: httpx.AsyncClient) -> None:
    station = new_id("APIREG")
    await stack.db().reservations.insert_one({
        "_id": 987654, "station": station, "connector": 1, "id_tag": "T1",
        "status": "Accepted", "expiry": utcnow()})
    await stack.db().firmware_jobs.insert_one({"_id": f"job-{station}", "station": station,
                                               "status": "Downloading", "token": "secret"})
    reservations = (await client.get(f"/api/v1/reservations?station={station}")).json()
    jobs = (await client.get(f"/api/v1/firmware/jobs?station={station}")).json()
    for path in ("charging-profiles", "station-groups", "diagnostics/jobs", "logs/jobs",
                 "signed-firmware/jobs", "firmware/files", "diagnostics/files", "logs/files"):
        answer = await client.get(f"/api/v1/{path}?limit=2")
        assert answer.status_code == 200 and "items" in answer.json(), path
    assert reservations["items"][0]["id"] == 987654
    assert reservations["items"][0]["idTag"] == "T1"
    assert jobs["items"] == [{"id": f"job-{station}", "station": station,
                              "status": "Downloading"}]  # the token is not shown


async def test_station_groups_are_edited_as_the_cli_does(stack: Stack,
                                                         client: httpx.AsyncClient) -> None:
    name, station = new_id("GRP"), new_id("APIGRP")
    await add_station(stack, station)
    created = await client.put(f"/api/v1/station-groups/{name}",
                               json={"unit": "A", "limit": 64, "phases": 3})
    assert created.status_code == 201, created.text
    assigned = await client.post(f"/api/v1/station-groups/{name}/members",
                                 json={"members": [f"{station}:1"], "maxCurrent": 32},
                                 headers={"If-Match": created.headers["etag"]})
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["members"][0] == {"station": station, "connector": 1,
                                             "maxCurrent": 32, "minCurrent": None,
                                             "phases": None}
    stored = await stack.db().station_groups.find_one({"_id": name})
    assert stored["limit"] == 64.0 and stored["members"][0]["max_current"] == 32
    other = new_id("GRP2")
    await client.put(f"/api/v1/station-groups/{other}", json={"unit": "W", "limit": 11000})
    clash = await client.post(f"/api/v1/station-groups/{other}/members",
                              json={"members": [station]})
    unknown = await client.post(f"/api/v1/station-groups/{other}/members",
                                json={"members": ["NO-SUCH-STATION"]})
    bad = await client.put(f"/api/v1/station-groups/{other}", json={"unit": "V", "limit": 1})
    stale = await client.put(f"/api/v1/station-groups/{name}", json={"unit": "A", "limit": 1},
                             headers={"If-Match": created.headers["etag"]})
    assert clash.status_code == 409 and "already" in clash.json()["detail"]
    assert unknown.status_code == 404 and bad.status_code == 422 and stale.status_code == 412
    removed = await client.delete(f"/api/v1/station-groups/{name}/members/{station}:1")
    assert removed.status_code == 200 and removed.json()["members"] == []
    again = await client.delete(f"/api/v1/station-groups/{name}/members/{station}:1")
    assert again.status_code == 404
    assert (await client.delete(f"/api/v1/station-groups/{name}")).status_code == 204
    assert (await client.get(f"/api/v1/station-groups/{name}")).status_code == 404
    code, out, err = await stack.cli("groups", "list", "--json")
    assert code == 0 and other in out and name not in out, err
