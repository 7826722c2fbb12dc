"""The life of a command: request → validate → record → send → outcome → result.

A request is validated (action, 1.6 schema, known station, then the features' rewrites and
checks) before it is recorded; an invalid one is answered ``invalid`` and nothing reaches a
charger. A recorded command is published to the charger's routing key with ``mandatory``:
when no gateway holds the station the broker returns it, and the command ends ``offline`` —
or, when the requester asked for ``queue_if_offline``, waits ``queued`` for the station's
next BootNotification (unless it expires first). The gateway sends the charger's
CALLRESULT/CALLERROR (or a timeout) back as a :class:`CallOutcome`; the result is stored,
published to every requester's ``reply_to`` and as event ``command.<status>`` (and, for a
final status, ``command.finished``, the one webhooks follow), and features react to it.

Each command records who sent it (``sender``): the AMQP ``user_id`` of the request message,
which RabbitMQ checks against the publishing connection's user (None when the publisher set
none), or ``gridlink:<origin>`` for GridLink's own commands. Secrets (a new AuthorizationKey)
are never stored or published: payloads and answers pass through :mod:`commands.redaction`,
and the clear payload goes from the request to the charger in memory only — which is why a
command holding one cannot wait for an offline station.

Statuses: queued → sent → accepted | rejected | callerror | timeout | offline | expired.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from commands import redaction
from commands.hooks import CommandHooks
from commands.repository import CommandRepository
from services import events, ocpp16
from services.bus import decode_json
from services.envelope import (
    COMMAND_DEADLINE_GRACE_S,
    COMMAND_SWEEP_S,
    FINAL_STATUSES,
    CallOutcome,
    CommandRequest,
    CommandResult,
    CsmsCall,
)
from services.errors import CommandRefused, OcppError, Reject, Unroutable
from services.metrics import COMMANDS
from services.ocpp16 import utcnow
from services.runtime import Route, ServiceRuntime
from services.topology import COMMAND_KEY, outcome_key

log = logging.getLogger("gridlink.commands")

DEADLINE_GRACE_S = COMMAND_DEADLINE_GRACE_S
# CALLRESULT statuses that mean the charger declined the request.
DECLINED = frozenset({
    "Rejected", "NotSupported", "Failed", "UnknownMessageId", "UnknownVendorId",
    "NotImplemented", "VersionMismatch", "Occupied", "Faulted", "Unavailable", "UnlockFailed",
    "InvalidCertificate", "RevokedCertificate",  # SignedUpdateFirmware.conf
})
#: Events the command path itself listens to (besides the features' hooks).
BOOTED = "station.booted"


def result_of(document: dict[str, Any]) -> CommandResult:
    return CommandResult(
        command_id=document["_id"], station=document["station"], action=document["action"],
        status=document["status"], response=document.get("response"),
        error_code=document.get("error_code"),
        error_description=document.get("error_description"),
        at=document.get("updated_at") or document["created_at"],
    )


class Lifecycle:
    """The command path of one commands process: its repository and the features' hooks."""

    def __init__(self, runtime: ServiceRuntime, repo: CommandRepository,
                 hooks: CommandHooks) -> None:
        self.runtime = runtime
        self.repo = repo
        self.hooks = hooks

    def routes(self) -> tuple[Route, ...]:
        """What the commands queue consumes besides charger calls: command requests, the
        chargers' answers, and the events some feature (or the boot queue) listens to."""
        events = sorted({BOOTED, *self.hooks.events})
        return (
            Route("commands_in", COMMAND_KEY, self.handle_request),
            Route("calls", outcome_key("*"), self.handle_outcome),
            *(Route("events", key, self.handle_event) for key in events),
        )

    async def publish_result(self, result: CommandResult, reply_to: list[str]) -> None:
        bus, topology = self.runtime.bus, self.runtime.topology
        body = result.to_bytes()
        for queue in reply_to:
            await bus.publish("", queue, body, correlation_id=result.command_id,
                              persistent=False)
        await bus.publish(topology.events, f"command.{result.status}", body)
        if result.status in FINAL_STATUSES:  # one per command: its id names the event
            finished = events.stamped(events.COMMAND_FINISHED, result.model_dump(
                mode="json", exclude_none=True), result.command_id, result.status)
            await bus.publish(topology.events, events.COMMAND_FINISHED,
                              json.dumps(finished).encode(),
                              message_id=finished[events.ID_FIELD])

    async def finish(self, command_id: str, status: str, fields: dict[str, Any] | None = None,
                     from_statuses: list[str] | None = None, *, replay: bool = False
                     ) -> dict[str, Any] | None:
        """End a command (if still open); run the features' hooks; publish the result.

        ``replay``: the message that ends it is a redelivery, so a previous attempt may have
        stored the status and then failed in a hook or a publish. If the command already has
        this status, the hooks (idempotent) and the publish run again; requesters may get the
        result twice (at least once), never not at all.
        """
        runtime, repo = self.runtime, self.repo
        document = await runtime.with_store(
            lambda: repo.transition(command_id, status, utcnow(), fields, from_statuses)
        )
        if document is None:
            if not replay:
                return None  # already final: a late or repeated outcome changes nothing
            document = await runtime.with_store(lambda: repo.get(command_id))
            if document is None or document["status"] != status:
                return None
        else:
            log.info("command finished", extra={"station": document["station"],
                                                "command_id": command_id, "status": status})
            COMMANDS.labels(document["action"], status).inc()
        for hook in self.hooks.after_final.get(document["action"], []):
            await hook(runtime, document)
        await self.publish_result(result_of(document), document.get("reply_to", []))
        return document

    async def validate(self, request: CommandRequest) -> CommandRequest:
        """The request to record and send (as the features' rewrites leave it); raise
        CommandRefused for anything that must not be recorded or sent."""
        runtime = self.runtime
        try:
            ocpp16.check_csms_call(request.action, request.payload)
        except OcppError as exc:
            raise CommandRefused(exc.code, exc.description) from None
        if not await runtime.with_store(lambda: self.repo.station_exists(request.station)):
            raise CommandRefused("UnknownStation", f"unknown station {request.station!r}")
        if request.expires_at is not None and request.expires_at <= utcnow():
            raise CommandRefused("Expired", "expires_at is in the past")
        if request.queue_if_offline and redaction.holds_secret(request.action, request.payload):
            raise CommandRefused("NotQueueable", (
                f"{request.payload['key']} is never stored in clear, so this command cannot "
                "wait for an offline station: send it without queue_if_offline while the "
                "station is online"))
        preparers = self.hooks.preparers.get(request.action, [])
        for step in preparers:
            request = await step(runtime, request)
        if preparers:
            try:
                ocpp16.check_csms_call(request.action, request.payload)
            except OcppError as exc:
                raise CommandRefused(exc.code, exc.description) from None
        for check in self.hooks.validators.get(request.action, []):
            await check(runtime, request)
        return request

    async def new_document(self, request: CommandRequest, reply_to: str | None, origin: str,
                           sender: str | None) -> dict[str, Any]:
        """The command as it is stored: its payload redacted, with the fields the features
        record for it (:meth:`CommandHooks.record`)."""
        fields: dict[str, Any] = {}
        for recorder in self.hooks.recorders.get(request.action, []):
            fields.update(await recorder(self.runtime, request))
        now = utcnow()
        timeout = request.timeout_s or self.runtime.settings.command_timeout_s
        return {
            **fields,
            "_id": request.command_id, "station": request.station, "action": request.action,
            "payload": redaction.redacted(request.action, request.payload), "status": "queued",
            "timeout_s": timeout, "reply_to": [reply_to] if reply_to else [],
            "created_at": now, "origin": origin, "sender": sender,
            "expires_at": request.expires_at, "queue_if_offline": request.queue_if_offline,
            "deadline": now + timedelta(seconds=timeout + DEADLINE_GRACE_S),
            "history": [{"status": "queued", "at": now}],
        }

    def log_recorded(self, document: dict[str, Any]) -> None:
        log.info("command recorded", extra={
            "station": document["station"], "command_id": document["_id"],
            "action": document["action"], "sender": document["sender"],
            "origin": document["origin"]})

    async def submit(self, request: CommandRequest, *, origin: str) -> dict[str, Any] | None:
        """Send a command on GridLink's own behalf (a feature); None if refused or a
        duplicate."""
        try:
            request = await self.validate(request)
        except CommandRefused as exc:
            log.warning("internal command refused", extra={
                "station": request.station, "action": request.action,
                "error": exc.description})
            return None
        document = await self.new_document(request, None, origin, f"gridlink:{origin}")
        if await self.runtime.with_store(lambda: self.repo.create(document)) is None:
            return None
        self.log_recorded(document)
        await self.publish_transition(document)
        await self.send(document, request.payload)
        return document

    async def handle_request(self, message: AbstractIncomingMessage) -> None:
        """A command message from another service (``{ns}.commands.in``, rk ``command``)."""
        runtime, repo = self.runtime, self.repo
        try:
            request: CommandRequest = decode_json(message, CommandRequest)
        except Reject as exc:
            if message.reply_to:  # tell the requester why, then dead-letter it
                await runtime.bus.publish("", message.reply_to, json.dumps(
                    {"status": "invalid", "error_code": "FormationViolation",
                     "error_description": str(exc)}).encode(),
                    correlation_id=message.correlation_id, persistent=False)
            raise
        reply_to = request.reply_to or message.reply_to
        waiters = [reply_to] if reply_to else []
        sender = message.user_id or None  # validated by RabbitMQ: it cannot be forged
        try:
            request = await self.validate(request)
        except CommandRefused as exc:
            log.info("command refused", extra={
                "station": request.station, "command_id": request.command_id,
                "action": request.action, "sender": sender, "error": exc.code})
            await self.publish_result(CommandResult(
                command_id=request.command_id, station=request.station, action=request.action,
                status="invalid", error_code=exc.code, error_description=exc.description,
                at=utcnow()), waiters)
            COMMANDS.labels(request.action, "invalid").inc()
            return
        document = await self.new_document(request, reply_to, "request", sender)
        if await runtime.with_store(lambda: repo.create(document)) is None:
            # The same command_id again: it runs once, and every requester gets the outcome.
            if reply_to:  # register first, then look: the outcome cannot slip between the two
                await runtime.with_store(lambda: repo.add_waiter(request.command_id, reply_to))
            existing = await runtime.with_store(lambda: repo.get(request.command_id))
            if existing is None:
                return
            if existing["status"] in FINAL_STATUSES:
                await self.publish_result(result_of(existing), waiters)
                return
            if existing["status"] != "queued" or not message.redelivered:
                return  # in progress: the outcome reaches every waiter
            document = existing  # we stopped between recording and sending: send now
        else:
            self.log_recorded(document)
            await self.publish_transition(document)
        await self.send(document, request.payload)

    async def send(self, document: dict[str, Any], payload: dict[str, Any] | None = None
                   ) -> None:
        """Route a queued command to the gateway holding its station: with ``payload``, the
        clear request in memory, or else the stored (redacted) one."""
        runtime = self.runtime
        expires_at = document.get("expires_at")
        if expires_at is not None and expires_at <= utcnow():
            await self.finish(document["_id"], "expired", {
                "error_description": "expired before it could be sent"}, ["queued"])
            return
        if payload is None:
            payload = document["payload"]
            if redaction.withheld(document["action"], payload):
                await self.finish(document["_id"], "expired", {
                    "error_description": "its secret value is not stored: send it again"},
                    ["queued"])
                return
        now = utcnow()
        sent = await runtime.with_store(lambda: self.repo.transition(
            document["_id"], "sent", now,
            {"deadline": now + timedelta(seconds=document["timeout_s"] + DEADLINE_GRACE_S)},
            from_statuses=["queued"]))
        if sent is None:
            return  # not queued any more: sent (or ended) by another delivery
        csms_call = CsmsCall(command_id=document["_id"], station=document["station"],
                             action=document["action"], payload=payload,
                             timeout_s=document["timeout_s"])
        try:
            await runtime.bus.publish(runtime.topology.stations, document["station"],
                                      csms_call.to_bytes(), mandatory=True, persistent=False)
        except Unroutable:
            if document.get("queue_if_offline"):
                log.info("station offline; command waits for its next boot", extra={
                    "station": document["station"], "command_id": document["_id"]})
                await runtime.with_store(lambda: self.repo.unsend(document["_id"]))
                return
            await self.finish(document["_id"], "offline", {
                "error_description": "station offline: no gateway holds a connection to it"},
                ["sent"])
            return
        await self.publish_transition(sent)

    async def publish_transition(self, document: dict[str, Any]) -> None:
        """An intermediate status (queued, sent) as event ``command.<status>``."""
        await self.runtime.bus.publish(self.runtime.topology.events,
                                       f"command.{document['status']}",
                                       result_of(document).to_bytes())

    async def handle_outcome(self, message: AbstractIncomingMessage) -> None:
        """The charger's answer (or a timeout, or a closed connection) from the gateway."""
        outcome: CallOutcome = decode_json(message, CallOutcome)
        replay = bool(message.redelivered)
        if outcome.status == "result":
            declined = (outcome.payload or {}).get("status") in DECLINED
            await self.finish(outcome.command_id, "rejected" if declined else "accepted",
                              {"response": redaction.redacted_answer(outcome.action,
                                                                     outcome.payload)},
                              replay=replay)
        elif outcome.status == "timeout":
            await self.finish(outcome.command_id, "timeout", {
                "error_description": "the charger did not answer in time"}, replay=replay)
        elif outcome.status == "closed":
            runtime, repo = self.runtime, self.repo
            command = await runtime.with_store(lambda: repo.get(outcome.command_id))
            if command is not None and command.get("queue_if_offline"):
                # It may wait for the station: back to queued until its next BootNotification.
                await runtime.with_store(lambda: repo.transition(
                    outcome.command_id, "queued", utcnow(), from_statuses=["sent"]))
                return
            await self.finish(outcome.command_id, "offline", {
                "error_description": "the connection closed before the charger answered"},
                replay=replay)
        else:  # callerror, or an answer that is not valid OCPP (invalid)
            await self.finish(outcome.command_id, "callerror", {
                "error_code": outcome.error_code,
                "error_description": outcome.error_description}, replay=replay)

    async def handle_event(self, message: AbstractIncomingMessage) -> None:
        """An event from ``{ns}.events`` that a feature (or the boot queue) listens to: run its
        hooks."""
        try:
            event = json.loads(message.body)
        except ValueError:
            raise Reject("malformed event") from None
        key = message.routing_key or ""
        if key == BOOTED:
            await self.send_waiting(str(event["station"]))
        for hook in self.hooks.events.get(key, []):
            await hook(self.runtime, event)

    async def send_waiting(self, station: str) -> None:
        """After a BootNotification: send the commands that waited for the station, in
        order."""
        for document in await self.runtime.with_store(lambda: self.repo.waiting_for(station)):
            await self.send(document)

    async def sweep(self, runtime: ServiceRuntime) -> None:
        """Time out commands whose gateway vanished; expire queued ones past ``expires_at``."""
        repo = self.repo
        while True:
            now = utcnow()
            for document in await runtime.with_store(lambda now=now: repo.overdue(now)):
                await self.finish(document["_id"], "timeout", {
                    "error_description": "no answer from the gateway before the deadline"},
                    ["sent", "queued"])
            for document in await runtime.with_store(lambda now=now: repo.expired(now)):
                await self.finish(document["_id"], "expired", {
                    "error_description": "expired while waiting for the station"}, ["queued"])
            await asyncio.sleep(COMMAND_SWEEP_S)
