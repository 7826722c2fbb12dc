"""``/station-groups``: site load management's groups and their members, edited as with
``gridlink groups`` (the same registry code, :mod:`services.station_groups`); admin writes,
ETags on a group."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Admin, Reader
from api.context import ApiContext, Context, Pages
from api.pagination import Page, page
from api.problems import Problem, responses
from api.representations import check_if_match, conditional_get, not_modified, plain
from services import station_groups
from services.errors import ConfigurationError, GridLinkError

router = APIRouter(prefix="/station-groups", tags=["station groups"])
GroupName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
Member = Annotated[str, Field(min_length=1, max_length=260,
                              description="STATION (all its connectors) or STATION:CONNECTOR")]


class Group(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    unit: str
    limit: float
    phases: int | None = None
    voltage: float | None = None
    members: list[dict[str, Any]] = []


class GroupWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: Literal["A", "W"]
    limit: float = Field(gt=0, description="amps (A) or watts (W) for the whole group")
    phases: int = Field(3, ge=1, le=3)
    voltage: float = Field(230.0, gt=0)


class Members(BaseModel):
    model_config = ConfigDict(extra="forbid")
    members: list[Member] = Field(min_length=1, max_length=1000)
    maxCurrent: float | None = Field(None, gt=0, description="per connector, amps")
    minCurrent: float | None = Field(None, ge=0)
    phases: int | None = Field(None, ge=1, le=3)


def _view(document: dict[str, Any]) -> dict[str, Any]:
    return plain({k: v for k, v in document.items() if not k.startswith("lease_")})


async def _current(ctx: ApiContext, name: str) -> dict[str, Any] | None:
    document = await ctx.db[station_groups.COLLECTION].find_one({"_id": name})
    return _view(document) if document is not None else None


async def _existing(ctx: ApiContext, name: str) -> dict[str, Any]:
    found = await _current(ctx, name)
    if found is None:
        raise Problem(404, f"no station group {name!r}")
    return found


def _refused(exc: Exception) -> Problem:
    text = str(exc)
    if isinstance(exc, ConfigurationError):
        return Problem(422, text)
    if text.startswith(("no group", "unknown station")):
        return Problem(404, text)
    return Problem(409, text)


@router.get("", response_model=Page[Group], responses=responses(400, 401, 403, 422))
async def list_groups(request: Request, ctx: Context, paging: Pages, caller: Reader) -> Any:
    """Groups by name."""
    return await page(request, ctx.db[station_groups.COLLECTION], {}, sort=[("_id", 1)],
                      limit=paging.limit, cursor=paging.cursor, item=_view)


@router.get("/{name}", response_model=Group,
            responses={**responses(401, 403, 404, 422), 304: {"description": "Not Modified"}})
async def get_group(name: GroupName, request: Request, response: Response, ctx: Context,
                    caller: Reader) -> Any:
    found = await _existing(ctx, name)
    return conditional_get(request, response, found, found)


@router.put("/{name}", response_model=Group,
            responses={**responses(401, 403, 412, 422),
                       201: {"model": Group, "description": "Created"}})
async def put_group(name: GroupName, body: GroupWrite, request: Request, response: Response,
                    ctx: Context, caller: Admin) -> Any:
    """Create a group or change its limit (its members stay)."""
    check_if_match(request, await _current(ctx, name))
    try:
        created = await station_groups.save_group(ctx.db, name, unit=body.unit,
                                                  limit=body.limit, phases=body.phases,
                                                  voltage=body.voltage)
    except GridLinkError as exc:
        raise _refused(exc) from None
    after = await _existing(ctx, name)
    not_modified(request, response, after)
    if created:
        response.status_code = 201
        response.headers["Location"] = f"/api/v1/station-groups/{name}"
    return after


@router.delete("/{name}", status_code=204, responses=responses(401, 403, 404, 412, 422))
async def delete_group(name: GroupName, request: Request, ctx: Context,
                       caller: Admin) -> Response:
    check_if_match(request, await _existing(ctx, name))
    try:
        await station_groups.remove_group(ctx.db, name)
    except GridLinkError as exc:
        raise _refused(exc) from None
    return Response(status_code=204)


def _parsed(members: list[str]) -> list[tuple[str, int | None]]:
    try:
        return [station_groups.parse_member(text) for text in members]
    except ConfigurationError as exc:
        raise Problem(422, f"body: members: {exc}") from None


@router.post("/{name}/members", response_model=Group,
             responses=responses(401, 403, 404, 409, 412, 422))
async def assign_members(name: GroupName, body: Members, request: Request,
                         response: Response, ctx: Context, caller: Admin) -> Any:
    """Add members (or change their limits); a connector in another group is 409."""
    check_if_match(request, await _existing(ctx, name))
    try:
        station_groups.check_member_limits(body.maxCurrent, body.minCurrent, body.phases)
        await station_groups.assign(ctx.db, name, _parsed(body.members),
                                    max_current=body.maxCurrent, min_current=body.minCurrent,
                                    phases=body.phases)
    except GridLinkError as exc:
        raise _refused(exc) from None
    after = await _existing(ctx, name)
    not_modified(request, response, after)
    return after


@router.delete("/{name}/members/{member}", response_model=Group,
               responses=responses(401, 403, 404, 412, 422))
async def unassign_member(name: GroupName, member: Annotated[str, Path(max_length=260)],
                          request: Request, response: Response, ctx: Context,
                          caller: Admin) -> Any:
    """Remove a member (``STATION`` or ``STATION:CONNECTOR``, as it was assigned)."""
    check_if_match(request, await _existing(ctx, name))
    try:
        removed = await station_groups.unassign(ctx.db, name, _parsed([member]))
    except GridLinkError as exc:
        raise _refused(exc) from None
    if removed == 0:
        raise Problem(404, f"{member!r} is not a member of {name!r}")
    after = await _existing(ctx, name)
    not_modified(request, response, after)
    return after
