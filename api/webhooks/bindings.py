"""Which events reach ``{ns}.webhooks``: exactly the public events some active subscription
wants, so that with no subscription (or none for a family) no event is queued, stored by the
broker, decoded and looked up for nothing — a reconnect storm's ``station.connected`` and
``station.booted`` cost the broker and the API nothing unless someone subscribed to them.

- **Adding is immediate.** A subscription that is created, changed or re-activated has its
  events bound *before* it is stored and again after (:meth:`EventBindings.want`): once the
  API answered, every event emitted from then on is queued for it. If the broker cannot be
  reached the write is refused (503) and nothing is stored.
- **Removing is lazy.** Every :data:`RECONCILE_S` each API process reads which events the
  active subscriptions want, binds those, and unbinds an event only when it was unwanted at
  two reconciliations in a row; it then reads once more and binds again whatever became
  wanted meanwhile. Bindings are the broker's, shared by the replicas: any replica's
  reconciliation corrects any other's changes. A subscription created on one replica in the
  same milliseconds as another replica unbinds its events (possible only for events nobody
  wanted for at least :data:`RECONCILE_S`) can miss the events of those milliseconds.

Unbinding a binding that does not exist and binding one twice are no-ops on RabbitMQ, so
every step is idempotent and the set of bindings need not be known in advance (a queue of an
earlier release, bound to every public event, is trimmed by the first two reconciliations).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

from api.webhooks import rules
from services.events import PUBLIC_EVENTS

log = logging.getLogger("gridlink.api.webhooks")

RECONCILE_S = 30.0  # how often bindings are compared with the subscriptions


class Subscribers(Protocol):
    async def wanted_patterns(self) -> list[str]: ...


def keys_for(patterns: Iterable[str]) -> list[str]:
    """The public events that ``patterns`` (names, ``family.*``, ``*``) name."""
    patterns = list(patterns)
    return [event for event in PUBLIC_EVENTS if rules.wanted(patterns, event)]


class EventBindings:
    """The bindings of ``{ns}.webhooks`` to ``{ns}.events``, kept to what is wanted."""

    def __init__(self, queue: Any, exchange: str, subscribers: Subscribers) -> None:
        self.queue = queue  # an aio-pika queue (bind/unbind by routing key)
        self.exchange = exchange
        self.subscribers = subscribers
        self._unwanted_before: set[str] = set()

    async def want(self, patterns: Iterable[str]) -> None:
        """Bind every public event ``patterns`` name (a no-op for those already bound)."""
        for key in keys_for(patterns):
            await self.queue.bind(self.exchange, routing_key=key)

    async def wanted(self) -> set[str]:
        return set(keys_for(await self.subscribers.wanted_patterns()))

    async def reconcile(self) -> set[str]:
        """Bind what is wanted, unbind what was unwanted twice in a row; what is now bound
        for sure (the wanted events)."""
        wanted = await self.wanted()
        await self.want(wanted)
        unwanted = set(PUBLIC_EVENTS) - wanted
        going = unwanted & self._unwanted_before
        self._unwanted_before = unwanted - going
        if not going:
            return wanted
        for key in sorted(going):
            await self.queue.unbind(self.exchange, routing_key=key)
        again = await self.wanted()  # a subscription stored while we unbound
        await self.want(again & going)
        log.info("webhook event bindings trimmed", extra={
            "unbound": sorted(going - again), "bound": sorted(again)})
        return again
