"""Command requests from other services, charger outcomes, deadlines, status notifications.

A request is validated (action, 1.6 schema, known station) before it is recorded; an
invalid one is answered ``invalid`` and nothing reaches a charger. A recorded command is
published to the charger's routing key with ``mandatory``: when no gateway holds the
station the broker returns it and the command ends ``offline``. The gateway sends the
charger's CALLRESULT/CALLERROR (or a timeout) back as a :class:`CallOutcome`; the result is
stored and published to every requester's ``reply_to`` and as event ``command.<status>``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from commands.repository import DIAGNOSTICS_STATUS, FIRMWARE_STATUS, CommandRepository
from services import ocpp16
from services.bus import Unroutable, decode_json
from services.envelope import (
    FINAL_STATUSES,
    CallOutcome,
    CommandRequest,
    CommandResult,
    CsmsCall,
)
from services.errors import OcppError
from services.metrics import COMMANDS
from services.ocpp16 import call, call_result, utcnow
from services.router import CallContext, Router
from services.runtime import ServiceRuntime

log = logging.getLogger("gridlink.commands")

DEADLINE_GRACE_S = 5.0
# CALLRESULT statuses that mean the charger declined the request.
_DECLINED = {"Rejected", "NotSupported", "Failed", "UnknownMessageId", "UnknownVendorId",
             "NotImplemented", "VersionMismatch", "Occupied", "Faulted", "Unavailable",
             "UnlockFailed"}


def build_router(repo: CommandRepository) -> Router:
    router = Router("commands")

    @router.on("FirmwareStatusNotification")
    async def firmware_status(request: call.FirmwareStatusNotification, ctx: CallContext
                              ) -> call_result.FirmwareStatusNotification:
        await repo.record_notification(FIRMWARE_STATUS, ctx.station, request.status,
                                       ctx.received_at, ctx.unique_id)
        return call_result.FirmwareStatusNotification()

    @router.on("DiagnosticsStatusNotification")
    async def diagnostics_status(request: call.DiagnosticsStatusNotification, ctx: CallContext
                                 ) -> call_result.DiagnosticsStatusNotification:
        await repo.record_notification(DIAGNOSTICS_STATUS, ctx.station, request.status,
                                       ctx.received_at, ctx.unique_id)
        return call_result.DiagnosticsStatusNotification()

    return router


def result_of(document: dict[str, Any]) -> CommandResult:
    return CommandResult(
        command_id=document["_id"], station=document["station"], action=document["action"],
        status=document["status"], response=document.get("response"),
        error_code=document.get("error_code"),
        error_description=document.get("error_description"),
        at=document.get("updated_at") or document["created_at"],
    )


async def publish_result(runtime: ServiceRuntime, result: CommandResult,
                         reply_to: list[str]) -> None:
    body = result.to_bytes()
    for queue in reply_to:
        await runtime.bus.publish("", queue, body, correlation_id=result.command_id,
                                  persistent=False)
    await runtime.bus.publish(runtime.topology.events, f"command.{result.status}", body)
    if result.status in FINAL_STATUSES:
        COMMANDS.labels(result.action, result.status).inc()


async def _finish(runtime: ServiceRuntime, command_id: str, status: str,
                  fields: dict[str, Any] | None = None) -> None:
    repo: CommandRepository = runtime.state["repo"]
    document = await runtime.with_store(
        lambda: repo.transition(command_id, status, utcnow(), fields)
    )
    if document is not None:  # None: already final (a late or repeated outcome)
        log.info("command finished", extra={"station": document["station"],
                                            "command_id": command_id, "status": status})
        await publish_result(runtime, result_of(document), document.get("reply_to", []))


async def handle_request(runtime: ServiceRuntime, message: AbstractIncomingMessage) -> None:
    repo: CommandRepository = runtime.state["repo"]
    request: CommandRequest = decode_json(message, CommandRequest)
    reply_to = request.reply_to or message.reply_to
    now = utcnow()

    async def refuse(code: str, description: str) -> None:
        result = CommandResult(command_id=request.command_id, station=request.station,
                               action=request.action, status="invalid", error_code=code,
                               error_description=description, at=now)
        await publish_result(runtime, result, [reply_to] if reply_to else [])

    try:
        ocpp16.check_csms_call(request.action, request.payload)
    except OcppError as exc:
        await refuse(exc.code, exc.description)
        return
    if not await runtime.with_store(lambda: repo.station_exists(request.station)):
        await refuse("UnknownStation", f"unknown station {request.station!r}")
        return
    timeout = request.timeout_s or runtime.settings.command_timeout_s
    document = {
        "_id": request.command_id, "station": request.station, "action": request.action,
        "payload": request.payload, "status": "queued", "timeout_s": timeout,
        "reply_to": [reply_to] if reply_to else [], "created_at": now,
        "deadline": now + timedelta(seconds=timeout + DEADLINE_GRACE_S),
        "history": [{"status": "queued", "at": now}],
    }
    created = await runtime.with_store(lambda: repo.create(document))
    if created is None:  # the same command_id again: it runs once, everyone gets the outcome
        if reply_to:  # register first, then look: the outcome cannot slip between the two
            await runtime.with_store(lambda: repo.add_waiter(request.command_id, reply_to))
        existing = await runtime.with_store(lambda: repo.get(request.command_id))
        if existing is None:
            return
        if existing["status"] in FINAL_STATUSES:
            await publish_result(runtime, result_of(existing), [reply_to] if reply_to else [])
            return
        if existing["status"] != "queued" or not message.redelivered:
            return  # in progress: the outcome reaches every waiter
        document = existing  # we crashed between recording and sending: send now
    await _send(runtime, document)


async def _send(runtime: ServiceRuntime, document: dict[str, Any]) -> None:
    repo: CommandRepository = runtime.state["repo"]
    csms_call = CsmsCall(command_id=document["_id"], station=document["station"],
                         action=document["action"], payload=document["payload"],
                         timeout_s=document["timeout_s"])
    try:
        await runtime.bus.publish(runtime.topology.stations, document["station"],
                                  csms_call.to_bytes(), mandatory=True, persistent=False)
    except Unroutable:
        await _finish(runtime, document["_id"], "offline", {
            "error_description": "station offline: no gateway holds a connection to it"})
        return
    await runtime.with_store(
        lambda: repo.transition(document["_id"], "sent", utcnow(), from_statuses=["queued"])
    )


async def handle_outcome(runtime: ServiceRuntime, message: AbstractIncomingMessage) -> None:
    outcome: CallOutcome = decode_json(message, CallOutcome)
    if outcome.status == "result":
        declined = (outcome.payload or {}).get("status") in _DECLINED
        await _finish(runtime, outcome.command_id, "rejected" if declined else "accepted",
                      {"response": outcome.payload})
    elif outcome.status == "timeout":
        await _finish(runtime, outcome.command_id, "timeout", {
            "error_description": "the charger did not answer in time"})
    elif outcome.status == "closed":
        await _finish(runtime, outcome.command_id, "offline", {
            "error_description": "the connection closed before the charger answered"})
    else:  # callerror, or an answer that is not valid OCPP (invalid)
        await _finish(runtime, outcome.command_id, "callerror", {
            "error_code": outcome.error_code, "error_description": outcome.error_description})


async def sweep_deadlines(runtime: ServiceRuntime) -> None:
    """Commands whose gateway vanished never get an outcome: time them out here."""
    repo: CommandRepository = runtime.state["repo"]
    while True:
        overdue = await runtime.with_store(lambda: repo.overdue(utcnow()))
        for document in overdue:
            await _finish(runtime, document["_id"], "timeout", {
                "error_description": "no answer from the gateway before the deadline"})
        await asyncio.sleep(1.0)
