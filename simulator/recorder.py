"""Where a charger reports what happened: the :class:`Recorder` protocol and its outcomes.

A CALL the charger sent ends with one outcome: :data:`OK` (a schema-valid CALLRESULT), a
CALLERROR code (the CSMS's), :data:`INVALID` (a CALLRESULT that failed its schema),
:data:`TIMEOUT` (no answer within the call timeout) or :data:`DISCONNECTED` (the connection
closed first).  :class:`simulator.stats.Stats` is the recorder of a whole fleet;
:class:`NullRecorder` records nothing.
"""

from __future__ import annotations

from typing import Protocol

OK = "ok"
TIMEOUT = "timeout"
INVALID = "invalid"
DISCONNECTED = "disconnected"


class Recorder(Protocol):
    """Where a charger reports what happened (``simulator.stats.Stats`` implements it)."""

    def call_sent(self, action: str) -> None:
        """A CALL was sent."""

    def call_done(self, action: str, latency_s: float, outcome: str) -> None:
        """A CALL ended: ``ok``, a CALLERROR code, ``timeout``, ``invalid`` or ``disconnected``."""

    def boot_status(self, charger_id: str, status: str, now: float) -> None:
        """A BootNotification was answered with ``status`` (or failed: ``error``)."""

    def csms_call(self, action: str, outcome: str) -> None:
        """A CSMS-initiated CALL was answered with ``outcome`` (a status or an error code)."""

    def malformed(self, reason: str) -> None:
        """A received frame was not OCPP-J or answered no outstanding call."""

    def transfer_done(self, kind: str, outcome: str) -> None:
        """A file transfer (``upload``, ``download``) ended: ``ok`` or why it failed."""


class NullRecorder:
    """A :class:`Recorder` that records nothing."""

    def call_sent(self, action: str) -> None:
        """Ignore."""

    def call_done(self, action: str, latency_s: float, outcome: str) -> None:
        """Ignore."""

    def boot_status(self, charger_id: str, status: str, now: float) -> None:
        """Ignore."""

    def csms_call(self, action: str, outcome: str) -> None:
        """Ignore."""

    def malformed(self, reason: str) -> None:
        """Ignore."""

    def transfer_done(self, kind: str, outcome: str) -> None:
        """Ignore."""


__all__ = ["DISCONNECTED", "INVALID", "OK", "TIMEOUT", "NullRecorder", "Recorder"]
