"""What a part of the HTTP API is (:class:`ApiPart`); :mod:`api.features` lists them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI

from services.retention import Retention
from services.store import IndexSpec

if TYPE_CHECKING:
    from api.context import ApiContext

#: A job that runs while the API runs (restarted if it crashes; cancelled at shutdown).
Job = Callable[["ApiContext"], Awaitable[None]]


@dataclass(frozen=True)
class ApiPart:
    """A router under /api/v1, one at the site root, things mounted on the app (static
    files), background jobs, indexes, retention."""

    name: str
    router: APIRouter | None = None  # included under /api/v1
    root_router: APIRouter | None = None  # included at the site root (the console's pages)
    #: Called with the application once the routers are included, e.g. the console's
    #: ``mount(app)`` that mounts its static files (``app.mount("/console", StaticFiles(...))``).
    mounts: tuple[Callable[[FastAPI], None], ...] = ()
    background: tuple[Job, ...] = ()
    indexes: IndexSpec = field(default_factory=dict)
    retention: tuple[Retention, ...] = ()
