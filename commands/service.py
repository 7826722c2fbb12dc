"""The commands service as a ServiceSpec for the shared runtime."""

from __future__ import annotations

from commands.handlers import build_router, handle_outcome, handle_request, sweep_deadlines
from commands.repository import INDEXES, CommandRepository
from services.router import Router
from services.runtime import ServiceRuntime, ServiceSpec


def _build(runtime: ServiceRuntime) -> Router:
    repo = CommandRepository(runtime.store.db)
    runtime.state["repo"] = repo
    return build_router(repo)


SPEC = ServiceSpec(
    name="commands", indexes=INDEXES, build=_build,
    handlers={"command": handle_request, "outcome.": handle_outcome},
    background=[sweep_deadlines],
)
