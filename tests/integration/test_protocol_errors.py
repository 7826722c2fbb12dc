"""Bad frames get the exact OCPP 1.6 error codes, and the session stays usable."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.charger import Charger, now
from tests.helpers import add_station, new_id
from tests.processes import Stack


def basic(user: str, secret: str) -> dict[str, str]:
    """An HTTP Basic Authorization header."""
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


pytestmark = pytest.mark.integration


@pytest.fixture
async def charger(stack: Stack):  # type: ignore[no-untyped-def]
    station = new_id("ERR")
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        await charger.boot()
        yield charger


@pytest.mark.parametrize(("frame", "code"), [
    ('[2, "e1", "StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0}]',
     "OccurenceConstraintViolation"),
    ('[2, "e1", "StartTransaction", {"connectorId": "one", "idTag": "A", "meterStart": 0,'
     ' "timestamp": "2026-11-23T10:00:00Z"}]', "TypeConstraintViolation"),
    ('[2, "e1", "Authorize", {"idTag": "THIS-TAG-IS-LONGER-THAN-20"}]', "TypeConstraintViolation"),
    ('[2, "e1", "StatusNotification", {"connectorId": 1, "errorCode": "NoError",'
     ' "status": "Exploded"}]', "PropertyConstraintViolation"),
    ('[2, "e1", "Heartbeat", {"unexpected": true}]', "FormationViolation"),
    ('[2, "e1", "Heartbeat", null]', "FormationViolation"),
    ('[2, "e1", "Heartbeat"]', "ProtocolError"),
    ('[2, "e1", "FlyToTheMoon", {}]', "NotImplemented"),
    ('[2, "e1", "Reset", {"type": "Hard"}]', "NotSupported"),
    ('[2, "e1", "CertificateSigned", {"certificateChain": "x"}]', "NotSupported"),
    ('[2, "e1", "MeterValues", {"connectorId": 1, "meterValue": [{"timestamp":'
     ' "2026-01-01T00:00:00Z", "sampledValue": [{"value": "1"}]}], "connectorId": 2}]',
     "FormationViolation"),
    ('[2, "e1", "DataTransfer", {"vendorId": "v", "data": NaN}]', "FormationViolation"),
])
async def test_bad_call_gets_the_1_6_error_code(charger: Charger, frame: str, code: str) -> None:
    answer = await charger.send_raw(frame, answer_id="e1")
    assert answer is not None
    assert answer[:3] == [4, "e1", code]
    assert isinstance(answer[3], str) and isinstance(answer[4], dict)
    # The session is still usable afterwards.
    assert "currentTime" in await charger.result("Heartbeat", {})


@pytest.mark.parametrize("frame", ["this is not json", "{\"an\": \"object\"}", "42", "[]"])
async def test_non_json_or_non_array_gets_a_callerror(charger: Charger, frame: str) -> None:
    await charger.ws.send(frame)
    answer = await asyncio.wait_for(charger.unsolicited.get(), 10)
    assert answer[0] == 4 and answer[1] == "-1" and answer[2] == "FormationViolation"
    assert "currentTime" in await charger.result("Heartbeat", {})


async def test_unknown_message_type_is_ignored(charger: Charger) -> None:
    await charger.ws.send('[7, "x1", "Heartbeat", {}]')
    answer = await charger.result("Heartbeat", {}, unique_id="after-7")
    assert "currentTime" in answer
    # Nothing at all was sent for the ignored frame.
    assert charger.unsolicited.empty()


async def test_duplicate_call_id_in_progress_is_a_protocol_error(charger: Charger) -> None:
    tag = uuid.uuid4().hex[:8]
    payload = {"connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": now()}
    first = asyncio.create_task(charger.call("StartTransaction", payload, unique_id="dup"))
    await asyncio.sleep(0)  # both frames leave before either is answered
    await charger.ws.send(json.dumps([2, "dup", "StartTransaction", payload]))
    answers = [await first, await asyncio.wait_for(charger.unsolicited.get(), 10)]
    codes = sorted(a[0] for a in answers)
    assert codes == [3, 4]
    error = next(a for a in answers if a[0] == 4)
    assert error[2] == "ProtocolError"


async def test_oversized_frame_closes_only_that_connection(stack: Stack) -> None:
    big, small = new_id("BIG"), new_id("SMALL")
    await add_station(stack, big)
    await add_station(stack, small)
    async with Charger.connect(stack.gateway_url, small) as bystander:
        await bystander.boot()
        async with connect(f"{stack.gateway_url}/{big}", subprotocols=["ocpp1.6"],
                           max_size=None) as ws:
            huge = json.dumps([2, "big", "DataTransfer", {"vendorId": "v",
                                                          "data": "x" * (1 << 20)}])
            await ws.send(huge)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert "currentTime" in await bystander.result("Heartbeat", {})


async def test_unknown_station_is_refused_with_404(stack: Stack) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{stack.gateway_url}/nobody-{uuid.uuid4().hex}",
                           subprotocols=["ocpp1.6"]):
            pass
    assert refused.value.response.status_code == 404


@pytest.mark.parametrize("path", ["", "a/b", "x" * 49, "%ff%fe"])
async def test_bad_identity_is_refused(stack: Stack, path: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{stack.gateway_url}/{path}", subprotocols=["ocpp1.6"]):
            pass
    assert refused.value.response.status_code in (400, 404)


async def test_identity_is_percent_decoded(stack: Stack) -> None:
    station = f"RDAM {uuid.uuid4().hex[:6]}"
    await add_station(stack, station)
    async with Charger.connect(stack.gateway_url, station) as charger:
        assert (await charger.boot())["status"] == "Accepted"
    assert await stack.db().stations.find_one({"_id": station, "last_boot": {"$ne": None}})


async def test_client_without_ocpp16_subprotocol_is_closed(stack: Stack) -> None:
    station = new_id()
    await add_station(stack, station)
    async with connect(f"{stack.gateway_url}/{station}", subprotocols=["ocpp2.0.1"]) as ws:
        assert ws.subprotocol is None
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002


async def test_unknown_station_is_registered_when_allowed(stack: Stack) -> None:
    gateway_env_unchanged = stack.gateways[0]
    authz = stack.spawn("authz", accept_unknown_stations="true", namespace=stack.namespace)
    await stack.wait_ready(authz)
    try:
        station = new_id("AUTO")
        # Either authz replica may answer; retry until the permissive one admits it.
        for _ in range(20):
            try:
                async with Charger.connect(stack.gateway_url, station) as charger:
                    assert (await charger.boot())["status"] == "Accepted"
                    break
            except InvalidStatus as exc:
                assert exc.response.status_code == 404
        else:
            raise AssertionError("never admitted by the permissive authz")
        assert (await stack.db().stations.find_one({"_id": station}))["auto_registered"]
    finally:
        assert await stack.stop_process(authz) == 0
    assert await gateway_env_unchanged.ready()


async def test_station_with_password_needs_basic_auth(stack: Stack) -> None:
    """Security profile 1: the password is checked before the upgrade (401 otherwise)."""

    station = new_id("AUTH")
    password = "0123456789abcdef0123"
    await add_station(stack, station, password=password)

    for headers in ({}, basic(station, "wrong"), basic("someone-else", password)):
        with pytest.raises(InvalidStatus) as refused:
            async with Charger.connect(stack.gateway_url, station, additional_headers=headers):
                pass
        assert refused.value.response.status_code == 401
        assert refused.value.response.headers["WWW-Authenticate"].startswith("Basic")
    async with Charger.connect(stack.gateway_url, station,
                               additional_headers=basic(station, password)) as charger:
        assert (await charger.boot())["status"] == "Accepted"
    stored = await stack.db().stations.find_one({"_id": station})
    assert password not in str(stored)  # only a salted hash is kept


async def test_a_burst_of_handshakes_is_admitted_in_batches_with_each_answer_right(
        stack: Stack) -> None:
    """A reconnect storm in miniature: 60 chargers at the same instant (registered, with and
    without the right password, unknown); each gets its own answer, and authz was asked
    far fewer than 60 times."""
    from datetime import UTC, datetime

    from services import stations
    from tests.processes import metric_value

    password = "burst-password-0123"
    plain = [new_id("BURST") for _ in range(30)]
    locked = [new_id("LOCKED") for _ in range(20)]
    unknown = [new_id("NOBODY") for _ in range(10)]
    db = stack.db()
    now = datetime.now(UTC)
    for station in plain:
        await stations.add_station(db, station, registration="Accepted", password=None,
                                   now=now)
    hashed = stations.hash_password(password)
    await db[stations.COLLECTION].insert_many(
        [{"_id": s, "registration": "Accepted", "password_hash": hashed} for s in locked])
    metrics_url = stack.gateways[0].url("/metrics", stack.gateways[0].metrics_port)
    sample = "gridlink_gateway_admission_batch_size_count"
    questions_before = await metric_value(metrics_url, sample)
    assert questions_before is not None

    async def attempt(station: str, headers: dict[str, str]) -> int:
        try:
            async with connect(f"{stack.gateway_url}/{station}", subprotocols=["ocpp1.6"],
                               additional_headers=headers, open_timeout=15):
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    tries = ([(s, {}) for s in plain] + [(s, basic(s, password)) for s in locked[:10]]
             + [(s, basic(s, "wrong")) for s in locked[10:]] + [(s, {}) for s in unknown])
    codes = await asyncio.gather(*(attempt(s, h) for s, h in tries))
    assert codes == [101] * 40 + [401] * 10 + [404] * 10
    questions = await metric_value(metrics_url, sample)
    assert questions is not None and 1 <= questions - questions_before < 30
