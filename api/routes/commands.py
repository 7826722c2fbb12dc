"""Commands: send one (``POST /stations/{id}/commands/{Action}``) or many (``POST
/commands/{Action}``), follow them (``GET /commands``, ``GET /commands/{id}``).

The request body is the OCPP 1.6 payload of the action (checked against the 1.6 schema:
422 names the field and the rule); see :mod:`api.commanding` for ``Idempotency-Key`` and
``?wait=``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api import commanding
from api.auth import Commander, Reader
from api.context import Context, Pages
from api.pagination import Page, page
from api.problems import Problem, responses
from services.command_records import COMMANDS
from services.envelope import CommandStatus

router = APIRouter(tags=["commands"])
Action = Annotated[str, Path(description="an OCPP 1.6 CSMS-to-charger action, e.g. Reset",
                             pattern=r"^[A-Za-z]{1,64}$")]
StationId = Annotated[str, Path(min_length=1, max_length=255)]
Wait = Annotated[float | None, Query(ge=0, description="seconds to wait for the answer "
                                     "(at most GRIDLINK_API_MAX_WAIT_S); 0 or absent: 202 at once")]
Timeout = Annotated[float, Query(alias="timeout", gt=0, le=3600,
                                 description="seconds the charger may take")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


class HistoryEntry(BaseModel):
    status: str | None
    at: str | None


class Command(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    station: str
    action: str
    status: CommandStatus
    payload: dict[str, Any] | None
    response: dict[str, Any] | None
    errorCode: str | None = None
    errorDescription: str | None = None
    sender: str | None = None
    createdAt: str | None
    updatedAt: str | None = None
    history: list[HistoryEntry] = []


class BulkCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stations: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        min_length=1, max_length=1000)
    payload: dict[str, Any] = Field(default_factory=dict)


class BulkResult(BaseModel):
    items: list[Command]


_SENT = {200: {"model": Command, "description": "answered within ?wait"},
         202: {"model": Command, "description": "accepted; poll Location"}}


@router.post("/stations/{station}/commands/{action}", response_model=Command,
             responses={**_SENT, **responses(401, 403, 404, 409, 422, 503)})
async def send_command(station: StationId, action: Action, request: Request,
                       response: Response, ctx: Context, caller: Commander,
                       payload: Annotated[dict[str, Any], Body()],
                       wait: Wait = None, timeout_s: Timeout = 30.0,
                       queue_if_offline: Annotated[bool, Query(alias="queueIfOffline")] = False,
                       expires_in: Annotated[float | None, Query(alias="expiresIn", gt=0,
                                                                 le=86400)] = None,
                       idempotency_key: IdempotencyKey = None) -> Any:
    """Send an OCPP call to a charger through the commands service (never directly)."""
    commanding.check_action(action)
    commanding.check_payload(action, payload)
    wait_s = commanding.check_wait(ctx, wait)
    commanding.check_idempotency_key(idempotency_key)
    await commanding.require_stations(ctx, [station])
    view, final = await commanding.submit(
        ctx, key_id=caller.key_id, station=station, action=action, payload=payload,
        wait_s=wait_s, idempotency_key=idempotency_key, timeout_s=timeout_s,
        queue_if_offline=queue_if_offline, expires_in_s=expires_in)
    response.headers["Location"] = f"/api/v1/commands/{view['id']}"
    response.status_code = 200 if final else 202
    return view


@router.post("/commands/{action}", response_model=BulkResult,
             responses={**_SENT, **responses(401, 403, 404, 409, 422, 503)})
async def send_bulk(action: Action, body: BulkCommand, response: Response, ctx: Context,
                    caller: Commander, wait: Wait = None, timeout_s: Timeout = 30.0,
                    idempotency_key: IdempotencyKey = None) -> Any:
    """The same command to many stations (up to 1000): one command each. With an
    ``Idempotency-Key``, each station's command is idempotent under it."""
    commanding.check_action(action)
    commanding.check_payload(action, body.payload)
    wait_s = commanding.check_wait(ctx, wait)
    commanding.check_idempotency_key(idempotency_key)
    wanted = list(dict.fromkeys(body.stations))
    await commanding.require_stations(ctx, wanted)
    sent = await asyncio.gather(*(commanding.submit(
        ctx, key_id=caller.key_id, station=station, action=action, payload=body.payload,
        wait_s=wait_s, timeout_s=timeout_s,
        idempotency_key=f"{idempotency_key}\0{station}" if idempotency_key else None)
        for station in wanted))
    response.status_code = 200 if all(final for _, final in sent) else 202
    return {"items": [view for view, _ in sent]}


@router.get("/commands", response_model=Page[Command],
            responses=responses(400, 401, 403, 422))
async def list_commands(request: Request, ctx: Context, paging: Pages, caller: Reader,
                        station: Annotated[str | None, Query(max_length=255)] = None,
                        status: Annotated[CommandStatus | None, Query()] = None,
                        action: Annotated[str | None, Query(max_length=64)] = None) -> Any:
    """Commands, newest first (by creation), filtered by station, status, action."""
    query: dict[str, Any] = {}
    for field, value in (("station", station), ("status", status), ("action", action)):
        if value is not None:
            query[field] = value
    return await page(request, ctx.db[COMMANDS], query,
                      sort=[("created_at", -1), ("_id", -1)], limit=paging.limit,
                      cursor=paging.cursor, item=commanding.command_view)


@router.get("/commands/{command_id}", response_model=Command,
            responses=responses(401, 403, 404))
async def get_command(command_id: Annotated[str, Path(max_length=128)], ctx: Context,
                      caller: Reader) -> Any:
    """One command and its lifecycle (queued, sent, accepted | rejected | callerror |
    timeout | expired | offline | invalid)."""
    found = await commanding.find_command(ctx, command_id)
    if found is None:
        raise Problem(404, f"no command {command_id!r}")
    return found


__all__ = ["Command", "router"]
