"""What every route of the API shares, and how a route gets it.

:class:`ApiContext` is made once by the entry point (:mod:`api.server`) — or by a test —
and kept on ``app.state.context``; a route takes it as a dependency::

    @router.get("/things")
    async def things(ctx: Context, caller: Caller = require("read")) -> ...:
        await ctx.db["things"].find_one(...)

``ctx.settings`` (read once at start-up), ``ctx.db`` (MongoDB, the API's own client),
``ctx.requester`` (the command path: :class:`services.command_requests.CommandRequester`),
``ctx.topology``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from pymongo.asynchronous.database import AsyncDatabase

from api.problems import Problem
from services.command_requests import CommandRequester
from services.settings import Settings
from services.store import Store
from services.topology import Topology


@dataclass
class ApiContext:
    settings: Settings
    store: Store
    requester: CommandRequester
    topology: Topology = field(init=False)
    store_ok: bool = False  # set by the readiness check (api.server)
    stopping: bool = False

    def __post_init__(self) -> None:
        self.topology = Topology.from_settings(self.settings)

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        return self.store.db

    def readiness(self) -> tuple[bool, str]:
        if self.stopping:
            return False, "shutting down"
        if not self.requester.connected:
            return False, "rabbitmq unreachable"
        if not self.store_ok:
            return False, "mongodb unreachable"
        return True, "ready"


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(_context)]


@dataclass(frozen=True)
class Paging:
    """``?limit=`` (default GRIDLINK_API_PAGE_SIZE, at most GRIDLINK_API_MAX_PAGE_SIZE) and
    ``?cursor=`` of a list route."""

    limit: int
    cursor: str | None


def _paging(ctx: Context,
            limit: Annotated[int | None, Query(ge=1, description="items per page")] = None,
            cursor: Annotated[str | None, Query(max_length=1024,
                                                description="from the previous page's next")
                              ] = None) -> Paging:
    if limit is not None and limit > ctx.settings.api_max_page_size:
        raise Problem(422, f"query: limit: at most {ctx.settings.api_max_page_size}",
                      errors=[{"field": "query: limit", "type": "less_than_equal",
                               "message": f"at most {ctx.settings.api_max_page_size}"}])
    return Paging(limit or ctx.settings.api_page_size, cursor or None)


Pages = Annotated[Paging, Depends(_paging)]
