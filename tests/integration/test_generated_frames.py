"""Generated frames for every charger-initiated action, through a real gateway into the real
services (Hypothesis): schema-valid payloads straight from the ocpp wheel's 1.6 schemas,
and schema-invalid ones made from them (a required field dropped, a field of the wrong type,
an unknown field, no object at all, out-of-range integers and dates). Whatever arrives:

- every CALL gets exactly one answer, a CALLRESULT or a CALLERROR with its id;
- nothing is dead-lettered, and no component logs a traceback;
- every StartTransaction answered with a transactionId is stored once, under that id, for
  the station that sent it.

The stack is this module's own (its own namespace, database and logs), so that the logs and
the dead-letter queue hold only what these frames caused.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services import ocpp16
from services.errors import OCPP16_ERROR_CODES
from services.topology import Topology
from tests.charger import Charger
from tests.helpers import add_station, delete_namespace
from tests.processes import Stack

STATIONS = 3
SCHEMAS = resources.files("ocpp") / "v16" / "schemas"
ACTIONS = sorted(ocpp16.CHARGER_ACTIONS)


def schema_of(action: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{action}.json").read_text())  # type: ignore[no-any-return]


DATE_TIMES = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1),
                          timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)),
                                                     timezone(timedelta(hours=-5))])
                          ).map(lambda moment: moment.isoformat())


def from_schema(schema: dict[str, Any], root: dict[str, Any] | None = None
                ) -> st.SearchStrategy[Any]:
    """Instances of a 1.6 schema (draft 4, the keywords those schemas use): every required
    field, any of the optional ones, values of the declared type within maxLength, enum,
    multipleOf and minItems. Integers are unbounded, as the schemas say."""
    root = root or schema
    if "$ref" in schema:
        return from_schema(root["definitions"][schema["$ref"].rsplit("/", 1)[-1]], root)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {name: from_schema(inner, root) for name, inner in properties.items()
             if name in required},
            optional={name: from_schema(inner, root) for name, inner in properties.items()
                      if name not in required})
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), root),
                        min_size=schema.get("minItems", 0),
                        max_size=max(schema.get("minItems", 0), 3))
    if kind == "string":
        if schema.get("format") == "date-time":
            return DATE_TIMES
        if schema.get("format") == "uri":
            return st.sampled_from(["http://example.com/f", "ftp://u:p@host/x"])
        return st.text(max_size=min(schema.get("maxLength", 50), 50))
    if kind == "integer":
        return st.integers()
    if kind == "number":
        if "multipleOf" in schema:
            step = Decimal(str(schema["multipleOf"]))
            return st.integers(-10_000, 10_000).map(lambda n: float(n * step))
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    return ANY_JSON


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30),
                         st.floats(allow_nan=False, allow_infinity=False))
ANY_JSON = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)),
    max_leaves=8)
EDGE_INTEGERS = st.sampled_from([-(2 ** 31) - 1, 2 ** 31, 2 ** 63 - 1, 2 ** 63, 2 ** 64,
                                 -(2 ** 63) - 1, 10 ** 30])
EDGE_DATES = st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                              "0000-01-01T00:00:00Z", "2026-13-01T00:00:00Z",
                              "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "yesterday"])


@st.composite
def mutated(draw: st.DrawFn, action: str) -> Any:
    """A payload for ``action`` that breaks its schema or GridLink's bounds in one place."""
    payload = draw(from_schema(schema_of(action)))
    how = draw(st.sampled_from(["drop", "retype", "extra", "not_object", "edge"]))
    if how == "not_object":
        return draw(st.one_of(st.lists(JSON_SCALARS, max_size=2), JSON_SCALARS))
    if how == "extra":
        payload[draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in payload))] = \
            draw(JSON_SCALARS)
        return payload
    if not payload:
        return draw(st.lists(JSON_SCALARS, max_size=2))
    paths = list(_paths(payload))
    path = draw(st.sampled_from(paths))
    parent, key = _walk(payload, path)
    if how == "drop" and isinstance(parent, dict):
        del parent[key]
    elif how == "retype":
        parent[key] = draw(ANY_JSON.filter(lambda v: type(v) is not type(parent[key])))
    elif isinstance(parent[key], int) and not isinstance(parent[key], bool):
        parent[key] = draw(EDGE_INTEGERS)
    elif isinstance(parent[key], str):
        parent[key] = draw(EDGE_DATES)
    else:
        parent[key] = draw(EDGE_INTEGERS)
    return payload


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Any:
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, inner in items:
        yield (*prefix, key)
        if isinstance(inner, dict | list) and inner:
            yield from _paths(inner, (*prefix, key))


