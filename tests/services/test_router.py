"""The router's one pipeline, with handlers that touch no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pymongo.errors import AutoReconnect

from services.envelope import ChargerCall
from services.errors import PropertyConstraintViolation, StoreUnavailable
from services.metrics import HANDLER_FAILURES
from services.ocpp16 import _fast_validator, call, call_result
from services.router import CallContext, Router


def message(action: str, payload: dict, answered: bool = False) -> ChargerCall:
    return ChargerCall(station="S", session="s1", unique_id="u1", action=action,
                       payload=payload, received_at=datetime(2026, 1, 1, tzinfo=UTC),
                       answered=answered)


async def test_dispatch_builds_typed_request_and_validated_reply() -> None:
    router = Router("test")
    seen: list[tuple[call.Authorize, CallContext]] = []

    @router.on("Authorize")
    async def authorize(request: call.Authorize, ctx: CallContext) -> call_result.Authorize:
        seen.append((request, ctx))
        return call_result.Authorize(id_tag_info={"status": "Accepted"})

    reply = (await router.dispatch(message("Authorize", {"idTag": "T"}))).reply
    assert reply is not None and reply.payload == {"idTagInfo": {"status": "Accepted"}}
    assert (reply.station, reply.session, reply.unique_id) == ("S", "s1", "u1")
    assert seen[0][0].id_tag == "T" and seen[0][1].station == "S"


async def test_ocpp_errors_become_callerrors_and_bad_responses_internal_errors() -> None:
    router = Router("test")

    @router.on("Authorize")
    async def refuse(request: call.Authorize, ctx: CallContext) -> None:
        raise PropertyConstraintViolation("nope")

    @router.on("Heartbeat")
    async def broken(request: call.Heartbeat, ctx: CallContext) -> dict:
        return {"currentTime": 12}

    reply = (await router.dispatch(message("Authorize", {"idTag": "T"}))).reply
    assert reply is not None
    assert (reply.error_code, reply.error_description) == ("PropertyConstraintViolation", "nope")
    reply = (await router.dispatch(message("Heartbeat", {}))).reply
    assert reply is not None and reply.error_code == "InternalError"
    reply = (await router.dispatch(message("MeterValues", {"connectorId": 1,
                                                           "meterValue": []}))).reply
    assert reply is not None and reply.error_code == "NotSupported"


async def test_answered_calls_get_no_reply_but_run() -> None:
    router = Router("test")
    ran: list[str] = []

    @router.on("Heartbeat")
    async def beat(request: call.Heartbeat, ctx: CallContext) -> call_result.Heartbeat:
        ran.append(ctx.station)
        return call_result.Heartbeat(current_time="2026-01-01T00:00:00Z")

    assert (await router.dispatch(message("Heartbeat", {}, answered=True))).reply is None
    assert ran == ["S"]


def test_only_charger_actions_can_be_routed() -> None:
    with pytest.raises(ValueError):
        Router("test").on("Reset")


async def test_events_travel_with_the_reply_and_a_retry_starts_afresh() -> None:
    router = Router("test")
    attempts: list[int] = []

    @router.on("Heartbeat")
    async def beat(request: call.Heartbeat, ctx: CallContext) -> call_result.Heartbeat:
        attempts.append(len(attempts))
        ctx.emit("station.seen", {"station": ctx.station, "attempt": len(attempts)})
        return call_result.Heartbeat(current_time="2026-01-01T00:00:00Z")

    first = await router.dispatch(message("Heartbeat", {}))
    second = await router.dispatch(message("Heartbeat", {}))
    assert [e.routing_key for e in first.events] == ["station.seen"]
    body = dict(first.events[0].body)
    event_id, event_at = body.pop("event_id"), body.pop("event_at")
    assert body == {"station": "S", "attempt": 1}
    assert len(event_id) == 32 and event_at.endswith("Z")
    assert [e.body["attempt"] for e in second.events] == [2]  # its own events only
    # the same call handled again emits the same fact: the same event id (consumers dedupe)
    assert second.events[0].body["event_id"] == event_id


def test_actions_know_their_lane() -> None:
    router = Router("test")

    @router.on("Authorize", lane="rpc")
    async def authorize(request: call.Authorize, ctx: CallContext) -> None:
        return None

    @router.on("Heartbeat")
    async def beat(request: call.Heartbeat, ctx: CallContext) -> None:
        return None

    assert router.lanes == {"Authorize": "rpc", "Heartbeat": "work"}
    assert router.actions == {"Authorize", "Heartbeat"}


@pytest.mark.parametrize(("payload", "code"), [
    ({"transactionId": {"$in": [12, 14]}, "meterStop": 0,
      "timestamp": "2026-01-01T00:00:00Z"}, "TypeConstraintViolation"),
    ({"transactionId": 12, "timestamp": "2026-01-01T00:00:00Z"},
     "OccurenceConstraintViolation"),
    ({"transactionId": 12, "meterStop": 0, "timestamp": "2026-01-01T00:00:00Z",
      "$where": "sleep(1000)"}, "FormationViolation"),
    ({"transactionId": 12, "meterStop": 0, "timestamp": "yesterday"},
     "TypeConstraintViolation"),
    ({"transactionId": 12, "meterStop": 0, "timestamp": "2026-01-01T00:00:00Z",
      "reason": "Because"}, "PropertyConstraintViolation"),
])
async def test_a_payload_that_breaks_the_schema_never_reaches_the_handler(
        payload: dict, code: str) -> None:
    """Whoever published it (the broker is not the gateway): the 1.6 CALLERROR instead."""
    router = Router("test")
    seen: list[call.StopTransaction] = []

    @router.on("StopTransaction")
    async def stop(request: call.StopTransaction, ctx: CallContext
                   ) -> call_result.StopTransaction:
        seen.append(request)
        return call_result.StopTransaction()

    dispatched = await router.dispatch(message("StopTransaction", payload))
    assert dispatched.reply is not None and dispatched.reply.error_code == code
    assert dispatched.reply.payload is None and dispatched.events == ()
    assert seen == []


async def test_an_answered_call_with_a_bad_payload_is_not_handled_either() -> None:
    router = Router("test")
    ran: list[str] = []

    @router.on("Heartbeat")
    async def beat(request: call.Heartbeat, ctx: CallContext) -> call_result.Heartbeat:
        ran.append(ctx.station)
        return call_result.Heartbeat(current_time="2026-01-01T00:00:00Z")

    dispatched = await router.dispatch(message("Heartbeat", {"extra": 1}, answered=True))
    assert dispatched.reply is None and ran == []


async def test_the_schemas_are_compiled_once_not_per_message() -> None:
    router = Router("test")

    @router.on("Heartbeat")
    async def beat(request: call.Heartbeat, ctx: CallContext) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time="2026-01-01T00:00:00Z")

    await router.dispatch(message("Heartbeat", {}))
    compiled = _fast_validator.cache_info().misses
    for _ in range(50):
        await router.dispatch(message("Heartbeat", {}))
    assert _fast_validator.cache_info().misses == compiled


async def test_a_handler_failure_retrying_cannot_mend_is_answered_internal_error(
        caplog: pytest.LogCaptureFixture) -> None:
    router = Router("test-failures")

    @router.on("Heartbeat")
    async def overflow(request: call.Heartbeat, ctx: CallContext) -> None:
        ctx.emit("station.seen", {"station": ctx.station})
        raise OverflowError("MongoDB can only handle up to 8-byte ints")

    counted = HANDLER_FAILURES.labels("test-failures", "Heartbeat", "OverflowError")
    before = counted._value.get()
    with caplog.at_level("ERROR", logger="gridlink.router"):
        first = await router.dispatch(message("Heartbeat", {}))
        second = await router.dispatch(message("Heartbeat", {}))
    for dispatched in (first, second):
        reply = dispatched.reply
        assert reply is not None and reply.error_code == "InternalError"
        assert reply.error_description == "a number in the call is too large to store"
        assert dispatched.events == ()  # its work did not finish: nothing to announce
    assert counted._value.get() == before + 2
    records = [r for r in caplog.records if r.name == "gridlink.router"]
    assert [getattr(r, "station", None) for r in records] == ["S", "S"]
    assert [r.exc_info is not None for r in records] == [True, False]  # one traceback


@pytest.mark.parametrize("exc", [StoreUnavailable("down"), AutoReconnect("lost")])
async def test_transient_failures_propagate_unanswered(exc: Exception) -> None:
    router = Router("test")

    @router.on("Heartbeat")
    async def down(request: call.Heartbeat, ctx: CallContext) -> None:
        raise exc

    with pytest.raises(type(exc)):
        await router.dispatch(message("Heartbeat", {}))
