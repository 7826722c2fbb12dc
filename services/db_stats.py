"""Database round trips per (collection, command, work), from pymongo's command monitoring.

With GRIDLINK_DB_COMMAND_STATS a service's client carries a :class:`CommandStats` listener
that counts every command it sends and how long the server took, as
``gridlink_service_db_commands_total{component,collection,command,work}`` and
``gridlink_service_db_command_seconds{component,collection,command}``. ``work`` is what the
process was doing when the command was sent: the routing key of the consumed message
(``call.StartTransaction``, ``transaction.started``, ...), set by :func:`working_on` around
its handling, or ``other`` (health pings, index creation, timers). A write coalesced across
messages is counted once, under the message whose handling sent it. The benchmark scrapes
the counters before and after a window and divides by the answered messages per action.

Off by default: the listener costs a little CPU per command.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from pymongo import monitoring

from services.metrics import DB_COMMAND_SECONDS, DB_COMMANDS

#: The routing key of the message being handled in this task (``other`` outside one).
WORK: ContextVar[str] = ContextVar("gridlink_db_work", default="other")

#: Commands whose first field is no collection name.
_NO_COLLECTION = frozenset({"ping", "hello", "ismaster", "isMaster", "endSessions",
                            "buildInfo", "serverStatus", "killCursors", "abortTransaction",
                            "commitTransaction"})


@contextlib.contextmanager
def working_on(work: str) -> Iterator[None]:
    """Attribute the database commands sent meanwhile (in this task and tasks it starts)."""
    token = WORK.set(work)
    try:
        yield
    finally:
        WORK.reset(token)


def collection_of(command_name: str, command: Any) -> str:
    """The collection a command addresses (``-`` for server commands)."""
    if command_name in _NO_COLLECTION:
        return "-"
    if command_name == "getMore":
        return str(command.get("collection", "-"))
    value = command.get(command_name)
    return value if isinstance(value, str) else "-"


class CommandStats(monitoring.CommandListener):
    """Counts and times a client's commands, labelled by component, collection and work."""

    def __init__(self, component: str) -> None:
        self.component = component
        self._pending: dict[tuple[Any, int], str] = {}  # (connection, request id) -> collection

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        collection = collection_of(event.command_name, event.command)
        self._pending[(event.connection_id, event.request_id)] = collection
        DB_COMMANDS.labels(self.component, collection, event.command_name, WORK.get()).inc()

    def _finished(self, event: monitoring.CommandSucceededEvent
                  | monitoring.CommandFailedEvent) -> None:
        collection = self._pending.pop((event.connection_id, event.request_id), "-")
        DB_COMMAND_SECONDS.labels(self.component, collection, event.command_name).observe(
            event.duration_micros / 1e6)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finished(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finished(event)
