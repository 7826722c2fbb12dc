"""How stored documents are shown: ISO dates, camelCase, ETags, and generic read-only rows."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from fastapi import Request, Response

from api.problems import Problem
from services.clock import iso


def when(value: Any) -> str | None:
    """An ISO 8601 UTC date-time, or None."""
    if isinstance(value, datetime):
        return iso(value if value.tzinfo else value.replace(tzinfo=UTC))
    return None


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


_HIDDEN = ("hash", "token", "password", "secret", "key_pem", "private")


def plain(value: Any) -> Any:
    """A stored value as JSON: dates as ISO strings, keys in camelCase, ids as strings,
    bytes and anything that looks like a secret left out."""
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, dict):
        return {("id" if key == "_id" else camel(str(key))): plain(item)
                for key, item in value.items()
                if not any(word in str(key).lower() for word in _HIDDEN)}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, bytes):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def etag_of(representation: Any) -> str:
    """A strong ETag: the SHA-256 of the representation's canonical JSON."""
    body = json.dumps(representation, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'


def _matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def not_modified(request: Request, response: Response, representation: Any) -> bool:
    """Set the ETag; True when If-None-Match matches it (answer 304)."""
    etag = etag_of(representation)
    response.headers["ETag"] = etag
    header = request.headers.get("if-none-match")
    return header is not None and _matches(header, etag)


def conditional_get(request: Request, response: Response, representation: Any,
                    body: Any) -> Any:
    """``body`` with the ETag of ``representation``, or an empty 304 when If-None-Match
    matches it."""
    if not_modified(request, response, representation):
        return Response(status_code=304, headers={"ETag": response.headers["ETag"]})
    return body


def check_if_match(request: Request, representation: Any | None) -> None:
    """412 unless If-Match (when given) matches the current representation (None: the
    resource does not exist, and only no If-Match at all is fine)."""
    header = request.headers.get("if-match")
    if header is None:
        return
    if representation is None or not _matches(header, etag_of(representation)):
        raise Problem(412, "If-Match does not match the resource's current ETag "
                      "(it changed, or does not exist): fetch it again")
