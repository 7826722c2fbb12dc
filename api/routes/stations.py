"""``/stations``: the registry (admin writes), connectors with their latest status, whether
the station is connected, its configuration snapshot, and its recent activity.

"Connected" is what the stored state knows: the station was heard from (boot, heartbeat,
any call that moves ``last_seen``) within two heartbeat intervals
(GRIDLINK_HEARTBEAT_INTERVAL_S) and a minute. Which gateway pod holds it is not stored
(the broker routes by station), so ``gateway`` is null.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Admin, Reader
from api.context import ApiContext, Context, Pages
from api.pagination import Page, page
from api.problems import Problem, responses
from api.representations import check_if_match, conditional_get, not_modified, plain, when
from services import configuration_snapshots, station_ids, stations
from services.clock import utcnow
from services.command_records import COMMANDS
from services.security_events import COLLECTION as SECURITY_EVENTS
from services.transaction_records import CONNECTOR_STATUS, STATUS_EVENTS, TRANSACTIONS

router = APIRouter(prefix="/stations", tags=["stations"])
StationId = Annotated[str, Path(min_length=1, max_length=255)]
CONNECTED_MARGIN_S = 60.0


class Connector(BaseModel):
    model_config = ConfigDict(extra="allow")
    connectorId: int
    status: str | None
    errorCode: str | None
    timestamp: str | None


class Station(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    registration: str | None
    securityProfile: int
    connected: bool
    gateway: str | None = None
    lastSeen: str | None
    lastBoot: str | None = None
    boot: dict[str, Any] | None = None
    certificateCn: str | None = None
    passwordSet: bool = False
    connectors: list[Connector]


class StationDetail(Station):
    configuration: dict[str, Any] | None


class StationWrite(BaseModel):
    """Register or update a station."""

    model_config = ConfigDict(extra="forbid")
    registration: Literal["Accepted", "Pending", "Rejected"] = "Accepted"
    securityProfile: int | None = Field(None, ge=0, le=3, description="0-3; default 1 with "
                                        "a password, else 0")
    password: str | None = Field(None, description="the AuthorizationKey (profiles 1, 2); "
                                 "omitted for 1 or 2: one is generated and returned once")
    certificateCn: str | None = Field(None, min_length=1, max_length=64)


class StationWritten(StationDetail):
    generatedPassword: str | None = None


class Activity(BaseModel):
    at: str | None
    kind: str
    summary: str


def _connected(ctx: ApiContext, document: dict[str, Any]) -> bool:
    seen = document.get("last_seen")
    if seen is None:
        return False
    window = 2 * ctx.settings.heartbeat_interval_s + CONNECTED_MARGIN_S
    moment = seen if seen.tzinfo else seen.replace(tzinfo=utcnow().tzinfo)
    return bool(utcnow() - moment <= timedelta(seconds=window))


async def station_views(ctx: ApiContext, documents: list[dict[str, Any]]
                        ) -> list[dict[str, Any]]:
    """Stations as shown, with their connectors' latest status (one query for all)."""
    by_station: dict[str, list[dict[str, Any]]] = {doc["_id"]: [] for doc in documents}
    async for status in ctx.db[CONNECTOR_STATUS].find(
            {"station": {"$in": list(by_station)}}, sort=[("connector", 1)]):
        by_station.setdefault(status["station"], []).append(status)
    return [_view(ctx, doc, by_station[doc["_id"]]) for doc in documents]


async def station_view(ctx: ApiContext, document: dict[str, Any]) -> dict[str, Any]:
    return (await station_views(ctx, [document]))[0]


def _view(ctx: ApiContext, document: dict[str, Any], connectors: list[dict[str, Any]]
          ) -> dict[str, Any]:
    return {
        "id": document["_id"], "registration": document.get("registration"),
        "securityProfile": stations.security_profile(document),
        "connected": _connected(ctx, document), "gateway": None,
        "lastSeen": when(document.get("last_seen")), "lastBoot": when(document.get("last_boot")),
        "boot": plain(document.get("boot")) if document.get("boot") else None,
        "certificateCn": document.get("certificate_cn"),
        "passwordSet": bool(document.get("password_hash")),
        "connectors": [{"connectorId": c["connector"], "status": c.get("status"),
                        "errorCode": c.get("error_code"), "timestamp": when(c.get("timestamp"))}
                       for c in connectors],
    }


def editable(view: dict[str, Any]) -> dict[str, Any]:
    """What a station's ETag covers: what operators edit (not its last seen time, its
    connectors or configuration, which the station changes)."""
    return {key: view.get(key) for key in ("id", "registration", "securityProfile",
                                           "passwordSet", "certificateCn")}


async def configuration(ctx: ApiContext, station: str) -> dict[str, Any] | None:
    """The configuration snapshot's keys and values; None if the station never answered
    GetConfiguration."""
    document = await configuration_snapshots.read_document(ctx.db, station)
    if document is None:
        return None
    return configuration_snapshots.Snapshot.from_document(document).values()


async def detail(ctx: ApiContext, station: str) -> dict[str, Any] | None:
    document = await ctx.db[stations.COLLECTION].find_one({"_id": station})
    if document is None:
        return None
    return {**await station_view(ctx, document),
            "configuration": await configuration(ctx, station)}


