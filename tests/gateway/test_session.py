"""One connection's protocol state, fed with events: no sockets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.codec import IncomingCall, IncomingError, IncomingResult
from gateway.session import Session
from services.envelope import CsmsCall
from services.errors import ProtocolError, SecurityError

AT = datetime(2026, 11, 23, tzinfo=UTC)


def command(n: int, action: str = "ClearCache", payload: dict | None = None) -> CsmsCall:
    return CsmsCall(command_id=f"c{n}", station="S", action=action, payload=payload or {},
                    timeout_s=30)


def test_duplicate_pending_id_is_a_protocol_error() -> None:
    session = Session("S")
    session.accept_call(IncomingCall("1", "Heartbeat", {}), 0.0)
    with pytest.raises(ProtocolError):
        session.accept_call(IncomingCall("1", "Heartbeat", {}), 0.0)
    assert session.complete_call("1", {"currentTime": "x"}) is not None
    session.accept_call(IncomingCall("1", "Heartbeat", {}), 0.0)  # free again


def test_rejected_boot_gates_everything_but_boot() -> None:
    session = Session("S")
    session.accept_call(IncomingCall("b", "BootNotification", {}), 0.0)
    session.complete_call("b", {"status": "Rejected"})
    with pytest.raises(SecurityError):
        session.accept_call(IncomingCall("h", "Heartbeat", {}), 0.0)
    session.accept_call(IncomingCall("b2", "BootNotification", {}), 0.0)
    session.complete_call("b2", {"status": "Accepted"})
    session.accept_call(IncomingCall("h", "Heartbeat", {}), 0.0)


def test_pending_allows_only_triggered_messages() -> None:
    session = Session("S")
    session.accept_call(IncomingCall("b", "BootNotification", {}), 0.0)
    session.complete_call("b", {"status": "Pending"})
    with pytest.raises(SecurityError):
        session.accept_call(IncomingCall("s", "StatusNotification", {}), 0.0)
    session.enqueue(command(1, "TriggerMessage", {"requestedMessage": "StatusNotification"}))
    unique_id, _ = session.next_call()  # type: ignore[misc]
    outcome = session.answer(IncomingResult(unique_id, {"status": "Accepted"}), AT)
    assert outcome is not None and outcome.status == "result"
    session.accept_call(IncomingCall("s", "StatusNotification", {}), 0.0)
    with pytest.raises(SecurityError):  # once only
        session.accept_call(IncomingCall("s2", "StatusNotification", {}), 0.0)


def test_one_outstanding_csms_call_in_fifo_order() -> None:
    session = Session("S")
    for n in range(3):
        session.enqueue(command(n))
    first = session.next_call()
    assert first is not None and first[1].command_id == "c0"
    assert session.next_call() is None  # c1 waits
    assert session.answer(IncomingResult("not-it", {}), AT) is None
    outcome = session.answer(IncomingResult(first[0], {}), AT)
    assert outcome is not None and outcome.command_id == "c0"
    second = session.next_call()
    assert second is not None and second[1].command_id == "c1"


def test_answers_errors_timeouts_and_close() -> None:
    session = Session("S")
    session.enqueue(command(1, "Reset", {"type": "Soft"}))
    session.enqueue(command(2))
    unique_id, _ = session.next_call()  # type: ignore[misc]
    bad = session.answer(IncomingResult(unique_id, {"status": "Whatever"}), AT)
    assert bad is not None and bad.status == "invalid"
    assert bad.error_code == "PropertyConstraintViolation"
    unique_id, _ = session.next_call()  # type: ignore[misc]
    assert session.time_out("other", AT) is None
    timed_out = session.time_out(unique_id, AT)
    assert timed_out is not None and timed_out.status == "timeout"
    session.enqueue(command(3))
    session.enqueue(command(4))
    unique_id, _ = session.next_call()  # type: ignore[misc]
    error = session.answer(IncomingError(unique_id, "NotSupported", "no", {}), AT)
    assert error is not None and (error.status, error.error_code) == ("callerror", "NotSupported")
    session.next_call()
    closed = session.close(AT)
    assert [o.command_id for o in closed] == ["c4"]
    assert {o.status for o in closed} == {"closed"}
    assert session.next_call() is None


@pytest.mark.parametrize("registration", ["Rejected", "Pending"])
def test_the_gate_holds_from_the_first_frame_of_a_connection(registration: str) -> None:
    session = Session("S", registration=registration)  # as admission said
    with pytest.raises(SecurityError):
        session.accept_call(IncomingCall("a", "Authorize", {"idTag": "T"}), 0.0)
    session.accept_call(IncomingCall("b", "BootNotification", {}), 0.0)


def test_an_extended_trigger_opens_the_gate_for_what_the_charger_then_sends() -> None:
    session = Session("S", registration="Pending")
    session.enqueue(command(1, "ExtendedTriggerMessage",
                            {"requestedMessage": "SignChargePointCertificate"}))
    unique_id, _ = session.next_call()  # type: ignore[misc]
    session.answer(IncomingResult(unique_id, {"status": "Accepted"}), AT)
    session.accept_call(IncomingCall("s", "SignCertificate", {"csr": "x"}), 0.0)
    with pytest.raises(SecurityError):
        session.accept_call(IncomingCall("s2", "SignCertificate", {"csr": "x"}), 0.0)
