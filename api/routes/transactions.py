"""``/transactions``: charging sessions (filter by station, tag, active or completed, start
date range), one with its meter values, and ``POST /transactions/{id}/stop``
(RemoteStopTransaction through the command path)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from api import commanding
from api.auth import Commander, Reader
from api.context import Context, Pages
from api.pagination import Page, page
from api.problems import Problem, responses
from api.representations import plain, when
from api.routes.commands import Command, Timeout, Wait
from services.transaction_records import METER_VALUES, TRANSACTIONS, state_of

router = APIRouter(prefix="/transactions", tags=["transactions"])
TransactionId = Annotated[int, Path(ge=-(2**31), le=2**31 - 1)]


class Transaction(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    station: str
    connectorId: int
    idTag: str | None
    startedAt: str | None
    meterStart: int | float | None
    stoppedAt: str | None
    meterStop: int | float | None
    energyWh: int | float | None
    state: str
    stopReason: str | None = None
    idTagStatus: str | None = None


class TransactionDetail(Transaction):
    meterValues: list[dict[str, Any]]


def transaction_view(document: dict[str, Any]) -> dict[str, Any]:
    stop = document.get("stop") or {}
    return {"id": document["_id"], "station": document["station"],
            "connectorId": document.get("connector"), "idTag": document.get("id_tag"),
            "startedAt": when(document.get("start_time")),
            "meterStart": document.get("meter_start"), "stoppedAt": when(stop.get("time")),
            "meterStop": stop.get("meter_stop"), "energyWh": document.get("energy_wh"),
            "state": state_of(document), "stopReason": stop.get("reason"),
            "idTagStatus": (document.get("id_tag_info") or {}).get("status")}


@router.get("", response_model=Page[Transaction], responses=responses(400, 401, 403, 422))
async def list_transactions(
        request: Request, ctx: Context, paging: Pages, caller: Reader,
        station: Annotated[str | None, Query(max_length=255)] = None,
        id_tag: Annotated[str | None, Query(alias="idTag", max_length=20)] = None,
        active: Annotated[bool | None, Query(description="true: running; false: ended")] = None,
        since: Annotated[datetime | None, Query(alias="from",
                                                description="started at or after")] = None,
        until: Annotated[datetime | None, Query(alias="to", description="started before")
                         ] = None) -> Any:
    """Transactions, newest first."""
    query: dict[str, Any] = {}
    if station is not None:
        query["station"] = station
    if id_tag is not None:
        query["id_tag"] = id_tag
    if active is not None:
        query["active"] = True if active else {"$ne": True}
    started: dict[str, Any] = {}
    if since is not None:
        started["$gte"] = _aware(since)
    if until is not None:
        started["$lt"] = _aware(until)
    if started:
        query["start_time"] = started
    return await page(request, ctx.db[TRANSACTIONS], query, sort=[("_id", -1)],
                      limit=paging.limit, cursor=paging.cursor, item=transaction_view)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/{transaction_id}", response_model=TransactionDetail,
            responses=responses(401, 403, 404, 422))
async def get_transaction(transaction_id: TransactionId, ctx: Context, caller: Reader,
                          samples: Annotated[int, Query(ge=0, le=10000, description=
                                                        "meter values at most")] = 1000
                          ) -> Any:
    """One transaction with its meter values (oldest first)."""
    document = await ctx.db[TRANSACTIONS].find_one({"_id": transaction_id})
    if document is None:
        raise Problem(404, f"no transaction {transaction_id}")
    values = await ctx.db[METER_VALUES].find(
        {"transaction_id": transaction_id}, {"_id": 0, "station": 0, "transaction_id": 0},
        sort=[("timestamp", 1)], limit=samples).to_list() if samples else []
    return {**transaction_view(document), "meterValues": [plain(v) for v in values]}


@router.post("/{transaction_id}/stop", response_model=Command,
             responses={200: {"model": Command, "description": "answered within ?wait"},
                        202: {"model": Command, "description": "accepted; poll Location"},
                        **responses(401, 403, 404, 409, 422, 503)})
async def stop_transaction(transaction_id: TransactionId, response: Response, ctx: Context,
                           caller: Commander, wait: Wait = None, timeout_s: Timeout = 30.0,
                           idempotency_key: Annotated[str | None, Header(
                               alias="Idempotency-Key", max_length=255)] = None) -> Any:
    """Ask the station to stop the transaction (RemoteStopTransaction)."""
    document = await ctx.db[TRANSACTIONS].find_one({"_id": transaction_id},
                                                   {"station": 1, "active": 1})
    if document is None:
        raise Problem(404, f"no transaction {transaction_id}")
    if document.get("active") is not True:
        raise Problem(409, f"transaction {transaction_id} is not active")
    wait_s = commanding.check_wait(ctx, wait)
    commanding.check_idempotency_key(idempotency_key)
    view, final = await commanding.submit(
        ctx, key_id=caller.key_id, station=document["station"],
        action="RemoteStopTransaction", payload={"transactionId": transaction_id},
        wait_s=wait_s, idempotency_key=idempotency_key, timeout_s=timeout_s)
    response.headers["Location"] = f"/api/v1/commands/{view['id']}"
    response.status_code = 200 if final else 202
    return view
