"""One simulated OCPP 1.6 charge point: protocol state without I/O.

A :class:`Charger` is fed events by its driver (``simulator/fleet.py`` over a WebSocket, or a
test directly) and answers with the text frames to send::

    frames = charger.connected(now)          # -> [BootNotification CALL]
    frames = charger.received(text, now)     # a frame from the CSMS -> replies / next CALLs
    frames = charger.timer(now)              # at charger.deadline(): timeouts, heartbeats, ...
    frames = charger.step(now)               # the fleet's pacer: the next scripted CALL
    charger.disconnected(now)

State kept here: the registration status (boot, honouring Accepted/Pending/Rejected and the
interval), at most one outstanding CALL (OCPP-J §4.1.1) with its deadline, a queue of CALLs
waiting their turn, per-connector transactions and the configuration keys.  Every answered,
failed or timed-out CALL is reported to a :class:`Recorder` with its latency.

The *script* that the pacer drives for each connector is a charging session::

    Authorize -> StatusNotification(Preparing) -> StartTransaction -> StatusNotification(Charging)
    -> MeterValues x M -> StopTransaction -> StatusNotification(Finishing/Available)

Answers to CSMS-initiated calls live in ``simulator/csms_calls.py``.
"""

from __future__ import annotations

import enum
import itertools
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ocpp.v16 import call, enums
from ocpp.v16 import datatypes as dt

from simulator import csms_calls, frames
from simulator.configuration import Configuration, default_keys
from simulator.connectors import Connector, PendingCall, Phase

OK = "ok"
TIMEOUT = "timeout"
INVALID = "invalid"
DISCONNECTED = "disconnected"

#: Charger-initiated messages a real charger queues while offline and delivers later.
TRANSACTION_ACTIONS = frozenset({"StartTransaction", "StopTransaction", "MeterValues"})


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


class Validation:
    """Which frames are checked against the 1.6 schemas, shared by a whole fleet.

    ``all`` checks every CALL sent and every CALLRESULT received; ``first`` checks the first
    few of each kind (cheap enough for thousands of chargers); ``off`` checks none.
    CALLs from the CSMS are always checked, because the reply depends on it.
    """

    def __init__(self, mode: str = "all", first: int = 3) -> None:
        if mode not in ("all", "first", "off"):
            raise ValueError(f"validation mode must be all, first or off, not {mode!r}")
        self.mode = mode
        self._first = first
        self._seen: dict[tuple[int, str], int] = {}

    def wanted(self, message_type: int, action: str) -> bool:
        """Whether this frame should be checked."""
        if self.mode == "all":
            return True
        if self.mode == "off":
            return False
        key = (message_type, action)
        seen = self._seen.get(key, 0)
        if seen >= self._first:
            return False
        self._seen[key] = seen + 1
        return True


class Registration(enum.StrEnum):
    """Where the charger is in the boot sequence."""

    OFFLINE = "Offline"
    BOOTING = "Booting"
    PENDING = "Pending"
    REJECTED = "Rejected"
    ACCEPTED = "Accepted"


@dataclass(frozen=True, slots=True)
class ChargerConfig:
    """How one simulated charger behaves."""

    charger_id: str
    connectors: int = 1
    id_tag: str = "SIMTAG0001"
    vendor: str = "GridLink"
    model: str = "Simulator"
    firmware: str = "sim-1.0"
    meter_values_per_session: int = 8
    meter_step_wh: int = 250
    call_timeout_s: float = 30.0
    retry_interval_s: float = 10.0
    heartbeat_interval_s: float | None = None  # None: the interval from BootNotification.conf
    meter_interval_s: int = 60  # MeterValueSampleInterval for autonomous transactions
    script: str = "session"  # "session", "authorize" or "heartbeat"
    jitter: bool = False  # random first-session delay and session lengths (desynchronises a fleet)


@dataclass(slots=True)
class _Outstanding:
    unique_id: str
    pending: PendingCall
    sent_at: float
    deadline: float


