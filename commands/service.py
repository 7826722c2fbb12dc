"""The commands service: the command path (:mod:`commands.lifecycle`) with its features."""

from __future__ import annotations

import logging

from commands.features import FEATURES
from commands.hooks import CommandHooks
from commands.lifecycle import Lifecycle
from commands.repository import INDEXES, CommandRepository
from services.router import Router
from services.runtime import Service, ServiceRuntime, ServiceSpec, run_service
from services.settings import Settings
from services.store import merge_indexes
from services.topology import Subscription

log = logging.getLogger("gridlink.commands")

#: Bindings of releases before the queue followed exactly the events its features listen to.
RETIRED = (Subscription("events", "transaction.*"), Subscription("events", "station.*"))


def build(runtime: ServiceRuntime) -> Service:
    hooks = CommandHooks(runtime=runtime, router=Router("commands"))
    lifecycle = Lifecycle(runtime, CommandRepository(runtime.store.db), hooks)
    for _, register in FEATURES:
        register(hooks, lifecycle)
    log.info("features loaded", extra={"features": [name for name, _ in FEATURES]})
    return Service(router=hooks.router, routes=lifecycle.routes(),
                   background=(lifecycle.sweep, *hooks.background),
                   indexes=merge_indexes(INDEXES, hooks.indexes),
                   retired=RETIRED)


SPEC = ServiceSpec(name="commands", build=build)


async def main(settings: Settings) -> None:
    """Run the commands service until SIGTERM."""
    await run_service(SPEC, settings)
