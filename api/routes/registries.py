"""Read-only views of what the commands service keeps: reservations, charging profiles,
station groups, firmware and diagnostics (and log) jobs and files. (They change through
commands — ReserveNow, SetChargingProfile, UpdateFirmware, GetDiagnostics, GetLog ... on
``POST /stations/{id}/commands/{Action}`` — or, for station groups, the CLI.)

Documents are shown as stored, keys in camelCase and dates in ISO 8601, secrets (hashes,
tokens) left out (:func:`api.representations.plain`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict

from api.auth import Reader
from api.context import Context, Pages
from api.pagination import Page, page
from api.problems import responses
from api.representations import plain
from services import command_records as names

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


@router.get("/charging-profiles", response_model=Page[Row], responses=_ERRORS)
async def charging_profiles(request: Request, ctx: Context, paging: Pages, caller: Reader,
                            station: StationFilter = None) -> Any:
    """Charging profiles the stations were told (SetChargingProfile accepted)."""
    return await page(request, ctx.db[names.CHARGING_PROFILES], _by_station(station),
                      sort=[("_id", 1)], limit=paging.limit, cursor=paging.cursor,
                      item=plain)


@router.get("/station-groups", response_model=Page[Row], responses=_ERRORS)
async def station_groups(request: Request, ctx: Context, paging: Pages, caller: Reader
                         ) -> Any:
    """Site load management groups and their limits (`gridlink groups`)."""
    return await page(request, ctx.db[names.STATION_GROUPS], {}, sort=[("_id", 1)],
                      limit=paging.limit, cursor=paging.cursor, item=plain)


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
