"""RFC 9457 problem details: every error the API answers is ``application/problem+json``.

Routes raise :class:`Problem`; :func:`install` turns it, FastAPI's request validation errors
(422, naming the field) and Starlette's own 404/405 into problem documents.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("gridlink.api")

MEDIA_TYPE = "application/problem+json"
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 409: "Conflict", 412: "Precondition Failed",
          415: "Unsupported Media Type", 422: "Unprocessable Content",
          500: "Internal Server Error", 503: "Service Unavailable"}


class ProblemModel(BaseModel):
    """The shape of every error (RFC 9457); ``errors`` lists invalid fields."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class Problem(Exception):
    """An error answer: ``status``, a human ``detail``, and extra members (``errors``...)."""

    def __init__(self, status: int, detail: str, *, title: str | None = None,
                 headers: dict[str, str] | None = None, **members: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or TITLES.get(status, "Error")
        self.headers = headers or {}
        self.members = members


def problem_response(request: Request, status: int, detail: str | None, *,
                     title: str | None = None, headers: dict[str, str] | None = None,
                     **members: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title or TITLES.get(status, "Error"),
                            "status": status, "instance": request.url.path}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in members.items() if v is not None})
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, rest = parts[0], parts[1:]
        return f"{where}: {'.'.join(rest)}" if rest else where
    return ".".join(parts)


def install(app: FastAPI) -> None:
    """Answer every error as problem+json."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(request, exc.status, exc.detail, title=exc.title,
                                headers=exc.headers, **exc.members)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [{"field": _location(error.get("loc", ())), "message": error.get("msg", ""),
                   "type": error.get("type", "")} for error in exc.errors()]
        first = errors[0] if errors else {"field": "request", "message": "invalid"}
        return problem_response(request, 422, f"{first['field']}: {first['message']}",
                                errors=errors)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else None
        if detail == TITLES.get(exc.status_code):
            detail = None
        return problem_response(request, exc.status_code, detail,
                                headers=dict(exc.headers or {}))

    async def on_database(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable", extra={"route": request.url.path,
                                                   "error": str(exc).splitlines()[0][:200]})
        return problem_response(request, 503, "the database is unreachable; retry later",
                                headers={"Retry-After": "5"})

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed", extra={"route": request.url.path})
        return problem_response(request, 500, "the server failed; see its log")

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(ConnectionFailure, on_database)
    app.add_exception_handler(Exception, on_unexpected)


#: For ``responses=`` of routes: the problem documents they may answer.
def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ProblemModel, "description": TITLES.get(status, "Error"),
                     "content": {MEDIA_TYPE: {}}} for status in statuses}
