"""The parts of the HTTP API, in the order they are included: each is an :class:`ApiPart`
(an ``APIRouter`` under ``/api/v1``, one at the site root, background jobs, indexes,
retention), listed in :func:`parts` with its import written out.

To add a package (``api.webhooks``, ``api.console``): give it a module that builds its
:class:`api.parts.ApiPart` (``def part(settings: Settings) -> ApiPart``) and add it at its
marked place below. Nothing else needs to change: :mod:`api.app` includes the routers,
:mod:`api.server` makes the indexes and retention and runs the jobs.
"""

from __future__ import annotations

from api.parts import ApiPart
from services.settings import Settings


def parts(settings: Settings) -> list[ApiPart]:
    """Every part of the API, in order."""
    from api.routes import core

    found = [core.part(settings)]
    # --- include point: api.webhooks (webhook subscriptions, deliveries) -----------------
    from api.webhooks import routes as webhooks
    found.append(webhooks.part(settings))
    # --- include point: api.console (the web console, at the site root) ------------------
    from api.console import pages as console
    found.append(console.part(settings))
    return found