async def existing(ctx: ApiContext, station: str) -> dict[str, Any]:
    """The station's detail, or 404."""
    found = await detail(ctx, station)
    if found is None:
        raise Problem(404, f"no station {station!r}")
    return found


@router.get("", response_model=Page[Station], responses=responses(400, 401, 403, 422))
async def list_stations(request: Request, ctx: Context, paging: Pages,
                        caller: Reader) -> Any:
    """Registered stations by id."""
    return await page(request, ctx.db[stations.COLLECTION], {}, sort=[("_id", 1)],
                      limit=paging.limit, cursor=paging.cursor,
                      items=lambda docs: station_views(ctx, docs))


@router.get("/{station}", response_model=StationDetail,
            responses={**responses(401, 403, 404), 304: {"description": "Not Modified"}})
async def get_station(station: StationId, request: Request, response: Response, ctx: Context,
                      caller: Reader) -> Any:
    """One station, with its configuration snapshot (from GetConfiguration) if known."""
    found = await existing(ctx, station)
    return conditional_get(request, response, editable(found), found)


@router.put("/{station}", response_model=StationWritten, status_code=200,
            responses={**responses(401, 403, 412, 422), 201: {"model": StationWritten,
                                                              "description": "Created"}})
async def put_station(station: StationId, body: StationWrite, request: Request,
                      response: Response, ctx: Context, caller: Admin
                      ) -> Any:
    """Register a station or update it (registration, security profile, password,
    certificate CN). ``If-Match`` guards against changing what someone else just did."""
    before = await detail(ctx, station)
    check_if_match(request, editable(before) if before else None)
    if body.password is not None and (problem := stations.key_problem(body.password)):
        raise Problem(422, f"body: password: {problem}")
    try:
        generated = await stations.register_stations(
            ctx.db, [station], registration=body.registration, password=body.password,
            security_profile=body.securityProfile, certificate_cn=body.certificateCn)
    except station_ids.InvalidStationId as exc:
        raise Problem(422, f"path: station: {exc}") from None
    except stations.IdentityTaken as exc:
        raise Problem(409, str(exc)) from None
    after = await existing(ctx, station_ids.check(station))
    not_modified(request, response, editable(after))
    response.status_code = 201 if before is None else 200
    if before is None:
        response.headers["Location"] = f"/api/v1/stations/{after['id']}"
    if generated.get(station):
        response.headers["Cache-Control"] = "no-store"  # a secret, shown this once
    return {**after, "generatedPassword": generated.get(station)}


@router.delete("/{station}", status_code=204, responses=responses(401, 403, 404, 412))
async def delete_station(station: StationId, request: Request, ctx: Context,
                         caller: Admin) -> Response:
    """Remove a station from the registry (it can no longer connect; its transactions and
    history stay)."""
    check_if_match(request, editable(await existing(ctx, station)))
    await ctx.db[stations.COLLECTION].delete_one({"_id": station})
    return Response(status_code=204)


@router.get("/{station}/activity", response_model=Page[Activity],
            responses=responses(401, 403, 404, 422))
async def station_activity(station: StationId, ctx: Context, paging: Pages,
                           caller: Reader) -> Any:
    """What the station did recently, newest first, from what is stored: status
    notifications, transactions, its boot, commands, security events (one page: ``limit``
    of the newest; ``next`` is always null)."""
    document = await ctx.db[stations.COLLECTION].find_one({"_id": station})
    if document is None:
        raise Problem(404, f"no station {station!r}")
    limit = paging.limit
    found: list[dict[str, Any]] = []
    if document.get("last_boot"):
        boot = document.get("boot") or {}
        found.append({"at": document["last_boot"], "kind": "boot", "summary": " ".join(
            str(x) for x in ("BootNotification", boot.get("charge_point_vendor"),
                             boot.get("charge_point_model"), boot.get("firmware_version"))
            if x)})
    async for status in ctx.db[STATUS_EVENTS].find({"station": station},
                                                   sort=[("timestamp", -1)], limit=limit):
        found.append({"at": status.get("timestamp"), "kind": "status", "summary":
                      f"connector {status.get('connector')}: {status.get('status')}"
                      f" ({status.get('error_code')})"})
    async for tx in ctx.db[TRANSACTIONS].find({"station": station},
                                              sort=[("start_time", -1)], limit=limit):
        found.append({"at": tx.get("start_time"), "kind": "transaction.started", "summary":
                      f"transaction {tx['_id']} on connector {tx.get('connector')}"})
        if (tx.get("stop") or {}).get("time"):
            found.append({"at": tx["stop"]["time"], "kind": "transaction.stopped", "summary":
                          f"transaction {tx['_id']} stopped ({tx['stop'].get('reason')})"})
    async for command in ctx.db[COMMANDS].find({"station": station},
                                               sort=[("created_at", -1)], limit=limit):
        found.append({"at": command.get("updated_at") or command.get("created_at"),
                      "kind": "command", "summary": f"{command['action']}: "
                      f"{command.get('status')}"})
    async for event in ctx.db[SECURITY_EVENTS].find({"station": station},
                                                    sort=[("at", -1)], limit=limit):
        found.append({"at": event.get("at"),
                      "kind": "security", "summary": str(event.get("type", "security event"))})
    found = [f for f in found if f["at"] is not None]
    found.sort(key=lambda f: when(f["at"]) or "", reverse=True)
    return {"items": [{**f, "at": when(f["at"])} for f in found[:limit]], "next": None}
