"""The router's one pipeline, with handlers that touch no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.envelope import ChargerCall
from services.errors import PropertyConstraintViolation
from services.ocpp16 import call, call_result
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

    reply = await router.dispatch(message("Authorize", {"idTag": "T"}))
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

    reply = await router.dispatch(message("Authorize", {"idTag": "T"}))
    assert reply is not None
    assert (reply.error_code, reply.error_description) == ("PropertyConstraintViolation", "nope")
    reply = await router.dispatch(message("Heartbeat", {}))
    assert reply is not None and reply.error_code == "InternalError"
    reply = await router.dispatch(message("MeterValues", {"connectorId": 1, "meterValue": []}))
    assert reply is not None and reply.error_code == "NotSupported"


async def test_answered_calls_get_no_reply_but_run() -> None:
    router = Router("test")
    ran: list[str] = []

    @router.on("Heartbeat")
    async def beat(request: call.Heartbeat, ctx: CallContext) -> call_result.Heartbeat:
        ran.append(ctx.station)
        return call_result.Heartbeat(current_time="2026-01-01T00:00:00Z")

    assert await router.dispatch(message("Heartbeat", {}, answered=True)) is None
    assert ran == ["S"]


def test_only_charger_actions_can_be_routed() -> None:
    with pytest.raises(ValueError):
        Router("test").on("Reset")
