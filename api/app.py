"""The FastAPI application: :func:`create_app` (the entry point and the tests call it).

OpenAPI 3.1 at ``/openapi.json``, a docs page at ``/docs`` that works offline (Swagger UI 5
from the ``fastapi-offline`` package's files, served by this process: FastAPI's default page
loads it from a CDN), ``/healthz`` and ``/readyz``; every route of :mod:`api.features` under
``/api/v1``; every error as problem+json (:mod:`api.problems`); requests audited and given
a request id (:mod:`api.audit`).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from api import problems
from api.audit import AuditMiddleware
from api.context import ApiContext
from api.features import parts
from api.parts import ApiPart

PREFIX = "/api/v1"
_DOCS_FILES = Path(fastapi_offline.__file__).parent / "static"
DESCRIPTION = """The GridLink operator API (OCPP 1.6-J CSMS).

Authenticate with `Authorization: Bearer <key>` (`gridlink api-keys add NAME --scope read`).
Scopes: `read`; `commands` (send commands, and read); `admin` (everything, and changes to
the registries). Errors are RFC 9457 problem documents. Lists are paginated with an opaque
`cursor` and a `next` link.
"""


def create_app(context: ApiContext, api_parts: list[ApiPart] | None = None) -> FastAPI:
    """The application over ``context`` (settings, database, command path)."""
    app = FastAPI(title="GridLink API", version="1", description=DESCRIPTION,
                  openapi_url="/openapi.json", docs_url=None, redoc_url=None)
    app.state.context = context
    app.state.parts = api_parts if api_parts is not None else parts(context.settings)
    problems.install(app)
    app.add_middleware(AuditMiddleware)
    app.mount("/static-docs", StaticFiles(directory=_DOCS_FILES), name="static-docs")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="GridLink API",
                                   swagger_js_url="/static-docs/swagger-ui-bundle.js",
                                   swagger_css_url="/static-docs/swagger-ui.css",
                                   swagger_favicon_url="/static-docs/favicon.png")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> PlainTextResponse:
        ok, why = request.app.state.context.readiness()
        return PlainTextResponse(why + "\n", status_code=200 if ok else 503)

    for part in app.state.parts:
        if part.router is not None:
            app.include_router(part.router, prefix=PREFIX)
        if part.root_router is not None:
            app.include_router(part.root_router)
    return app
