"""A charger's plain data, no behaviour: its connectors, its registration, its CALLs.

``Phase`` is the connector's place in the charging-session script that
``simulator/session_script.py`` drives; ``Registration`` is where the charger is in the boot
sequence; ``PendingCall`` is a CALL waiting its turn and ``Outstanding`` the one in flight (at
most one CALL is outstanding per connection, OCPP-J §4.1.1).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class Registration(enum.StrEnum):
    """Where the charger is in the boot sequence."""

    OFFLINE = "Offline"
    BOOTING = "Booting"
    PENDING = "Pending"
    REJECTED = "Rejected"
    ACCEPTED = "Accepted"


class Phase(enum.IntEnum):
    """A connector's place in the charging-session script."""

    IDLE = 0
    AUTHORIZED = 1  # next: StatusNotification(Preparing)
    PREPARING = 2  # next: StartTransaction
    STARTED = 3  # next: StatusNotification(Charging)
    CHARGING = 4  # next: MeterValues until the session has sent M of them
    STOPPING = 5  # next: StopTransaction
    FINISHING = 6  # next: StatusNotification(Finishing)
    FINISHED = 7  # next: StatusNotification(Available)


@dataclass(slots=True)
class Connector:
    """One connector's state."""

    id: int
    status: str = "Available"
    phase: Phase = Phase.IDLE
    operative: bool = True
    pending_inoperative: bool = False
    id_tag: str | None = None
    transaction_id: int | None = None
    meter_wh: int = 0
    meter_sent: int = 0
    meter_target: int | None = None  # MeterValues in this session (None: not chosen yet)
    stop_reason: str | None = None
    reservation_id: int | None = None
    autonomous: bool = False  # driven by the charger itself (remote start), not the pacer
    next_sample_at: float | None = None


@dataclass(slots=True)
class PendingCall:
    """A CALL waiting its turn; the payload is built when it is first sent.

    A transaction message keeps the payload it was first sent with (``payload``): a resend
    is the same message (OCPP 1.6 §3.7), not a new reading.  ``failures`` counts the tries
    that got a CALLERROR or no answer (``TransactionMessageAttempts``); ``entry`` is its
    line in the charger's :class:`~simulator.ledger.Ledger`, if it keeps one.
    """

    action: str
    build: Callable[[], Any]
    on_result: Callable[[dict[str, Any]], None] | None = None
    on_failure: Callable[[str], None] | None = None
    payload: dict[str, Any] | None = None
    failures: int = 0
    entry: Any = None


@dataclass(slots=True)
class Outstanding:
    """The CALL in flight: its id, when it was sent and when it times out."""

    unique_id: str
    pending: PendingCall
    sent_at: float
    deadline: float
