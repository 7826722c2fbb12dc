"""Feature modules of the commands service, one per OCPP feature area.

Every module in this package defines ``register(hooks: CommandHooks) -> None`` and is found
and registered at start-up (no central list to edit). Through the hooks a feature can:

- handle charger CALLs on the service's router (``hooks.router.on(action)``), e.g.
  FirmwareStatusNotification; the routing key must be bound to the commands queue
  (``services/topology.py``);
- check a command request before it is recorded (``hooks.validate(action)``): raise
  :class:`CommandRefused` and the requester gets ``invalid``, nothing reaches the charger;
- react when a command ends (``hooks.after(action)``), e.g. keep a configuration snapshot;
- react to events on ``{ns}.events`` (``hooks.on_event("transaction.started")``, also
  ``transaction.stopped``, ``station.booted``);
- run background jobs (``hooks.background``) and declare indexes (``hooks.add_indexes``);
- send commands of its own with :func:`commands.lifecycle.submit`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from services.router import Router
from services.runtime import ServiceRuntime
from services.store import IndexSpec

Validator = Callable[[ServiceRuntime, Any], Awaitable[None]]  # (runtime, CommandRequest)
AfterHook = Callable[[ServiceRuntime, dict[str, Any]], Awaitable[None]]  # final document
EventHook = Callable[[ServiceRuntime, dict[str, Any]], Awaitable[None]]  # event body
Job = Callable[[ServiceRuntime], Awaitable[None]]


class CommandRefused(Exception):
    """A command request is refused before it is recorded (answered ``invalid``)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass
class CommandHooks:
    runtime: ServiceRuntime
    router: Router
    validators: dict[str, list[Validator]] = field(default_factory=dict)
    after_final: dict[str, list[AfterHook]] = field(default_factory=dict)
    events: dict[str, list[EventHook]] = field(default_factory=dict)
    background: list[Job] = field(default_factory=list)
    indexes: IndexSpec = field(default_factory=dict)  # collection -> IndexModels to ensure

    def add_indexes(self, spec: IndexSpec) -> None:
        """Indexes to ensure at start-up (merged with other features')."""
        for collection, models in spec.items():
            known = self.indexes.setdefault(collection, [])
            known.extend(m for m in models if m.document["name"] not in
                         {k.document["name"] for k in known})

    def validate(self, action: str) -> Callable[[Validator], Validator]:
        def register(check: Validator) -> Validator:
            self.validators.setdefault(action, []).append(check)
            return check
        return register

    def after(self, action: str) -> Callable[[AfterHook], AfterHook]:
        def register(hook: AfterHook) -> AfterHook:
            self.after_final.setdefault(action, []).append(hook)
            return hook
        return register

    def on_event(self, routing_key: str) -> Callable[[EventHook], EventHook]:
        def register(hook: EventHook) -> EventHook:
            self.events.setdefault(routing_key, []).append(hook)
            return hook
        return register


def load_features(hooks: CommandHooks) -> list[str]:
    """Import every module of this package and call its ``register``; their names."""
    names = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        feature = importlib.import_module(f"{__name__}.{module.name}")
        feature.register(hooks)
        names.append(module.name)
    return names
