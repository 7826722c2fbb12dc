"""The console's routes, at the site root: ``/console`` redirects to ``/console/``, which
serves ``index.html``; ``/console/<file>`` serves the console's files (Starlette's static
file lookup: no path outside :data:`api.console.STATIC_DIR`, ETag and Last-Modified, 304s),
each response with :data:`api.console.SECURITY_HEADERS`. A file that does not exist is the
API's usual 404 problem. None of it is in the OpenAPI document.
"""

from __future__ import annotations

import os

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from api.console import PATH, SECURITY_HEADERS, STATIC_DIR
from api.parts import ApiPart
from services.settings import Settings


def relative(path: str) -> str:
    """The file path as StaticFiles takes it from a mount: relative, normalised ("." is the
    directory, so index.html)."""
    return os.path.normpath(os.path.join(".", path))


def router() -> APIRouter:
    """The console's routes."""
    files = StaticFiles(directory=STATIC_DIR, html=True)
    routes = APIRouter(include_in_schema=False)

    @routes.api_route(PATH, methods=["GET", "HEAD"])
    async def console_root() -> Response:
        return RedirectResponse(f"{PATH}/", status_code=308, headers=SECURITY_HEADERS)

    @routes.api_route(PATH + "/{path:path}", methods=["GET", "HEAD"])
    async def console_file(path: str, request: Request) -> Response:
        response = await files.get_response(relative(path), request.scope)
        response.headers.update(SECURITY_HEADERS)
        return response

    return routes


def part(settings: Settings) -> ApiPart:
    """The console as a part of the API (no database, no jobs: it only reads /api/v1)."""
    return ApiPart(name="console", root_router=router())
