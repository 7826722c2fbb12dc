"""Sending commands from the API: validation, idempotency, waiting, the command view.

The API publishes a :class:`~services.envelope.CommandRequest` exactly as the CLI does
(:class:`services.command_requests.CommandRequester`); the commands service stores the
command (``commands``, payload redacted) and sends it. The API keeps a small record of its
own per request (``api_commands``, kept GRIDLINK_API_IDEMPOTENCY_HOURS): the
``Idempotency-Key`` (scoped to the API key), a SHA-256 of the request (never the payload:
it may hold a secret), and — for a command the commands service refused without storing
it (``invalid``) — that outcome, so it can still be polled.

- Same key, same request: the same command, nothing sent again. Same key, another request:
  422 (RFC draft "The Idempotency-Key HTTP Header Field": a key is for one request).
- ``?wait=S`` (at most GRIDLINK_API_MAX_WAIT_S): 200 with the command once it has a final
  status; else 202 with the command as it stands and ``Location`` to poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import uuid
from typing import Any

from pymongo.errors import DuplicateKeyError

from api.context import ApiContext
from api.metrics import COMMANDS
from api.problems import Problem
from api.representations import plain, when
from services import ocpp16, stations
from services.clock import utcnow
from services.command_records import COMMANDS as COMMANDS_COLLECTION
from services.command_requests import new_request, result_wait_s
from services.envelope import FINAL_STATUSES, CommandResult
from services.errors import OcppError
from services.retention import Retention
from services.settings import Settings

log = logging.getLogger("gridlink.api.commands")

REQUESTS = "api_commands"
_following: set[asyncio.Future[Any]] = set()  # results still awaited (kept referenced)
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def retention(settings: Settings) -> Retention:
    return Retention(REQUESTS, "created_at", settings.api_idempotency_hours / 24)


def check_action(action: str) -> None:
    """404 unless ``action`` is a 1.6 central-system-to-charger action."""
    if action not in ocpp16.CSMS_ACTIONS:
        raise Problem(404, f"no command {action!r}: one of "
                      f"{', '.join(sorted(ocpp16.CSMS_ACTIONS))}")


def check_payload(action: str, payload: Any) -> None:
    """422 naming the field and the 1.6 rule unless the payload is valid for ``action``."""
    try:
        ocpp16.validate(ocpp16.CALL, action, payload)
    except OcppError as exc:
        field = _field_of(exc.description, action)
        raise Problem(422, exc.description, errors=[{
            "field": f"body: {field}", "rule": exc.code, "message": exc.description,
            "type": "ocpp16"}]) from None


def _field_of(description: str, action: str) -> str:
    """``SetChargingProfile: csChargingProfiles.x: ...`` -> ``csChargingProfiles.x``."""
    rest = description.removeprefix(f"{action}: ")
    field, _, _ = rest.partition(": ")
    return field if field and field != rest else "payload"


def check_wait(ctx: ApiContext, wait: float | None) -> float:
    if wait is None:
        return 0.0
    if wait > ctx.settings.api_max_wait_s:
        raise Problem(422, f"query: wait: at most {ctx.settings.api_max_wait_s:g} seconds",
                      errors=[{"field": "query: wait", "type": "less_than_equal",
                               "message": f"at most {ctx.settings.api_max_wait_s:g}"}])
    return wait


def check_idempotency_key(key: str | None) -> str | None:
    if key is not None and not _IDEMPOTENCY_KEY.match(key):
        raise Problem(422, "header: Idempotency-Key: 1 to 255 visible ASCII characters")
    return key


async def require_stations(ctx: ApiContext, ids: list[str]) -> None:
    found = {doc["_id"] async for doc in ctx.db[stations.COLLECTION].find(
        {"_id": {"$in": ids}}, {"_id": 1})}
    missing = [station for station in ids if station not in found]
    if missing:
        raise Problem(404, f"no station {', '.join(repr(m) for m in missing[:10])}"
                      + (" ..." if len(missing) > 10 else ""), stations=missing[:100])


def command_view(document: dict[str, Any]) -> dict[str, Any]:
    """A stored command (or the API's record of one not stored yet) as the API shows it."""
    return {
        "id": document["_id"], "station": document["station"], "action": document["action"],
        "status": document["status"], "payload": plain(document.get("payload")),
        "response": plain(document.get("response")),
        "errorCode": document.get("error_code"),
        "errorDescription": document.get("error_description"),
        "sender": document.get("sender"), "createdAt": when(document.get("created_at")),
        "updatedAt": when(document.get("updated_at")),
        "history": [{"status": h.get("status"), "at": when(h.get("at"))}
                    for h in document.get("history", [])],
    }


async def find_command(ctx: ApiContext, command_id: str) -> dict[str, Any] | None:
    """The command by id: the commands service's document, else the API's own record of a
    request it sent (status ``queued`` until the service stored it, or ``invalid``)."""
    document = await ctx.db[COMMANDS_COLLECTION].find_one({"_id": command_id})
    if document is None:
        document = await ctx.db[REQUESTS].find_one({"command_id": command_id})
        if document is None:
            return None
        document = {**document, "_id": command_id, "payload": None}
    return command_view(document)


def _request_digest(station: str, action: str, payload: dict[str, Any],
                    options: dict[str, Any]) -> str:
    body = json.dumps([station, action, payload, options], sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


async def submit(ctx: ApiContext, *, key_id: str, station: str, action: str,
                 payload: dict[str, Any], wait_s: float, idempotency_key: str | None,
                 timeout_s: float, queue_if_offline: bool = False,
                 expires_in_s: float | None = None,
                 digest_payload: dict[str, Any] | None = None) -> tuple[dict[str, Any], bool]:
    """Send (or find, for a repeated Idempotency-Key) a command; (its view, final?).
    ``digest_payload``: what identifies the request when the payload holds a value made
    for it (a newly allocated reservation id)."""
    options = {"timeout": timeout_s, "queueIfOffline": queue_if_offline,
               "expiresIn": expires_in_s}
    digest = _request_digest(station, action,
                             payload if digest_payload is None else digest_payload, options)
    command_id = str(uuid.uuid4())
    now = utcnow()
    record: dict[str, Any] = {"command_id": command_id, "key_id": key_id, "station": station,
                              "action": action, "request_sha256": digest, "status": "queued",
                              "created_at": now, "history": [{"status": "queued", "at": now}]}
    if idempotency_key is not None:
        record["_id"] = hashlib.sha256(f"{key_id}\0{idempotency_key}".encode()).hexdigest()
    try:
        await ctx.db[REQUESTS].insert_one(record)
    except DuplicateKeyError:
        earlier = await ctx.db[REQUESTS].find_one({"_id": record["_id"]})
        if earlier is None:  # expired in between: a new request after all
            raise Problem(409, "Idempotency-Key is being reused concurrently; retry") from None
        if earlier["request_sha256"] != digest:
            raise Problem(422, "header: Idempotency-Key: already used for a different "
                          "request (another station, action, payload or option)") from None
        COMMANDS.labels(action, "replayed").inc()
        return await _when_final(ctx, earlier["command_id"], wait_s)
    request = new_request(station, action, payload, timeout_s=timeout_s,
                          command_id=command_id, queue_if_offline=queue_if_offline,
                          expires_in_s=expires_in_s, now=now)
    try:
        result = await ctx.requester.send(request)
    except Exception:
        COMMANDS.labels(action, "failed").inc()
        await ctx.db[REQUESTS].delete_one({"command_id": command_id})
        raise Problem(503, "the command could not be handed to RabbitMQ; nothing was sent",
                      headers={"Retry-After": "5"}) from None
    COMMANDS.labels(action, "sent").inc()
    follow = asyncio.ensure_future(_follow(ctx, command_id, result,
                                           result_wait_s(timeout_s, expires_in_s)))
    _following.add(follow)
    follow.add_done_callback(_following.discard)
    if wait_s > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(follow), wait_s)
    return await _when_final(ctx, command_id, 0)


async def _follow(ctx: ApiContext, command_id: str, result: asyncio.Future[CommandResult],
                  within_s: float) -> CommandResult | None:
    """Await the result; one the commands service did not store (``invalid``) is kept on
    the API's record, so a poll finds it."""
    try:
        outcome = await asyncio.wait_for(result, within_s)
    except (TimeoutError, asyncio.CancelledError):
        ctx.requester.forget(command_id)
        return None
    if outcome.status == "invalid":
        COMMANDS.labels(outcome.action, "invalid").inc()
        await ctx.db[REQUESTS].update_one({"command_id": command_id}, {
            "$set": {"status": "invalid", "error_code": outcome.error_code,
                     "error_description": outcome.error_description,
                     "updated_at": outcome.at},
            "$push": {"history": {"status": "invalid", "at": outcome.at}}})
    return outcome


async def _when_final(ctx: ApiContext, command_id: str, wait_s: float
                      ) -> tuple[dict[str, Any], bool]:
    """The command's view, polling the database up to ``wait_s`` for a final status (a
    repeated request does not hold the first one's result future)."""
    deadline = asyncio.get_running_loop().time() + wait_s
    delay = 0.05
    while True:
        view = await find_command(ctx, command_id)
        if view is None:  # the service stored nothing and the record expired
            raise Problem(404, f"command {command_id} is no longer known")
        final = view["status"] in FINAL_STATUSES
        if final or asyncio.get_running_loop().time() >= deadline:
            return view, final
        await asyncio.sleep(min(delay, max(0.0, deadline - asyncio.get_running_loop().time())))
        delay = min(delay * 2, 1.0)
