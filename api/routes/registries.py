"""Views of what the commands service keeps: reservations, charging profiles, station
groups, firmware and diagnostics (and log) jobs and files. They change through commands —
``POST /reservations`` (ReserveNow, with an id allocated as ``gridlink reserve`` does) and
``DELETE /reservations/{id}`` (CancelReservation), or SetChargingProfile, UpdateFirmware,
GetDiagnostics, GetLog ... on ``POST /stations/{id}/commands/{Action}`` — or, for station
groups, the CLI.

Documents are shown as stored, keys in camelCase and dates in ISO 8601, secrets (hashes,
tokens) left out (:func:`api.representations.plain`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api import commanding
from api.auth import Commander, Reader
from api.context import Context, Pages
from api.pagination import Page, page
from api.problems import Problem, responses
from api.representations import plain
from api.routes.commands import Command, IdempotencyKey, Timeout, Wait
from services import command_records as names
from services import id_tags, reservation_ids
from services.clock import iso, utcnow

router = APIRouter(tags=["registries"])
StationFilter = Annotated[str | None, Query(max_length=255)]


class Row(BaseModel):
    """A stored document (fields as the owning module stores them, in camelCase)."""

    model_config = ConfigDict(extra="allow")
    id: Any = None


_ERRORS = responses(400, 401, 403, 422)


def _by_station(station: str | None, field: str = "station") -> dict[str, Any]:
    return {field: station} if station is not None else {}


@router.get("/reservations", response_model=Page[Row], responses=_ERRORS)
async def reservations(request: Request, ctx: Context, paging: Pages, caller: Reader,
                       station: StationFilter = None,
                       status: Annotated[str | None, Query(max_length=32)] = None) -> Any:
    """Reservations (ReserveNow), by reservation id, newest first."""
    query = _by_station(station) | ({"status": status} if status else {})
    return await page(request, ctx.db[names.RESERVATIONS], query, sort=[("_id", -1)],
                      limit=paging.limit, cursor=paging.cursor, item=plain)


class ReservationRequest(BaseModel):
    """ReserveNow: the reservation id is allocated (as ``gridlink reserve`` does); the
    parent tag is the id tag's own unless given."""

    model_config = ConfigDict(extra="forbid")
    station: str = Field(min_length=1, max_length=255)
    connectorId: int = Field(ge=0, le=1000)
    idTag: str = Field(min_length=1, max_length=20)
    expiryDate: datetime
    parentIdTag: str | None = Field(None, min_length=1, max_length=20)


@router.post("/reservations", response_model=Command,
             responses={200: {"model": Command, "description": "answered within ?wait"},
                        202: {"model": Command, "description": "accepted; poll Location"},
                        **responses(401, 403, 404, 409, 422, 503)})
async def reserve(body: ReservationRequest, response: Response, ctx: Context,
                  caller: Commander, wait: Wait = None, timeout_s: Timeout = 30.0,
                  idempotency_key: IdempotencyKey = None) -> Any:
    """Reserve a connector for an id tag (ReserveNow through the command path); the command
    (its payload holds the ``reservationId``). The reservation is stored once the charger
    accepts it (``GET /reservations``)."""
    wait_s = commanding.check_wait(ctx, wait)
    commanding.check_idempotency_key(idempotency_key)
    await commanding.require_stations(ctx, [body.station])
    expiry = body.expiryDate if body.expiryDate.tzinfo else body.expiryDate.replace(tzinfo=UTC)
    if expiry <= utcnow():
        raise Problem(422, "body: expiryDate: must be in the future")
    parent = body.parentIdTag
    if parent is None:
        tag = await ctx.db[id_tags.COLLECTION].find_one({"_id": body.idTag}, {"parent": 1})
        parent = (tag or {}).get("parent") or None
    payload = {"connectorId": body.connectorId, "expiryDate": iso(expiry),
               "idTag": body.idTag,
               "reservationId": await reservation_ids.allocate_id(ctx.db)}
    if parent:
        payload["parentIdTag"] = parent
    commanding.check_payload("ReserveNow", payload)
    view, final = await commanding.submit(
        ctx, key_id=caller.key_id, station=body.station, action="ReserveNow",
        payload=payload, wait_s=wait_s, idempotency_key=idempotency_key, timeout_s=timeout_s,
        digest_payload={**payload, "reservationId": None})
    return _sent(response, view, final)


