"""The operator web console: static HTML, CSS and JavaScript modules at ``/console/``, over
the API's own routes (same origin, the operator's API key sent as a bearer token).

The files hold no data and no secret, so they are served without credentials; everything
they show comes from ``/api/v1`` with the key the operator pastes in (kept in the tab's
sessionStorage, never in a URL or a cookie). Every console response carries a strict
Content-Security-Policy (scripts, styles and fetches from this origin only, no inline code,
no framing), ``nosniff`` and ``no-referrer``: the page renders charger-supplied text (station
ids, id tags, configuration values) with DOM text APIs only, and the policy is the second
fence should that ever slip.

:mod:`api.console.pages` builds the :class:`api.parts.ApiPart` that :mod:`api.features`
includes.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PATH", "SECURITY_HEADERS", "STATIC_DIR"]

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
