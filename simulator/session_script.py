"""The script a simulated charger's connectors follow: charging sessions, and the CALLs in them.

The fleet's pacer gives each charger turns (:meth:`simulator.charger.Charger.step`); on its
turn a charger sends the next CALL of its :class:`SessionScript`, which walks the connectors,
round-robin, through charging sessions::

    Authorize -> StatusNotification(Preparing) -> StartTransaction -> StatusNotification(Charging)
    -> MeterValues x M -> StopTransaction -> StatusNotification(Finishing/Available)

The answer to each CALL moves its connector to the next :class:`~simulator.connectors.Phase`
(an Authorize or StartTransaction that is not Accepted ends the session early).  With
``jitter`` a charger's first session starts a random number of turns later and M varies
around its configured value (seeded by the charger id: a run is reproducible).  The
``authorize`` and ``heartbeat`` scripts send only Authorize or only Heartbeat.

Sessions the CSMS starts or stops (RemoteStartTransaction, RemoteStopTransaction,
UnlockConnector, Reset) run *autonomously*: the script queues each next CALL itself instead
of waiting for the pacer, and samples MeterValues every MeterValueSampleInterval.

The script sends nothing: it builds :class:`~simulator.connectors.PendingCall` s, returns the
pacer's and hands the others to ``enqueue`` (the charger's queue).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ocpp.v16 import call, enums
from ocpp.v16 import datatypes as dt

from simulator import frames
from simulator.charger_config import ChargerConfig
from simulator.configuration import Configuration
from simulator.connectors import Connector, PendingCall, Phase

#: CALLs in one session besides its MeterValues (for the jittered first delay).
_SESSION_CALLS = 7


class SessionScript:
    """One charger's charging sessions; see the module docstring."""

    def __init__(
        self,
        config: ChargerConfig,
        connectors: list[Connector],
        configuration: Configuration,
        *,
        enqueue: Callable[[PendingCall], None],
        now: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        """Drive ``connectors``; ``now`` is the time of the event being handled."""
        self.config = config
        self.connectors = connectors
        self.configuration = configuration
        self._enqueue = enqueue
        self._now = now
        self._wall_clock = wall_clock
        self._next_connector = 0
        self._random = random.Random(config.charger_id)
        session_length = _SESSION_CALLS + config.meter_values_per_session
        self._idle_turns = self._random.randrange(session_length) if config.jitter else 0

    def connector(self, connector_id: int) -> Connector | None:
        """Connector ``connector_id`` (1-based), or None when there is no such connector."""
        if 1 <= connector_id <= len(self.connectors):
            return self.connectors[connector_id - 1]
        return None

    # --- the pacer's turn ----------------------------------------------------------------

    def next_call(self) -> PendingCall | None:
        """The next scripted CALL, or None when no connector has one to send now."""
        script = self.config.script
        if script == "authorize":
            return PendingCall("Authorize", lambda: call.Authorize(id_tag=self.config.id_tag))
        if script == "heartbeat":
            return PendingCall("Heartbeat", call.Heartbeat)
        if self._idle_turns > 0:  # not yet: this charger's first session starts later
            self._idle_turns -= 1
            return None
        count = len(self.connectors)
        for offset in range(count):
            connector = self.connectors[(self._next_connector + offset) % count]
            pending = self._session_call(connector)
            if pending is not None:
                self._next_connector = connector.id % count
                return pending
        return None

    def _session_call(self, connector: Connector) -> PendingCall | None:
        phase = connector.phase
        if connector.autonomous and phase is not Phase.CHARGING:
            return None
        if phase is Phase.IDLE:
            if not connector.operative or connector.reservation_id is not None:
                return None
            return self._authorize_call(connector, self.config.id_tag)
        return self._phase_call(connector)

    def _phase_call(self, connector: Connector) -> PendingCall | None:
        phase = connector.phase
        if phase is Phase.AUTHORIZED:
            return self._status_step(connector, "Preparing", Phase.PREPARING)
        if phase is Phase.PREPARING:
            return self._start_call(connector)
        if phase is Phase.STARTED:
            return self._status_step(connector, "Charging", Phase.CHARGING)
        if phase is Phase.CHARGING:
            if connector.meter_sent >= self._meter_target(connector):
                connector.stop_reason = "Local"
                return self._stop_call(connector)
            connector.meter_sent += 1
            return self.meter_values_call(connector)
        if phase is Phase.STOPPING:
            return self._stop_call(connector)
        if phase is Phase.FINISHING:
            return self._status_step(connector, "Finishing", Phase.FINISHED)
        if phase is Phase.FINISHED:
            operative = connector.operative and not connector.pending_inoperative
            status = "Available" if operative else "Unavailable"
            if connector.reservation_id is not None:
                status = "Reserved"
            return self._status_step(connector, status, Phase.IDLE)
        return None

    def _meter_target(self, connector: Connector) -> int:
        """MeterValues in this connector's session (random around M when jittering)."""
        if connector.meter_target is None:
            m = self.config.meter_values_per_session
            connector.meter_target = (
                self._random.randint(max(1, m // 2), m + m // 2) if self.config.jitter else m
            )
        return connector.meter_target

    def _advance(self, connector: Connector, phase: Phase) -> None:
        connector.phase = phase
        if phase is Phase.IDLE:
            connector.autonomous = False
            connector.meter_sent = 0
            connector.meter_target = None
            if connector.pending_inoperative:
                connector.pending_inoperative = False
                connector.operative = False
            return
        if connector.autonomous and phase is not Phase.CHARGING:
            pending = self._phase_call(connector)
            if pending is not None:
                self._enqueue(pending)

    # --- the CALLs of a session --------------------------------------------------------------

    def status_call(self, connector_id: int, status: str | None = None) -> PendingCall:
        """A StatusNotification for ``connector_id`` (0: the whole charger), setting ``status``."""

        def build() -> call.StatusNotification:
            connector = self.connector(connector_id)
            if status is not None and connector is not None:
                connector.status = status
            if connector is None:
                current = (
                    "Available" if any(c.operative for c in self.connectors) else "Unavailable"
                )
            else:
                current = connector.status
            return call.StatusNotification(
                connector_id=connector_id,
                error_code=enums.ChargePointErrorCode.no_error,
                status=enums.ChargePointStatus(current),
                timestamp=frames.timestamp(self._wall_clock()),
            )

        return PendingCall("StatusNotification", build)

    def meter_values_call(self, connector: Connector) -> PendingCall:
        """A MeterValues with the connector's Energy.Active.Import.Register."""

        def build() -> call.MeterValues:
            connector.meter_wh += self.config.meter_step_wh
            return call.MeterValues(
                connector_id=connector.id,
                transaction_id=connector.transaction_id,
                meter_value=[
                    dt.MeterValue(
                        timestamp=frames.timestamp(self._wall_clock()),
                        sampled_value=[
                            dt.SampledValue(
                                value=str(connector.meter_wh),
                                context=enums.ReadingContext.sample_periodic,
                                measurand=enums.Measurand.energy_active_import_register,
                                unit=enums.UnitOfMeasure.wh,
                            )
                        ],
                    )
                ],
            )

        return PendingCall("MeterValues", build)

    def _authorize_call(self, connector: Connector, id_tag: str) -> PendingCall:
        def answered(payload: dict[str, Any]) -> None:
            if payload.get("idTagInfo", {}).get("status") == "Accepted":
                connector.id_tag = id_tag
                self._advance(connector, Phase.AUTHORIZED)
            else:
                self._advance(connector, Phase.IDLE)

        return PendingCall(
            "Authorize",
            lambda: call.Authorize(id_tag=id_tag),
            on_result=answered,
            on_failure=lambda _outcome: self._advance(connector, Phase.IDLE),
        )

    def _status_step(self, connector: Connector, status: str, then: Phase) -> PendingCall:
        pending = self.status_call(connector.id, status)
        pending.on_result = lambda _p: self._advance(connector, then)
        pending.on_failure = lambda _o: self._advance(connector, then)
        return pending

    def _start_call(self, connector: Connector) -> PendingCall:
        def build() -> call.StartTransaction:
            return call.StartTransaction(
                connector_id=connector.id,
                id_tag=connector.id_tag or self.config.id_tag,
                meter_start=connector.meter_wh,
                timestamp=frames.timestamp(self._wall_clock()),
                reservation_id=connector.reservation_id,
            )

        def answered(payload: dict[str, Any]) -> None:
            connector.reservation_id = None
            connector.transaction_id = payload.get("transactionId")
            connector.meter_sent = 0
            if payload.get("idTagInfo", {}).get("status") == "Accepted":
                connector.next_sample_at = (
                    self._now() + self.meter_interval() if connector.autonomous else None
                )
                self._advance(connector, Phase.STARTED)
            else:
                connector.stop_reason = "DeAuthorized"
                self._advance(connector, Phase.STOPPING)

        return PendingCall(
            "StartTransaction",
            build,
            on_result=answered,
            on_failure=lambda _o: self._advance(connector, Phase.FINISHED),
        )

    def _stop_call(self, connector: Connector) -> PendingCall:
        transaction_id = connector.transaction_id if connector.transaction_id is not None else -1
        reason = connector.stop_reason or "Local"
        id_tag = connector.id_tag
        connector.phase = Phase.STOPPING
        connector.next_sample_at = None

        def build() -> call.StopTransaction:
            return call.StopTransaction(
                meter_stop=connector.meter_wh,
                timestamp=frames.timestamp(self._wall_clock()),
                transaction_id=transaction_id,
                reason=enums.Reason(reason),
                id_tag=id_tag,
            )

        def done(_result: object) -> None:
            connector.transaction_id = None
            connector.stop_reason = None
            connector.id_tag = None
            self._advance(connector, Phase.FINISHING)

        return PendingCall("StopTransaction", build, on_result=done, on_failure=done)

    # --- sampling of autonomous transactions ---------------------------------------------------

    def meter_interval(self) -> float:
        """Seconds between MeterValues of an autonomous transaction (MeterValueSampleInterval)."""
        return float(max(self.configuration.get_int("MeterValueSampleInterval", 60), 1))

    def sample_times(self) -> list[float]:
        """When each connector's next MeterValues sample is due (connectors that sample)."""
        return [c.next_sample_at for c in self.connectors if c.next_sample_at is not None]

    def queue_due_samples(self, now: float) -> None:
        """Queue the MeterValues of every charging connector whose sample is due at ``now``."""
        for connector in self.connectors:
            due = connector.next_sample_at
            if due is not None and now >= due and connector.phase is Phase.CHARGING:
                connector.next_sample_at = now + self.meter_interval()
                self._enqueue(self.meter_values_call(connector))

    # --- sessions the CSMS starts and stops -------------------------------------------------

    def remote_start(self, connector: Connector, id_tag: str) -> None:
        """Start a transaction on ``connector`` for ``id_tag`` without the pacer."""
        connector.autonomous = True
        connector.id_tag = id_tag
        connector.meter_sent = 0
        if self.configuration.get_bool("AuthorizeRemoteTxRequests"):
            self._enqueue(self._authorize_call(connector, id_tag))
        else:
            self._advance(connector, Phase.AUTHORIZED)

    def stop_transaction(self, connector: Connector, reason: str) -> None:
        """Stop the running transaction on ``connector`` with ``reason``, without the pacer."""
        connector.autonomous = True
        connector.stop_reason = reason
        self._advance(connector, Phase.STOPPING)

    def reset(self, reset_type: str) -> None:
        """Queue a StopTransaction (Hard/SoftReset) for each running transaction; idle all."""
        reason = "HardReset" if reset_type == "Hard" else "SoftReset"
        for connector in self.connectors:
            if connector.transaction_id is not None and connector.phase in (
                Phase.STARTED,
                Phase.CHARGING,
                Phase.STOPPING,
            ):
                connector.stop_reason = reason
                self._enqueue(self._stop_call(connector))
            connector.phase = Phase.IDLE
            connector.autonomous = False
            connector.next_sample_at = None
            connector.status = "Available" if connector.operative else "Unavailable"


__all__ = ["SessionScript"]
