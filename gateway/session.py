"""One charger connection's protocol state. No I/O: the server feeds it events and sends
what it returns.

- Charger CALLs awaiting a service's reply; a duplicate id of a pending CALL is a
  ProtocolError (OCPP-J §4.2.3: "an existing call with the same unique identifier is being
  handled already").
- One outstanding charger CALL (OCPP-J §4.1.1: a side sends no CALL before the previous
  one is answered or timed out). A CALL that arrives while the previous one awaits its
  reply is not refused — a CALLERROR would make a charger retry a transaction message and
  then discard it — but held: :meth:`Session.receive_call` says "wait", the connection reads
  no further frame until the reply is delivered (or ``station_call_wait_s`` passed: then the
  held CALL goes on anyway, :meth:`Session.stop_waiting`), and the services see one CALL of
  a station at a time, in the order it sent them.
- A token bucket per connection (:class:`CallRate`, ``station_calls_per_s`` on average,
  ``station_call_burst`` at once): a CALL beyond it is delayed by the seconds
  :meth:`CallRate.take` returns — backpressure (the connection reads nothing meanwhile, the
  charger's TCP window fills), never an error.
- Answers to no outstanding CSMS call: counted, logged at most once a minute
  (:meth:`Session.unmatched_answer`).
- The boot gate, from the first frame of every connection: while the station's
  registration (from admission, then from the last BootNotification answer) is Rejected, only
  BootNotification is allowed (SecurityError); while Pending, only BootNotification and
  messages the CSMS asked for with TriggerMessage or ExtendedTriggerMessage.
- CSMS calls: a FIFO, at most one outstanding CALL at a time, each with a deadline.
"""

from __future__ import annotations

import math
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


UNMATCHED_LOG_INTERVAL_S = 60.0  # answers to no outstanding call: one log line a minute


@dataclass(slots=True)
class CallRate:
    """A token bucket: ``burst`` CALLs at once, ``per_s`` on average. No I/O, no clock of
    its own: the caller passes monotonic seconds."""

    per_s: float = 20.0
    burst: int = 200
    tokens: float = math.nan  # full at the first call
    updated: float = 0.0

    def take(self, now: float) -> float:
        """Count one CALL; the seconds to wait before it may be handled (0: at once).

        The bucket may go below zero by the CALL being delayed: it is repaid by the wait,
        so a caller that waits out each delay before reading the next frame never lets a
        debt grow."""
        if math.isnan(self.tokens):
            self.tokens = float(self.burst)
        else:
            self.tokens = min(float(self.burst),
                              self.tokens + (now - self.updated) * self.per_s)
        self.updated = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.per_s


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
    rate: CallRate = field(default_factory=CallRate)
    # The charger CALL forwarded last whose reply is still awaited (None: the next may go).
    awaiting: str | None = None
    unmatched: int = 0  # answers to no outstanding CSMS call since the last log line
    unmatched_logged: float = -math.inf  # when that line was written (monotonic)

    # --- charger -> CSMS ----------------------------------------------------------------

    def receive_call(self, call: IncomingCall) -> bool:
        """The first look at a charger CALL: raise ProtocolError for the id of a CALL still
        in progress; True when it may be accepted now, False when it must wait for the
        reply to the outstanding one (then :meth:`accept_call` it once
        :meth:`complete_call` or :meth:`stop_waiting` freed the way)."""
        if call.unique_id in self.pending:
            raise ProtocolError(f"message id {call.unique_id!r} is already in progress")
        return self.awaiting is None

    def stop_waiting(self) -> str | None:
        """The outstanding CALL's reply is overdue: let the next one go (a late reply is
        still delivered). The id no longer waited for, if any."""
        overdue, self.awaiting = self.awaiting, None
        return overdue

    def accept_call(self, call: IncomingCall, now: float) -> None:
        """Admit a CALL for forwarding (it becomes the outstanding one), or raise the
        OcppError to answer it with."""
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
        self.awaiting = call.unique_id

    def complete_call(self, unique_id: str, payload: dict[str, Any] | None) -> PendingCall | None:
        """A service answered (or the gateway did); None when nothing is pending under that
        id (stale reply)."""
        pending = self.pending.pop(unique_id, None)
        if self.awaiting == unique_id:
            self.awaiting = None
        if pending is not None and pending.action == "BootNotification" and payload:
            self.registration = payload.get("status")
        return pending

    def unmatched_answer(self, now: float) -> int | None:
        """Count an answer to no outstanding CSMS call; when a log line is due (the first,
        then at most one a minute), how many it reports."""
        self.unmatched += 1
        if now - self.unmatched_logged < UNMATCHED_LOG_INTERVAL_S:
            return None
        count, self.unmatched, self.unmatched_logged = self.unmatched, 0, now
        return count

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
        self.awaiting = None
        return [CallOutcome(command_id=c.command_id, station=self.station, action=c.action,
                            status="closed", at=at) for c in calls]
