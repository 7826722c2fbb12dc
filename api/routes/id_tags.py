"""``/id-tags``: the id-tag store (status, expiry, parent, concurrent sessions); admin
writes, with ETags (``If-Match`` on PUT, DELETE, block, unblock; ``If-None-Match`` on GET)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Admin, Reader
from api.context import ApiContext, Context, Pages
from api.pagination import Page, page
from api.problems import Problem, responses
from api.representations import check_if_match, conditional_get, not_modified, when
from services import id_tags
from services.clock import utcnow

router = APIRouter(prefix="/id-tags", tags=["id tags"])
#: IdToken: CiString20Type (OCPP 1.6 §7.28).
TagId = Annotated[str, Path(min_length=1, max_length=20, pattern=r"^[\x20-\x7e]+$")]


class IdTag(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    status: str | None
    effectiveStatus: str
    expiry: str | None
    parent: str | None
    maxConcurrent: int


class IdTagWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["Accepted", "Blocked", "Expired", "Invalid"] = "Accepted"
    expiry: datetime | None = None
    parent: str | None = Field(None, min_length=1, max_length=20, pattern=r"^[\x20-\x7e]+$")
    maxConcurrent: int | None = Field(None, ge=1, le=id_tags.MAX_CONCURRENT_LIMIT)


def tag_view(document: dict[str, Any]) -> dict[str, Any]:
    info = id_tags.info_from_document(document, utcnow())
    return {"id": document["_id"], "status": document.get("status"),
            "effectiveStatus": info["status"], "expiry": when(document.get("expiry")),
            "parent": document.get("parent"), "maxConcurrent": id_tags.max_concurrent(document)}


async def _current(ctx: ApiContext, tag: str) -> dict[str, Any] | None:
    document = await ctx.db[id_tags.COLLECTION].find_one({"_id": tag})
    return tag_view(document) if document is not None else None


async def _existing(ctx: ApiContext, tag: str) -> dict[str, Any]:
    found = await _current(ctx, tag)
    if found is None:
        raise Problem(404, f"no id tag {tag!r}")
    return found


def _etag_only(view: dict[str, Any]) -> dict[str, Any]:
    """What the ETag covers: the stored fields, not the status judged now."""
    return {k: v for k, v in view.items() if k != "effectiveStatus"}


@router.get("", response_model=Page[IdTag], responses=responses(400, 401, 403, 422))
async def list_tags(request: Request, ctx: Context, paging: Pages, caller: Reader) -> Any:
    """Id tags by id."""
    return await page(request, ctx.db[id_tags.COLLECTION], {}, sort=[("_id", 1)],
                      limit=paging.limit, cursor=paging.cursor, item=tag_view)


@router.get("/{tag}", response_model=IdTag,
            responses={**responses(401, 403, 404, 422), 304: {"description": "Not Modified"}})
async def get_tag(tag: TagId, request: Request, response: Response, ctx: Context,
                  caller: Reader) -> Any:
    found = await _existing(ctx, tag)
    return conditional_get(request, response, _etag_only(found), found)


async def _write(ctx: ApiContext, tag: str, *, status: str, expiry: datetime | None,
                 parent: str | None, max_concurrent: int | None) -> None:
    if parent == tag:
        raise Problem(422, "body: parent: a tag cannot be its own parent")
    if expiry is not None and expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    await id_tags.upsert_tag(ctx.db, tag, status=status, expiry=expiry, parent=parent,
                             max_concurrent=max_concurrent)


@router.put("/{tag}", response_model=IdTag,
            responses={**responses(401, 403, 412, 422),
                       201: {"model": IdTag, "description": "Created"}})
async def put_tag(tag: TagId, body: IdTagWrite, request: Request, response: Response,
                  ctx: Context, caller: Admin) -> Any:
    """Add or update a tag (``maxConcurrent`` absent keeps the stored limit)."""
    before = await _current(ctx, tag)
    check_if_match(request, _etag_only(before) if before else None)
    await _write(ctx, tag, status=body.status, expiry=body.expiry, parent=body.parent,
                 max_concurrent=body.maxConcurrent)
    after = await _existing(ctx, tag)
    not_modified(request, response, _etag_only(after))
    if before is None:
        response.status_code = 201
        response.headers["Location"] = f"/api/v1/id-tags/{tag}"
    return after


@router.delete("/{tag}", status_code=204, responses=responses(401, 403, 404, 412, 422))
async def delete_tag(tag: TagId, request: Request, ctx: Context, caller: Admin) -> Response:
    """Remove a tag (chargers asking for it get Invalid; its transactions stay)."""
    check_if_match(request, _etag_only(await _existing(ctx, tag)))
    await ctx.db[id_tags.COLLECTION].delete_one({"_id": tag})
    return Response(status_code=204)


async def _set_status(tag: str, status: str, request: Request, response: Response,
                      ctx: ApiContext) -> dict[str, Any]:
    current = await _existing(ctx, tag)
    check_if_match(request, _etag_only(current))
    document = await ctx.db[id_tags.COLLECTION].find_one({"_id": tag})
    assert document is not None
    await _write(ctx, tag, status=status, expiry=document.get("expiry"),
                 parent=document.get("parent"), max_concurrent=None)
    after = await _existing(ctx, tag)
    not_modified(request, response, _etag_only(after))
    return after


@router.post("/{tag}/block", response_model=IdTag, responses=responses(401, 403, 404, 412))
async def block_tag(tag: TagId, request: Request, response: Response, ctx: Context,
                    caller: Admin) -> Any:
    """Status Blocked (chargers asking for it are refused)."""
    return await _set_status(tag, "Blocked", request, response, ctx)


@router.post("/{tag}/unblock", response_model=IdTag, responses=responses(401, 403, 404, 412))
async def unblock_tag(tag: TagId, request: Request, response: Response, ctx: Context,
                      caller: Admin) -> Any:
    """Status Accepted again."""
    return await _set_status(tag, "Accepted", request, response, ctx)
