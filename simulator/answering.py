"""What the answers to CSMS-initiated calls see of a charger: the :class:`AnsweringCharger`.

The answer functions (:mod:`simulator.csms_calls`, the core profiles, and
:mod:`simulator.security_calls`, the security extension) take a charger, the CALL's payload
and the time, and return the CALLRESULT's ``ocpp.v16.call_result`` dataclass; they see the
charger only through this protocol.  :class:`simulator.charger.Charger` implements it and
imports the answer modules, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from simulator.charger_config import ChargerConfig
from simulator.configuration import Configuration
from simulator.connectors import Connector, PendingCall
from simulator.security import SecurityState
from simulator.session_script import SessionScript


class AnsweringCharger(Protocol):
    """What a charger offers the answer functions: its state and the CALLs it can queue."""

    id: str
    config: ChargerConfig
    configuration: Configuration
    connectors: list[Connector]
    script: SessionScript  # connectors, the session CALLs, remote start/stop
    charging_profiles: dict[int, dict[str, Any]]
    local_list: dict[str, dict[str, Any]]
    local_list_version: int
    wall_clock: Callable[[], float]
    security: SecurityState  # certificates, security log, file transfers

    def enqueue(self, pending: PendingCall) -> None:
        """Queue a CALL, sent after the answer (and after the CALLs queued before it)."""

    def boot_call(self) -> PendingCall:
        """A BootNotification."""

    def request_reset(self, reset_type: str) -> None:
        """Stop every transaction, then reconnect and boot again."""

    def request_reconnect(self) -> None:
        """Close after the answer and reconnect, keeping the queue (new credentials)."""

    def heartbeat_interval_changed(self, now: float) -> None:
        """HeartbeatInterval was changed: reschedule the heartbeat."""

    def security_event(self, kind: str, tech_info: str | None = None) -> None:
        """Log a security event, and send it when it is one the CSMS is told of."""


#: An answer function: ``handler(charger, payload, now) -> ocpp.v16.call_result.<Action>``.
Handler = Callable[[AnsweringCharger, dict[str, Any], float], Any]

__all__ = ["AnsweringCharger", "Handler"]
