"""Events on ``{ns}.events``: their stable ids, their timestamps, and the public catalogue.

Every event body carries ``event_id`` and ``event_at`` besides its own fields. The id is
derived from what identifies the fact (a transaction's start: its transaction id; a status:
connector, status and the charger's timestamp; by default the charger call that caused it),
so the same fact emitted again — a redelivered call, a charger's retransmission, a retried
handler — has the same id, and a consumer that must act once (a webhook delivery) dedupes
on it. ``event_at`` is when GridLink emitted it (the fact's own time is the body's ``at``).

The public catalogue (:data:`PUBLIC_EVENTS`, documented in docs/webhooks.md) is what other
systems may subscribe to; other keys on the exchange (``health.*``, ``command.sent``,
``certificate.requested``) are GridLink's own plumbing.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from services.clock import iso, utcnow

STATION_CONNECTED = "station.connected"
STATION_DISCONNECTED = "station.disconnected"
STATION_BOOTED = "station.booted"
STATION_STATUS = "station.status"
TRANSACTION_STARTED = "transaction.started"
TRANSACTION_UPDATED = "transaction.updated"
TRANSACTION_STOPPED = "transaction.stopped"
COMMAND_FINISHED = "command.finished"
SECURITY_EVENT = "security.event"

#: What webhooks can subscribe to, in catalogue order.
PUBLIC_EVENTS: tuple[str, ...] = (
    STATION_CONNECTED, STATION_DISCONNECTED, STATION_BOOTED, STATION_STATUS,
    TRANSACTION_STARTED, TRANSACTION_UPDATED, TRANSACTION_STOPPED, COMMAND_FINISHED,
    SECURITY_EVENT,
)

ID_FIELD, AT_FIELD = "event_id", "event_at"


def event_id(routing_key: str, *identity: object) -> str:
    """The stable id of the event ``routing_key`` about the fact ``identity`` names."""
    parts = [iso(p) if isinstance(p, datetime) else p for p in (routing_key, *identity)]
    text = json.dumps(parts, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def stamped(routing_key: str, body: dict[str, Any], *identity: object,
            at: datetime | None = None) -> dict[str, Any]:
    """``body`` with its ``event_id`` (from ``identity``) and ``event_at`` (now)."""
    return {**body, ID_FIELD: event_id(routing_key, *identity),
            AT_FIELD: iso(at or utcnow())}
