"""What a part of the HTTP API is (:class:`ApiPart`); :mod:`api.features` lists them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import APIRouter

from services.retention import Retention
from services.store import IndexSpec

if TYPE_CHECKING:
    from api.context import ApiContext

#: A job that runs while the API runs (restarted if it crashes; cancelled at shutdown).
Job = Callable[["ApiContext"], Awaitable[None]]


@dataclass(frozen=True)
class ApiPart:
    """A router under /api/v1, one at the site root, background jobs, indexes, retention."""

    name: str
    router: APIRouter | None = None  # included under /api/v1
    root_router: APIRouter | None = None  # included at the site root (the console's pages)
    background: tuple[Job, ...] = ()
    indexes: IndexSpec = field(default_factory=dict)
    retention: tuple[Retention, ...] = ()
