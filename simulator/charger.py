"""One simulated OCPP 1.6 charge point's protocol core: state without I/O.

A :class:`Charger` is fed events by its driver (``simulator/link.py`` over a WebSocket, or a
test directly) and answers with the text frames to send::

    frames = charger.connected(now)          # -> [BootNotification CALL]
    frames = charger.received(text, now)     # a frame from the CSMS -> replies / next CALLs
    frames = charger.timer(now)              # at charger.deadline(): timeouts, heartbeats, ...
    frames = charger.step(now)               # the fleet's pacer: the next scripted CALL
    charger.disconnected(now)
    charger.security_event(kind, tech_info)  # e.g. a TLS handshake that failed
    for transfer in charger.take_transfers():              # GetLog, SignedUpdateFirmware
        frames = charger.transfer_started(transfer, now)   # ... the driver runs it, then
        frames = charger.transfer_done(transfer, outcome, now)

State kept here: the registration status (boot, honouring Accepted/Pending/Rejected and the
interval), at most one outstanding CALL (OCPP-J §4.1.1) with its deadline, a queue of CALLs
waiting their turn (only transaction messages and security events survive a disconnect),
the connectors and the configuration keys.  Every answered, failed or timed-out CALL is
reported to a :class:`~simulator.recorder.Recorder` with its latency.

What the charger sends on the pacer's turns, and how the connectors move through a charging
session, is its :class:`~simulator.session_script.SessionScript`; CALLs from the CSMS are
answered by :mod:`simulator.dispatch` with the answer functions of :mod:`simulator.csms_calls`
and :mod:`simulator.security_calls`, which see the charger through the
:class:`~simulator.answering.AnsweringCharger` protocol.  Its certificates, security log and
file transfers are its :class:`~simulator.security.SecurityState`.

Long on purpose: one state machine whose transitions share its fields (the outstanding CALL,
the queue, the registration, the retry hold); what stands alone is already split out.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ocpp.v16 import call

from simulator import dispatch, frames, security_calls
from simulator.actions import KEPT_OFFLINE_ACTIONS, TRANSACTION_ACTIONS
from simulator.charger_config import ChargerConfig
from simulator.configuration import Configuration, charger_keys
from simulator.connectors import Connector, Outstanding, PendingCall, Phase, Registration
from simulator.errors import FrameError
from simulator.ledger import Ledger
from simulator.recorder import DISCONNECTED, INVALID, OK, TIMEOUT, NullRecorder, Recorder
from simulator.security import SENT_EVENTS, SecurityState, Transfer, TransferOutcome
from simulator.session_script import SessionScript
from simulator.validation import Validation


class Charger:
    """One charge point's OCPP 1.6 state machine; see the module docstring."""

    def __init__(
        self,
        config: ChargerConfig,
        recorder: Recorder | None = None,
        validation: Validation | None = None,
        wall_clock: Callable[[], float] = time.time,
        ledger: Ledger | None = None,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.id = config.charger_id
        self.recorder: Recorder = recorder or NullRecorder()
        self.validation = validation or Validation("all")
        self.wall_clock = wall_clock
        self.registration = Registration.OFFLINE
        self.connectors = [Connector(i) for i in range(1, config.connectors + 1)]
        self.configuration = Configuration(charger_keys(config))
        self.queue: deque[PendingCall] = deque()
        self.outstanding: Outstanding | None = None
        self.wants_close = False  # a Reset, new credentials: the driver reconnects
        self.close_reason: str | None = None  # why: "reset", "new password"
        self.boots_accepted = 0
        self.local_list_version = 0
        self.local_list: dict[str, dict[str, Any]] = {}
        self.charging_profiles: dict[int, dict[str, Any]] = {}
        self.security = SecurityState.for_charger(
            config, self.configuration.get_int("CertificateStoreMaxLength", 20)
        )
        self._starting = True  # StartupOfTheDevice at the next Accepted boot
        self._ids = itertools.count(1)
        self._boot_at: float | None = None
        self._heartbeat_at: float | None = None
        self._reset_requested = False
        self._reconnect_requested = False
        self._retry_at: float | None = None  # a failed transaction message waits until then
        self._now = 0.0  # the time of the event being handled (result callbacks use it)
        self.script = SessionScript(
            config,
            self.connectors,
            self.configuration,
            enqueue=self.enqueue,
            now=lambda: self._now,
            wall_clock=wall_clock,
        )

    # --- driver events -------------------------------------------------------------------

    def connected(self, now: float, *, server_certificate: bytes | None = None) -> list[str]:
        """The WebSocket is open (over TLS verified with ``server_certificate``, DER): send
        BootNotification."""
        self._now = now
        self.security.store.server_certificate = server_certificate
        self.registration = Registration.BOOTING
        self.outstanding = None
        self.wants_close = False
        self.close_reason = None
        self._reset_requested = False
        self._reconnect_requested = False
        self._boot_at = None
        self._heartbeat_at = None
        self._retry_at = None  # a new connection: the queue goes out after the boot
        out: list[str] = []
        self._send(self.boot_call(), now, out)
        return out

    def disconnected(self, now: float) -> None:
        """The WebSocket closed; an outstanding transaction message or security event is kept
        for the next one."""
        current = self.outstanding
        self.outstanding = None
        self.registration = Registration.OFFLINE
        self._boot_at = None
        self._heartbeat_at = None
        if current is not None:
            self.recorder.call_done(current.pending.action, now - current.sent_at, DISCONNECTED)
            if current.pending.action in KEPT_OFFLINE_ACTIONS:
                self.queue.appendleft(current.pending)
        if self._reconnect_requested:
            return  # closed to reconnect with new credentials: keep the queue (A01 step 3)
        # Only transaction messages (OCPP 1.6 §4.8/§4.10) and security events survive.
        kept = [p for p in self.queue if p.action in KEPT_OFFLINE_ACTIONS]
        self.queue = deque(kept)

    def received(self, text: str | bytes, now: float) -> list[str]:
        """Handle one frame from the CSMS; return the frames to send in order."""
        self._now = now
        try:
            frame = frames.decode(text)
        except FrameError as exc:
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
            if not self._retry(current.pending, TIMEOUT, now) and (
                current.pending.on_failure is not None
            ):
                current.pending.on_failure(TIMEOUT)
        if self._boot_at is not None and now >= self._boot_at and self.outstanding is None:
            self._boot_at = None
            self._send(self.boot_call(), now, out)
        if self.registration is Registration.ACCEPTED:
            if self._heartbeat_at is not None and now >= self._heartbeat_at:
                self._heartbeat_at = self._heartbeat_due(now)
                if not any(p.action == "Heartbeat" for p in self.queue):
                    self.queue.append(PendingCall("Heartbeat", call.Heartbeat))
            self.script.queue_due_samples(now)
        self._pump(now, out)
        return out

    def deadline(self) -> float | None:
        """When :meth:`timer` should next run (None: nothing scheduled)."""
        times = [
            t
            for t in (
                self.outstanding.deadline if self.outstanding else None,
                self._boot_at,
                self._retry_at if self.outstanding is None else None,
                self._heartbeat_at if self.registration is Registration.ACCEPTED else None,
            )
            if t is not None
        ]
        times.extend(self.script.sample_times())
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

    @property
    def holds_transaction_messages(self) -> bool:
        """A transaction message is in flight or queued (not yet answered)."""
        current = self.outstanding
        return (current is not None and current.pending.action in TRANSACTION_ACTIONS) or any(
            p.action in TRANSACTION_ACTIONS for p in self.queue
        )

    def step(self, now: float) -> list[str]:
        """The pacer's turn: send this charger's next scripted CALL, if it can send one now."""
        self._now = now
        if self.busy:
            return []
        pending = self.script.next_call()
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
        if self._reconnect_requested:  # once the CALL in flight is answered; the rest waits
            self.wants_close, self.close_reason = True, "new password"
            return
        if self._retry_at is not None:
            if now < self._retry_at:
                return  # TransactionMessageRetryInterval: the queue waits, in order
            self._retry_at = None
        if self.registration is Registration.ACCEPTED and self.queue:
            self._send(self.queue.popleft(), now, out)
            return
        if self._reset_requested and not self.queue:
            self.wants_close, self.close_reason = True, "reset"

    def _send(self, pending: PendingCall, now: float, out: list[str]) -> None:
        if pending.payload is not None:  # a transaction message sent again: the same one
            payload = pending.payload
            if self.ledger is not None and pending.entry is not None:
                self.ledger.resent(pending.entry)
        else:
            payload = frames.to_payload(pending.build())
            if self.validation.wanted(frames.CALL, pending.action):
                frames.check(frames.CALL, pending.action, payload)
            if pending.action in TRANSACTION_ACTIONS:
                pending.payload = payload
                if self.ledger is not None:
                    pending.entry = self.ledger.sent(self.id, pending.action, payload)
        unique_id = str(next(self._ids))
        self.outstanding = Outstanding(unique_id, pending, now, now + self.config.call_timeout_s)
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
            if not self._retry(current.pending, code, now) and (
                current.pending.on_failure is not None
            ):
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
        if self.ledger is not None and current.pending.entry is not None:
            self.ledger.answered(current.pending.entry, payload)
        if current.pending.on_result is not None:
            current.pending.on_result(payload)

    def _retry(self, pending: PendingCall, outcome: str, now: float) -> bool:
        """A transaction message that got a CALLERROR or no answer is tried again, first
        in the queue, after TransactionMessageRetryInterval times the tries so far, until
        TransactionMessageAttempts tries failed; then it is discarded (OCPP 1.6 §3.7.1,
        §9.1). False: not retried (not a transaction message, or its last attempt)."""
        if pending.action not in TRANSACTION_ACTIONS:
            return False
        pending.failures += 1
        if self.ledger is not None and pending.entry is not None:
            self.ledger.failed(pending.entry, outcome)
        if pending.failures >= max(self.configuration.get_int("TransactionMessageAttempts", 3), 1):
            if self.ledger is not None and pending.entry is not None:
                self.ledger.discarded(pending.entry)
            return False
        interval = self.configuration.get_int("TransactionMessageRetryInterval", 60)
        self.queue.appendleft(pending)
        self._retry_at = now + max(interval, 0) * pending.failures
        return True

    # --- CSMS-initiated CALLs -----------------------------------------------------------------

    def _answer(self, frame: list[Any], now: float, out: list[str]) -> None:
        out.append(
            dispatch.answer(self, frame, now, recorder=self.recorder, validation=self.validation)
        )

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
                    self.queue.append(self.script.status_call(connector_id))
            if self._starting and self.config.security_profile:
                self.security_event("StartupOfTheDevice")  # after the StatusNotifications
            self._starting = False
            return
        self.registration = Registration.PENDING if status == "Pending" else Registration.REJECTED
        wait = (
            interval if isinstance(interval, int) and interval > 0 else self.config.retry_interval_s
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

    # --- what the answer functions use (csms_calls.AnsweringCharger) ------------------------

    def request_reset(self, reset_type: str) -> None:
        """Stop every transaction, then ask the driver to reconnect (a reboot)."""
        self.script.reset(reset_type)
        self._reset_requested = True
        self._starting = True
        if self.config.security_profile:
            self.security_event("ResetOrReboot", f"{reset_type} reset by the CSMS")

    def request_reconnect(self) -> None:
        """Close after the answer (and the answer to a CALL in flight) and reconnect, keeping
        the queue (a new AuthorizationKey, whitepaper A01)."""
        self._reconnect_requested = True

    def security_event(self, kind: str, tech_info: str | None = None) -> None:
        """Log a security event; queue a SecurityEventNotification when it is one the CSMS is
        told of (:data:`~simulator.security.SENT_EVENTS`).  The driver calls it too, for a
        failed connection."""
        event = self.security.log.record(kind, frames.timestamp(self.wall_clock()), tech_info)
        if kind in SENT_EVENTS:
            security_calls.queue_security_event(self, event)

    # --- file transfers the driver runs (simulator/transfers.py) ----------------------------

    def take_transfers(self) -> list[Transfer]:
        """The file transfers to start (GetLog uploads, SignedUpdateFirmware downloads)."""
        return self.security.take_transfers() if self.security.transfers else []

    def transfer_started(self, transfer: Transfer, now: float) -> list[str]:
        """The driver started ``transfer``; the frames to send."""
        self._now = now
        security_calls.transfer_started(self, transfer)
        out: list[str] = []
        self._pump(now, out)
        return out

    def transfer_done(self, transfer: Transfer, outcome: TransferOutcome, now: float) -> list[str]:
        """``transfer`` ended with ``outcome``; the frames to send."""
        self._now = now
        self.recorder.transfer_done(transfer.kind, OK if outcome.ok else outcome.error)
        security_calls.transfer_done(self, transfer, outcome)
        out: list[str] = []
        self._pump(now, out)
        return out

    @property
    def authorization_key(self) -> str | None:
        """The HTTP Basic password it connects with (None: no Authorization header)."""
        return self.configuration.get("AuthorizationKey") or None

    @property
    def transactions(self) -> dict[int, int]:
        """Running transactions: connector id -> transaction id."""
        return {c.id: c.transaction_id for c in self.connectors if c.transaction_id is not None}


__all__ = ["Charger", "ChargerConfig", "Phase", "Registration", "Validation"]