class Charger:
    """One charge point's OCPP 1.6 state machine; see the module docstring."""

    def __init__(
        self,
        config: ChargerConfig,
        recorder: Recorder | None = None,
        validation: Validation | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.id = config.charger_id
        self.recorder: Recorder = recorder or NullRecorder()
        self.validation = validation or Validation("all")
        self.wall_clock = wall_clock
        self.registration = Registration.OFFLINE
        self.connectors = [Connector(i) for i in range(1, config.connectors + 1)]
        self.configuration = Configuration(
            default_keys(
                config.connectors, int(config.heartbeat_interval_s or 0), config.meter_interval_s
            )
        )
        self.queue: deque[PendingCall] = deque()
        self.outstanding: _Outstanding | None = None
        self.wants_close = False  # a Reset was accepted: the driver reconnects
        self.boots_accepted = 0
        self.local_list_version = 0
        self.local_list: dict[str, dict[str, Any]] = {}
        self.charging_profiles: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._boot_at: float | None = None
        self._heartbeat_at: float | None = None
        self._reset_requested = False
        self._next_connector = 0
        self._random = random.Random(config.charger_id)
        session_length = 7 + config.meter_values_per_session
        self._idle_turns = self._random.randrange(session_length) if config.jitter else 0
        self._now = 0.0  # the time of the event being handled (result callbacks use it)

    # --- driver events -------------------------------------------------------------------

    def connected(self, now: float) -> list[str]:
        """The WebSocket is open: send BootNotification."""
        self._now = now
        self.registration = Registration.BOOTING
        self.outstanding = None
        self.wants_close = False
        self._reset_requested = False
        self._boot_at = None
        self._heartbeat_at = None
        out: list[str] = []
        self._send(self.boot_call(), now, out)
        return out

    def disconnected(self, now: float) -> None:
        """The WebSocket closed; an outstanding transaction message is kept for the next one."""
        current = self.outstanding
        self.outstanding = None
        self.registration = Registration.OFFLINE
        self._boot_at = None
        self._heartbeat_at = None
        if current is not None:
            self.recorder.call_done(current.pending.action, now - current.sent_at, DISCONNECTED)
            if current.pending.action in TRANSACTION_ACTIONS:
                self.queue.appendleft(current.pending)
        # Only transaction messages survive a disconnect (OCPP 1.6 §4.8/§4.10).
        kept = [p for p in self.queue if p.action in TRANSACTION_ACTIONS]
        self.queue = deque(kept)

    def received(self, text: str | bytes, now: float) -> list[str]:
        """Handle one frame from the CSMS; return the frames to send in order."""
        self._now = now
        try:
            frame = frames.decode(text)
        except frames.FrameError as exc:
            self.recorder.malformed(str(exc))
            return []
        kind = frame[0]
        out: list[str] = []
        if kind == frames.CALL:
            self._answer(frame, now, out)
        elif kind in (frames.CALLRESULT, frames.CALLERROR):
            self._complete(frame, now, out)
        else:
            self.recorder.malformed(f"unknown message type {kind!r}")  # ignored (OCPP-J §4.1.3)
        self._pump(now, out)
        return out

    def timer(self, now: float) -> list[str]:
        """Run what is due at ``now``: call timeouts, boot retries, heartbeats, meter samples."""
        self._now = now
        out: list[str] = []
        current = self.outstanding
        if current is not None and now >= current.deadline:
            self.outstanding = None
            self.recorder.call_done(current.pending.action, now - current.sent_at, TIMEOUT)
            if current.pending.on_failure is not None:
                current.pending.on_failure(TIMEOUT)
        if self._boot_at is not None and now >= self._boot_at and self.outstanding is None:
            self._boot_at = None
            self._send(self.boot_call(), now, out)
        if self.registration is Registration.ACCEPTED:
            if self._heartbeat_at is not None and now >= self._heartbeat_at:
                self._heartbeat_at = self._heartbeat_due(now)
                if not any(p.action == "Heartbeat" for p in self.queue):
                    self.queue.append(PendingCall("Heartbeat", call.Heartbeat))
            for connector in self.connectors:
                due = connector.next_sample_at
                if due is not None and now >= due and connector.phase is Phase.CHARGING:
                    connector.next_sample_at = now + self._meter_interval()
                    self.queue.append(self._meter_values_call(connector))
        self._pump(now, out)
        return out

    def deadline(self) -> float | None:
        """When :meth:`timer` should next run (None: nothing scheduled)."""
        times = [
            t
            for t in (
                self.outstanding.deadline if self.outstanding else None,
                self._boot_at,
                self._heartbeat_at if self.registration is Registration.ACCEPTED else None,
            )
            if t is not None
        ]
        times.extend(c.next_sample_at for c in self.connectors if c.next_sample_at is not None)
        return min(times) if times else None

    @property
    def busy(self) -> bool:
        """A CALL is outstanding, queued, or the charger is not Accepted."""
        return (
            self.outstanding is not None
            or bool(self.queue)
            or self.registration is not Registration.ACCEPTED
            or self._reset_requested
        )

    def step(self, now: float) -> list[str]:
        """The pacer's turn: send this charger's next scripted CALL, if it can send one now."""
        self._now = now
        if self.busy:
            return []
        pending = self._next_scripted()
        if pending is None:
            return []
        out: list[str] = []
        self._send(pending, now, out)
        return out

    # --- CALLs this charger sends -------------------------------------------------------------

    def enqueue(self, pending: PendingCall) -> None:
        """Queue a CALL to be sent when the previous one is answered."""
        self.queue.append(pending)

    def _pump(self, now: float, out: list[str]) -> None:
        if self.outstanding is not None:
            return
        if self.registration is Registration.ACCEPTED and self.queue:
            self._send(self.queue.popleft(), now, out)
            return
        if self._reset_requested and not self.queue:
            self.wants_close = True

    def _send(self, pending: PendingCall, now: float, out: list[str]) -> None:
        payload = frames.to_payload(pending.build())
        if self.validation.wanted(frames.CALL, pending.action):
            frames.check(frames.CALL, pending.action, payload)
        unique_id = str(next(self._ids))
        self.outstanding = _Outstanding(unique_id, pending, now, now + self.config.call_timeout_s)
        self.recorder.call_sent(pending.action)
        out.append(frames.encode_call(unique_id, pending.action, payload))

    def _complete(self, frame: list[Any], now: float, out: list[str]) -> None:
        current = self.outstanding
        if current is None or frame[1] != current.unique_id:
            self.recorder.malformed("answer to no outstanding call")
            return
        self.outstanding = None
        action = current.pending.action
        latency = now - current.sent_at
        if frame[0] == frames.CALLERROR:
            code = frame[2] if len(frame) > 2 and isinstance(frame[2], str) else "GenericError"
            self.recorder.call_done(action, latency, code)
            if current.pending.on_failure is not None:
                current.pending.on_failure(code)
            return
        payload = frame[2]
        if self.validation.wanted(frames.CALLRESULT, action) and not frames.is_valid(
            frames.CALLRESULT, action, payload
        ):
            self.recorder.call_done(action, latency, INVALID)
            if current.pending.on_failure is not None:
                current.pending.on_failure(INVALID)
            return
        self.recorder.call_done(action, latency, OK)
        if current.pending.on_result is not None:
            current.pending.on_result(payload)

    # --- CSMS-initiated CALLs -----------------------------------------------------------------

    def _answer(self, frame: list[Any], now: float, out: list[str]) -> None:
        unique_id = frame[1]
        if len(frame) < 4 or not isinstance(frame[2], str):
            out.append(frames.encode_error(unique_id, "FormationViolation", "bad CALL frame"))
            self.recorder.csms_call("?", "FormationViolation")
            return
        action, payload = frame[2], frame[3]
        handler = csms_calls.HANDLERS.get(action)
        if handler is None:
            code = (
                "NotSupported" if action in csms_calls.KNOWN_NOT_SUPPORTED else ("NotImplemented")
            )
            out.append(frames.encode_error(unique_id, code, f"{action} is not supported"))
            self.recorder.csms_call(action, code)
            return
        try:
            frames.check(frames.CALL, action, payload)
        except frames.PayloadError as exc:
            out.append(frames.encode_error(unique_id, exc.code, exc.description))
            self.recorder.csms_call(action, exc.code)
            return
        result = frames.to_payload(handler(self, payload, now))
        if self.validation.wanted(frames.CALLRESULT, action):
            frames.check(frames.CALLRESULT, action, result)
        out.append(frames.encode_result(unique_id, result))
        self.recorder.csms_call(action, str(result.get("status", "ok")))

    # --- boot and heartbeat ---------------------------------------------------------------

    def boot_call(self) -> PendingCall:
        """The BootNotification CALL (also sent again on TriggerMessage)."""
        return PendingCall(
            "BootNotification",
            lambda: call.BootNotification(
                charge_point_vendor=self.config.vendor,
                charge_point_model=self.config.model,
                charge_point_serial_number=self.id[:25],
                firmware_version=self.config.firmware,
            ),
            on_result=self._boot_answered,
            on_failure=self._boot_failed,
        )

    def _boot_answered(self, payload: dict[str, Any]) -> None:
        status = payload.get("status", "")
        interval = payload.get("interval", 0)
        now = self._now
        self.recorder.boot_status(self.id, status, now)
        if status == "Accepted":
            first = self.registration is not Registration.ACCEPTED
            self.registration = Registration.ACCEPTED
            self.boots_accepted += 1
            if self.config.heartbeat_interval_s is None and isinstance(interval, int):
                self.configuration.change("HeartbeatInterval", str(max(interval, 0)))
            self._heartbeat_at = self._heartbeat_due(now)
            if first:
                for connector_id in range(len(self.connectors) + 1):
                    self.queue.append(self._status_call(connector_id))
            return
        self.registration = Registration.PENDING if status == "Pending" else Registration.REJECTED
        wait = (
            interval
            if isinstance(interval, int) and interval > 0
            else (self.config.retry_interval_s)
        )
        self._boot_at = now + wait

    def _boot_failed(self, outcome: str) -> None:
        now = self._now
        self.recorder.boot_status(self.id, "error", now)
        if self.registration is not Registration.ACCEPTED:
            self.registration = Registration.BOOTING
            self._boot_at = now + self.config.retry_interval_s

    def _heartbeat_due(self, now: float) -> float | None:
        interval = (
            self.config.heartbeat_interval_s
            if self.config.heartbeat_interval_s is not None
            else self.configuration.get_int("HeartbeatInterval")
        )
        return now + interval if interval and interval > 0 else None

    def heartbeat_interval_changed(self, now: float) -> None:
        """HeartbeatInterval was changed by the CSMS: reschedule."""
        if self.registration is Registration.ACCEPTED:
            self._heartbeat_at = self._heartbeat_due(now)

    def _meter_interval(self) -> float:
        return float(max(self.configuration.get_int("MeterValueSampleInterval", 60), 1))

    # --- connectors and the session script ------------------------------------------------

    def connector(self, connector_id: int) -> Connector | None:
        """Connector ``connector_id`` (1-based), or None when there is no such connector."""
        if 1 <= connector_id <= len(self.connectors):
            return self.connectors[connector_id - 1]
        return None

    def _status_call(self, connector_id: int, status: str | None = None) -> PendingCall:
        def build() -> call.StatusNotification:
            connector = self.connector(connector_id)
            if status is not None and connector is not None:
                connector.status = status
            if connector is None:
                current = (
                    "Available" if any(c.operative for c in self.connectors) else ("Unavailable")
                )
            else:
                current = connector.status
            return call.StatusNotification(
                connector_id=connector_id,
                error_code=enums.ChargePointErrorCode.no_error,
                status=enums.ChargePointStatus(current),
                timestamp=frames.timestamp(self.wall_clock()),
            )

        return PendingCall("StatusNotification", build)

    def status_call(self, connector_id: int, status: str | None = None) -> PendingCall:
        """A StatusNotification for ``connector_id`` (0: the whole charger), setting ``status``."""
        return self._status_call(connector_id, status)

    def _meter_values_call(self, connector: Connector) -> PendingCall:
        def build() -> call.MeterValues:
            connector.meter_wh += self.config.meter_step_wh
            return call.MeterValues(
                connector_id=connector.id,
                transaction_id=connector.transaction_id,
                meter_value=[
                    dt.MeterValue(
                        timestamp=frames.timestamp(self.wall_clock()),
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

    def meter_values_call(self, connector: Connector) -> PendingCall:
        """A MeterValues with the connector's Energy.Active.Import.Register."""
        return self._meter_values_call(connector)

    def _next_scripted(self) -> PendingCall | None:
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
                self._next_connector = (connector.id) % count
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
            return self._meter_values_call(connector)
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

    def _status_step(self, connector: Connector, status: str, then: Phase) -> PendingCall:
        pending = self._status_call(connector.id, status)
        pending.on_result = lambda _p: self._advance(connector, then)
        pending.on_failure = lambda _o: self._advance(connector, then)
        return pending

    def _start_call(self, connector: Connector) -> PendingCall:
        def build() -> call.StartTransaction:
            return call.StartTransaction(
                connector_id=connector.id,
                id_tag=connector.id_tag or self.config.id_tag,
                meter_start=connector.meter_wh,
                timestamp=frames.timestamp(self.wall_clock()),
                reservation_id=connector.reservation_id,
            )

        def answered(payload: dict[str, Any]) -> None:
            connector.reservation_id = None
            connector.transaction_id = payload.get("transactionId")
            connector.meter_sent = 0
            if payload.get("idTagInfo", {}).get("status") == "Accepted":
                connector.next_sample_at = (
                    self._now + self._meter_interval() if connector.autonomous else None
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
                timestamp=frames.timestamp(self.wall_clock()),
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
                self.queue.append(pending)

    # --- operations used by the CSMS-call handlers ------------------------------------------

    def remote_start(self, connector: Connector, id_tag: str) -> None:
        """Start a transaction on ``connector`` for ``id_tag`` without the pacer."""
        connector.autonomous = True
        connector.id_tag = id_tag
        connector.meter_sent = 0
        if self.configuration.get_bool("AuthorizeRemoteTxRequests"):
            self.queue.append(self._authorize_call(connector, id_tag))
        else:
            self._advance(connector, Phase.AUTHORIZED)

    def stop_transaction(self, connector: Connector, reason: str) -> None:
        """Stop the running transaction on ``connector`` with ``reason``, without the pacer."""
        connector.autonomous = True
        connector.stop_reason = reason
        self._advance(connector, Phase.STOPPING)

    def request_reset(self, reset_type: str) -> None:
        """Stop every transaction, then ask the driver to reconnect (a reboot)."""
        reason = "HardReset" if reset_type == "Hard" else "SoftReset"
        for connector in self.connectors:
            if connector.transaction_id is not None and connector.phase in (
                Phase.STARTED,
                Phase.CHARGING,
                Phase.STOPPING,
            ):
                connector.stop_reason = reason
                self.queue.append(self._stop_call(connector))
            connector.phase = Phase.IDLE
            connector.autonomous = False
            connector.next_sample_at = None
            connector.status = "Available" if connector.operative else "Unavailable"
        self._reset_requested = True

    @property
    def transactions(self) -> dict[int, int]:
        """Running transactions: connector id -> transaction id."""
        return {c.id: c.transaction_id for c in self.connectors if c.transaction_id is not None}


__all__ = [
    "DISCONNECTED",
    "INVALID",
    "OK",
    "TIMEOUT",
    "Charger",
    "ChargerConfig",
    "Connector",
    "NullRecorder",
    "PendingCall",
    "Phase",
    "Recorder",
    "Registration",
    "Validation",
]
