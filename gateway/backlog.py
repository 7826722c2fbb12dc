"""How far behind the back end is, seen from one gateway: the charger calls it forwarded that
are not answered yet, plus the handshakes waiting for authz's admission.

A reconnect storm (thousands of chargers at once, after a network or pod outage) must be taken
at the speed the services answer. Admitting everyone at once only queues their
BootNotifications behind each other until each waits longer than its charger's timeout: the
charger gives up, boots again, and the work done for the first boot is lost — with a few
thousand chargers the gateway ends up answering nobody in time. So the handshake refuses a
new connection with 503 and ``Retry-After`` while the backlog is at
``GRIDLINK_GATEWAY_MAX_BACKLOG``: a refused charger costs one HTTP answer and comes back
after its backoff, and the admitted ones are answered well within their timeouts. Chargers
already connected are never refused anything; their calls count, so a back end that is
slow for everyone also slows down who connects.

A call counts from when it is published until its reply is delivered, its connection ends
or :data:`FORGET_AFTER_S` pass (a reply that never comes — a service that died — does not
keep counting).
"""

from __future__ import annotations

import time
from collections.abc import Callable

FORGET_AFTER_S = 30.0  # a charger has given up on its call by then (OCPP-J timeouts)


class Backlog:
    """Calls in flight (by session and unique id, oldest first) and handshakes admitting."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._calls: dict[tuple[str, str], float] = {}  # insertion order = age order
        self.admitting = 0

    def call_sent(self, session: str, unique_id: str) -> None:
        self._calls.pop((session, unique_id), None)
        self._calls[(session, unique_id)] = self._clock()

    def call_answered(self, session: str, unique_id: str) -> None:
        self._calls.pop((session, unique_id), None)

    def session_ended(self, session: str, unique_ids: list[str]) -> None:
        for unique_id in unique_ids:
            self._calls.pop((session, unique_id), None)

    def size(self) -> int:
        """Calls in flight (the forgotten ones dropped) plus handshakes admitting."""
        horizon = self._clock() - FORGET_AFTER_S
        while self._calls:
            key, started = next(iter(self._calls.items()))
            if started > horizon:
                break
            del self._calls[key]
        return len(self._calls) + self.admitting
