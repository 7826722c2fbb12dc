"""The commands service as a ServiceSpec for the shared runtime."""

from __future__ import annotations

import logging

from commands import lifecycle
from commands.features import CommandHooks, load_features
from commands.repository import INDEXES, CommandRepository
from services.router import Router
from services.runtime import ServiceRuntime, ServiceSpec

log = logging.getLogger("gridlink.commands")


def _build(runtime: ServiceRuntime) -> Router:
    runtime.state["repo"] = CommandRepository(runtime.store.db)
    hooks = CommandHooks(runtime=runtime, router=Router("commands"))
    runtime.state["hooks"] = hooks
    features = load_features(hooks)
    log.info("features loaded", extra={"features": features})
    runtime.extra_indexes = hooks.indexes
    for job in hooks.background:
        runtime.spawn(job)
    return hooks.router


SPEC = ServiceSpec(
    name="commands", indexes=INDEXES, build=_build,
    handlers={
        "command": lifecycle.handle_request,
        "outcome.": lifecycle.handle_outcome,
        "transaction.": lifecycle.handle_event,
        "station.": lifecycle.handle_event,
    },
    background=[lifecycle.sweep],
)
