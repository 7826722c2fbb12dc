"""One charger connection's protocol state. No I/O: the server feeds it events and sends
what it returns.

- Charger CALLs awaiting a service's reply (a charger that timed out may send the next one
  before the reply comes; a duplicate id of a pending CALL is a ProtocolError).
- The boot gate, from the first frame of every connection: while the station's
  registration (from admission, then from the last BootNotification answer) is Rejected, only
  BootNotification is allowed (SecurityError); while Pending, only BootNotification and
  messages the CSMS asked for with TriggerMessage or ExtendedTriggerMessage.
- CSMS calls: a FIFO, at most one outstanding CALL at a time, each with a deadline.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.codec import IncomingCall, IncomingError, IncomingResult
from services import ocpp16
from services.envelope import CallOutcome, CsmsCall
from services.errors import OcppError, ProtocolError, SecurityError

#: What a charger sends when it accepts a trigger, by trigger and requestedMessage (the same
#: name unless listed).
TRIGGERS: dict[str, dict[str, tuple[str, ...]]] = {
    "TriggerMessage": {},
    "ExtendedTriggerMessage": {
        "SignChargePointCertificate": ("SignCertificate",),
        "FirmwareStatusNotification": ("SignedFirmwareStatusNotification",
                                       "FirmwareStatusNotification"),
    },
}


@dataclass(slots=True)
class PendingCall:
    action: str
    started: float  # monotonic seconds, for latency


@dataclass(slots=True)
class Outstanding:
    unique_id: str
    call: CsmsCall


@dataclass
class Session:
    station: str
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # The registration: the station's at admission, then the last BootNotification answer.
    registration: str | None = None
    profile: int = 0  # the security profile this connection met at admission
    pending: dict[str, PendingCall] = field(default_factory=dict)
    queue: deque[CsmsCall] = field(default_factory=deque)
    outstanding: Outstanding | None = None
    triggered: set[str] = field(default_factory=set)
    closed: bool = False

    # --- charger -> CSMS ----------------------------------------------------------------

    def accept_call(self, call: IncomingCall, now: float) -> None:
        """Admit a CALL for forwarding, or raise the OcppError to answer it with."""
        if call.unique_id in self.pending:
            raise ProtocolError(f"message id {call.unique_id!r} is already in progress")
        if call.action != "BootNotification":
            if self.registration == "Rejected":
                raise SecurityError("BootNotification was rejected; boot again first")
            if self.registration == "Pending" and call.action not in self.triggered:
                raise SecurityError("registration is pending; only BootNotification or "
                                    "triggered messages are allowed")
        self.triggered.discard(call.action)
        self.pending[call.unique_id] = PendingCall(call.action, now)

    def complete_call(self, unique_id: str, payload: dict[str, Any] | None) -> PendingCall | None:
        """A service answered; None when nothing is pending under that id (stale reply)."""
        pending = self.pending.pop(unique_id, None)
        if pending is not None and pending.action == "BootNotification" and payload:
            self.registration = payload.get("status")
        return pending

    # --- CSMS -> charger ----------------------------------------------------------------

    def enqueue(self, call: CsmsCall) -> None:
        self.queue.append(call)

    def next_call(self) -> tuple[str, CsmsCall] | None:
        """The next CSMS call to send (id, call) if none is outstanding."""
        if self.outstanding is not None or not self.queue or self.closed:
            return None
        call = self.queue.popleft()
        unique_id = str(uuid.uuid4())
        self.outstanding = Outstanding(unique_id, call)
        return unique_id, call

    def answer(self, event: IncomingResult | IncomingError, at: datetime) -> CallOutcome | None:
        """The charger answered the outstanding call; None if it answered something else."""
        current = self.outstanding
        if current is None or current.unique_id != event.unique_id:
            return None
        self.outstanding = None
        call = current.call
        base = {"command_id": call.command_id, "station": self.station, "action": call.action,
                "at": at}
        if isinstance(event, IncomingError):
            return CallOutcome(**base, status="callerror", error_code=event.code,
                               error_description=event.description)
        try:
            ocpp16.validate(ocpp16.CALLRESULT, call.action, event.payload)
        except OcppError as exc:
            return CallOutcome(**base, status="invalid", error_code=exc.code,
                               error_description=f"invalid answer: {exc.description}")
        if call.action in TRIGGERS and event.payload.get("status") == "Accepted":
            requested = str(call.payload.get("requestedMessage"))
            self.triggered.update(TRIGGERS[call.action].get(requested, (requested,)))
        return CallOutcome(**base, status="result", payload=event.payload)

    def time_out(self, unique_id: str, at: datetime) -> CallOutcome | None:
        current = self.outstanding
        if current is None or current.unique_id != unique_id:
            return None
        self.outstanding = None
        return CallOutcome(command_id=current.call.command_id, station=self.station,
                           action=current.call.action, status="timeout", at=at)

    def close(self, at: datetime) -> list[CallOutcome]:
        """The connection ended: every unanswered CSMS call ends ``closed``."""
        self.closed = True
        calls = ([self.outstanding.call] if self.outstanding else []) + list(self.queue)
        self.outstanding = None
        self.queue.clear()
        self.pending.clear()
        return [CallOutcome(command_id=c.command_id, station=self.station, action=c.action,
                            status="closed", at=at) for c in calls]
