"""The extension points of the command path, through which each feature package wires itself
in (its ``hooks.register(hooks, commands)``, listed in :mod:`commands.features`).

Through the hooks a feature can:

- handle charger CALLs on the service's router (``hooks.router.on(action)``), e.g.
  FirmwareStatusNotification; the queue binding follows from the router's actions;
- rewrite a command request before it is checked (``hooks.prepare(action)``): return the
  request to record and send instead, e.g. a firmware URL given a download token;
- check a command request before it is recorded (``hooks.validate(action)``): raise
  :class:`~services.errors.CommandRefused` (or call :func:`refuse`) and the requester gets
  ``invalid``, nothing reaches the charger;
- add fields to a command when it is recorded (``hooks.record(action)``: a dict merged into
  the stored document), e.g. the hash of a new AuthorizationKey whose clear value is never
  stored (:mod:`commands.redaction`);
- react when a command ends (``hooks.after(action)``), e.g. keep a configuration snapshot;
- react to events on ``{ns}.events`` (``hooks.on_event("transaction.started")``, also
  ``transaction.stopped``, ``station.status``, ``station.booted``); the queue is bound to
  exactly the events some feature (or the command path) listens to;
- run background jobs (``hooks.background``) and declare indexes (``hooks.add_indexes``);
- send commands of its own with ``commands.submit`` (:class:`commands.lifecycle.Lifecycle`).

Hooks of one action run in the order the features are listed in :mod:`commands.features`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from services.envelope import CommandRequest
from services.errors import CommandRefused, Refusal
from services.router import Router
from services.runtime import Job, ServiceRuntime
from services.store import IndexSpec

Preparer = Callable[[ServiceRuntime, CommandRequest], Awaitable[CommandRequest]]
Validator = Callable[[ServiceRuntime, CommandRequest], Awaitable[None]]
Recorder = Callable[[ServiceRuntime, CommandRequest], Awaitable[dict[str, Any]]]
AfterHook = Callable[[ServiceRuntime, dict[str, Any]], Awaitable[None]]  # the final document
EventHook = Callable[[ServiceRuntime, dict[str, Any]], Awaitable[None]]  # the event body


def refuse(problem: Refusal | None) -> None:
    """Raise CommandRefused for a problem a rule found (nothing when there is none)."""
    if problem is not None:
        raise CommandRefused(*problem)


@dataclass
class CommandHooks:
    runtime: ServiceRuntime
    router: Router
    preparers: dict[str, list[Preparer]] = field(default_factory=dict)
    validators: dict[str, list[Validator]] = field(default_factory=dict)
    recorders: dict[str, list[Recorder]] = field(default_factory=dict)
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

    def prepare(self, action: str) -> Callable[[Preparer], Preparer]:
        def register(step: Preparer) -> Preparer:
            self.preparers.setdefault(action, []).append(step)
            return step
        return register

    def validate(self, action: str) -> Callable[[Validator], Validator]:
        def register(check: Validator) -> Validator:
            self.validators.setdefault(action, []).append(check)
            return check
        return register

    def record(self, action: str) -> Callable[[Recorder], Recorder]:
        def register(recorder: Recorder) -> Recorder:
            self.recorders.setdefault(action, []).append(recorder)
            return recorder
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
