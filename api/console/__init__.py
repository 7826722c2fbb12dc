"""The operator web console: static HTML, CSS and JavaScript modules at ``/console``, over the
API's own routes (same origin, the operator's API key sent as a bearer token).

The files hold no data and no secret, so they are served without credentials; everything
they show comes from ``/api/v1`` with the key the operator pastes in (kept in the tab's
sessionStorage). Every console response carries a strict Content-Security-Policy (scripts,
styles and fetches from this origin only, no inline code, no framing), ``nosniff`` and
``no-referrer``: the page renders charger-supplied text (station ids, id tags) with DOM text
APIs only, and the policy is the second fence should that ever slip.

:func:`mount` is the one entry point; the API's app factory calls it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["PATH", "SECURITY_HEADERS", "STATIC_DIR", "mount"]

#: Where the console is served.
PATH = "/console"
#: The console's files (index.html, console.css, the modules under js/).
STATIC_DIR = Path(__file__).parent / "static"

#: Headers on every console response.
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # The files change with a release: revalidate (ETag / Last-Modified) rather than keep stale.
    "Cache-Control": "no-cache",
}


class ConsoleFiles(StaticFiles):
    """Starlette's static files, every response with :data:`SECURITY_HEADERS`."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def _to_index() -> Response:
    return RedirectResponse(f"{PATH}/", status_code=308, headers=SECURITY_HEADERS)


def mount(app: Any) -> None:
    """Serve the console at ``/console/`` on ``app`` (a FastAPI or Starlette application);
    ``/console`` redirects there. Neither appears in the OpenAPI document."""
    if hasattr(app, "add_api_route"):  # FastAPI: keep it out of /openapi.json
        app.add_api_route(PATH, _to_index, methods=["GET", "HEAD"], include_in_schema=False)
    else:
        app.add_route(PATH, lambda _request: _to_index(), methods=["GET", "HEAD"])
    app.mount(PATH, ConsoleFiles(directory=STATIC_DIR, html=True), name="console")
