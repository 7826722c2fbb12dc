"""Cursor pagination: ``?limit=`` (default and cap from the settings) and an opaque
``?cursor=``; a page is ``{"items": [...], "next": "<url>"|null}``.

A cursor is the sort key of the page's last document (base64url JSON), and the next page
asks for documents strictly after it (keyset pagination: stable while documents are added,
one index range per page, no skip).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

from bson import ObjectId
from bson.errors import InvalidId
from fastapi import Request
from pydantic import BaseModel
from pymongo.asynchronous.collection import AsyncCollection

from api.problems import Problem

T = TypeVar("T")
Document = dict[str, Any]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = None


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$date": value.isoformat()}
    if isinstance(value, ObjectId):
        return {"$oid": str(value)}
    return value


def _encode(values: list[Any]) -> str:
    plain = [_plain(v) for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()
                                    ).decode().rstrip("=")


def _decode(cursor: str, size: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise Problem(400, "cursor: not a cursor this API gave out") from None
    if not isinstance(values, list) or len(values) != size:
        raise Problem(400, "cursor: not a cursor this API gave out")
    out = []
    for value in values:
        if isinstance(value, dict) and set(value) == {"$date"}:
            try:
                value = datetime.fromisoformat(value["$date"])
            except (TypeError, ValueError):
                raise Problem(400, "cursor: not a cursor this API gave out") from None
        elif isinstance(value, dict) and set(value) == {"$oid"}:
            try:
                value = ObjectId(value["$oid"])
            except (TypeError, InvalidId):
                raise Problem(400, "cursor: not a cursor this API gave out") from None
        elif isinstance(value, dict | list):
            raise Problem(400, "cursor: not a cursor this API gave out")
        out.append(value)
    return out


def _after(sort: list[tuple[str, int]], values: list[Any]) -> Document:
    """The query for documents after ``values`` in ``sort`` order."""
    alternatives = []
    for i, (field, direction) in enumerate(sort):
        clause: Document = {f: values[j] for j, (f, _) in enumerate(sort[:i])}
        clause[field] = {"$gt" if direction > 0 else "$lt": values[i]}
        alternatives.append(clause)
    return alternatives[0] if len(alternatives) == 1 else {"$or": alternatives}


def _value(document: Document, field: str) -> Any:
    value: Any = document
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


async def page(request: Request, collection: AsyncCollection[Document], query: Document, *,
               sort: list[tuple[str, int]], limit: int, cursor: str | None,
               item: Callable[[Document], Awaitable[Any]] | Callable[[Document], Any] | None
               = None,
               items: Callable[[list[Document]], Awaitable[list[Any]]] | None = None,
               projection: Document | None = None) -> Page[Any]:
    """One page of ``collection`` matching ``query`` in ``sort`` order (its last key must
    be unique, e.g. ``_id``); ``item`` turns a document into what the page lists, or
    ``items`` the whole page at once (one query for what its documents need)."""
    if cursor:
        query = {"$and": [query, _after(sort, _decode(cursor, len(sort)))]}
    documents = await collection.find(query, projection, sort=sort, limit=limit + 1).to_list()
    more = len(documents) > limit
    documents = documents[:limit]
    if items is not None:
        listed = await items(documents)
    else:
        assert item is not None, "page() needs item or items"
        listed = []
        for document in documents:
            made = item(document)
            listed.append(await made if isinstance(made, Awaitable) else made)
    next_url = None
    if more and documents:
        last = documents[-1]
        next_url = str(request.url.include_query_params(
            cursor=_encode([_value(last, field) for field, _ in sort]), limit=limit))
    return Page[Any](items=listed, next=next_url)