@router.delete("/reservations/{reservation_id}", response_model=Command,
               responses={200: {"model": Command, "description": "answered within ?wait"},
                          202: {"model": Command, "description": "accepted; poll Location"},
                          **responses(401, 403, 404, 409, 422, 503)})
async def cancel_reservation(reservation_id: Annotated[int, Path(ge=0, le=2**31 - 1)],
                             response: Response, ctx: Context, caller: Commander,
                             wait: Wait = None, timeout_s: Timeout = 30.0,
                             idempotency_key: IdempotencyKey = None) -> Any:
    """Cancel a reservation (CancelReservation to its station)."""
    found = await ctx.db[names.RESERVATIONS].find_one({"_id": reservation_id},
                                                      {"station": 1})
    if found is None:
        raise Problem(404, f"no reservation {reservation_id}")
    wait_s = commanding.check_wait(ctx, wait)
    commanding.check_idempotency_key(idempotency_key)
    view, final = await commanding.submit(
        ctx, key_id=caller.key_id, station=found["station"], action="CancelReservation",
        payload={"reservationId": reservation_id}, wait_s=wait_s,
        idempotency_key=idempotency_key, timeout_s=timeout_s)
    return _sent(response, view, final)


def _sent(response: Response, view: dict[str, Any], final: bool) -> dict[str, Any]:
    response.headers["Location"] = f"/api/v1/commands/{view['id']}"
    response.status_code = 200 if final else 202
    return view


@router.get("/charging-profiles", response_model=Page[Row], responses=_ERRORS)
async def charging_profiles(request: Request, ctx: Context, paging: Pages, caller: Reader,
                            station: StationFilter = None) -> Any:
    """Charging profiles the stations were told (SetChargingProfile accepted)."""
    return await page(request, ctx.db[names.CHARGING_PROFILES], _by_station(station),
                      sort=[("_id", 1)], limit=paging.limit, cursor=paging.cursor,
                      item=plain)


_JOBS = {"firmware": names.FIRMWARE_JOBS, "signed-firmware": names.SIGNED_FIRMWARE_JOBS,
         "diagnostics": names.DIAGNOSTICS_JOBS, "logs": names.LOG_JOBS}
_FILES = {"firmware": names.FIRMWARE_BUCKET, "diagnostics": names.DIAGNOSTICS_BUCKET,
          "logs": names.LOG_BUCKET}


def _jobs_route(kind: str, collection: str) -> None:
    async def jobs(request: Request, ctx: Context, paging: Pages, caller: Reader,
                   station: StationFilter = None) -> Any:
        return await page(request, ctx.db[collection], _by_station(station),
                          sort=[("_id", -1)], limit=paging.limit, cursor=paging.cursor,
                          item=plain)

    router.add_api_route(f"/{kind}/jobs", jobs, methods=["GET"], response_model=Page[Row],
                         responses=_ERRORS, name=f"{kind}_jobs",
                         summary=f"{kind.capitalize()} jobs, newest first",
                         operation_id=f"list_{kind.replace('-', '_')}_jobs")


def _files_route(kind: str, bucket: str) -> None:
    async def files(request: Request, ctx: Context, paging: Pages, caller: Reader,
                    station: StationFilter = None) -> Any:
        query = _by_station(station, "metadata.station")
        return await page(request, ctx.db[f"{bucket}.files"], query, sort=[("_id", -1)],
                          limit=paging.limit, cursor=paging.cursor, item=plain)

    router.add_api_route(f"/{kind}/files", files, methods=["GET"], response_model=Page[Row],
                         responses=_ERRORS, name=f"{kind}_files",
                         summary=f"{kind.capitalize()} files stored, newest first",
                         operation_id=f"list_{kind}_files")


for _kind, _collection in _JOBS.items():
    _jobs_route(_kind, _collection)
for _kind, _bucket in _FILES.items():
    _files_route(_kind, _bucket)