def _walk(value: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    for key in path[:-1]:
        value = value[key]
    return value, path[-1]


@st.composite
def call(draw: st.DrawFn) -> tuple[str, Any]:
    action = draw(st.sampled_from(ACTIONS))
    if draw(st.integers(0, 2)) == 0:
        return action, draw(mutated(action))
    return action, draw(from_schema(schema_of(action)))


@pytest.fixture(scope="module")
async def own_stack(amqp_url: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
                    ) -> AsyncIterator[Stack]:
    namespace = f"glgen-{uuid.uuid4().hex[:8]}"
    stack = Stack(amqp_url=amqp_url, mongo_url=mongo_url, namespace=namespace,
                  database=namespace.replace("-", "_"),
                  logs=Path(tmp_path_factory.mktemp("generated-frames-logs")),
                  # this test sends as fast as it is answered; the rate limit has its own tests
                  extra_env={"GRIDLINK_STATION_CALLS_PER_S": "10000",
                             "GRIDLINK_STATION_CALL_BURST": "10000"})
    try:
        await stack.start_services()
        await stack.start_gateway()
        yield stack
    finally:
        await stack.stop()
        await delete_namespace(amqp_url, namespace)


@pytest.fixture(scope="module")
async def chargers(own_stack: Stack) -> AsyncIterator[list[tuple[str, Charger]]]:
    connected: list[tuple[str, Charger]] = []
    contexts = []
    for number in range(STATIONS):
        station = f"GEN-{uuid.uuid4().hex[:6]}-{number}"
        await add_station(own_stack, station)
        context = Charger.connect(own_stack.gateway_url, station)
        charger = await context.__aenter__()
        contexts.append(context)
        assert (await charger.boot())["status"] == "Accepted"
        connected.append((station, charger))
    yield connected
    for context in contexts:
        await context.__aexit__(None, None, None)


ANSWERED_STARTS: list[tuple[str, int]] = []
ANSWER_TIMEOUT_S = 8  # generous: an answer takes milliseconds; none comes if one is lost


@pytest.mark.timeout(900)

@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(which=st.integers(0, STATIONS - 1), calls=st.lists(call(), min_size=1, max_size=4))
async def test_every_generated_call_gets_exactly_one_answer(
        chargers: list[tuple[str, Charger]], which: int, calls: list[tuple[str, Any]]) -> None:
    station, charger = chargers[which]
    for action, payload in calls:
        unique_id = uuid.uuid4().hex
        try:
            frame = await charger.send_raw(json.dumps([2, unique_id, action, payload]),
                                           unique_id, timeout=ANSWER_TIMEOUT_S)
        except TimeoutError:
            raise AssertionError(f"no answer to {action} {payload!r}") from None
        assert frame is not None and frame[0] in (3, 4) and frame[1] == unique_id, frame
        if frame[0] == 4:
            assert frame[2] in OCPP16_ERROR_CODES, frame
        if frame[0] == 3 and action == "StartTransaction":
            ANSWERED_STARTS.append((station, frame[2]["transactionId"]))
        # the answer is the last word on this id: a Heartbeat round trip later, no other
        assert (await charger.result("Heartbeat", {}))["currentTime"]
        assert charger.unsolicited.empty(), charger.unsolicited.get_nowait()


async def test_afterwards_nothing_dead_lettered_no_traceback_every_start_stored_once(
        own_stack: Stack, amqp_url: str) -> None:
    assert ANSWERED_STARTS, "the generated frames held no answered StartTransaction"
    db = own_stack.db()
    for station, transaction_id in ANSWERED_STARTS:
        stored = await db.transactions.find({"_id": transaction_id}).to_list()
        assert [doc["station"] for doc in stored] == [station], transaction_id
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(Topology(own_stack.namespace).dead_letter,
                                            passive=True)
        assert queue.declaration_result.message_count == 0
    tracebacks = [(log.name, line) for log in own_stack.logs.glob("*.log")
                  for line in log.read_text(errors="replace").splitlines()
                  if "Traceback" in line]
    assert tracebacks == []
