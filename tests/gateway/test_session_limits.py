"""One outstanding charger CALL, the rate per station, answers to nothing: the session fed
with events and a clock of the test's own (no sockets, no sleeps)."""

from __future__ import annotations

import pytest

from gateway.codec import IncomingCall
from gateway.session import UNMATCHED_LOG_INTERVAL_S, CallRate, Session
from services.errors import ProtocolError


def heartbeat(unique_id: str) -> IncomingCall:
    return IncomingCall(unique_id, "Heartbeat", {})


def test_a_second_call_waits_for_the_reply_to_the_first() -> None:
    session = Session("S")
    assert session.receive_call(heartbeat("1"))
    session.accept_call(heartbeat("1"), 0.0)
    assert session.awaiting == "1"
    assert not session.receive_call(heartbeat("2"))  # held, not refused
    assert session.complete_call("1", {"currentTime": "x"}) is not None
    assert session.receive_call(heartbeat("2"))
    session.accept_call(heartbeat("2"), 0.0)
    assert session.awaiting == "2"


def test_the_id_of_the_call_in_progress_is_a_protocol_error_at_once() -> None:
    session = Session("S")
    session.accept_call(heartbeat("1"), 0.0)
    with pytest.raises(ProtocolError):
        session.receive_call(heartbeat("1"))


def test_an_overdue_reply_lets_the_next_call_go_and_is_still_delivered() -> None:
    session = Session("S")
    session.accept_call(heartbeat("1"), 0.0)
    assert not session.receive_call(heartbeat("2"))
    assert session.stop_waiting() == "1"
    assert session.receive_call(heartbeat("2"))
    session.accept_call(heartbeat("2"), 0.0)
    late = session.complete_call("1", {"currentTime": "x"})  # the late reply
    assert late is not None and late.action == "Heartbeat"
    assert session.awaiting == "2"  # still waiting for the second one


def test_a_call_answered_by_the_gateway_is_not_outstanding() -> None:
    session = Session("S")
    session.accept_call(heartbeat("1"), 0.0)
    session.complete_call("1", None)  # answered at the edge, or refused NotSupported
    assert session.receive_call(heartbeat("2"))


def test_the_boot_gate_is_judged_after_the_wait() -> None:
    session = Session("S", registration="Pending")
    boot = IncomingCall("b", "BootNotification", {})
    session.accept_call(boot, 0.0)
    status = IncomingCall("s", "StatusNotification", {})
    assert not session.receive_call(status)
    session.complete_call("b", {"status": "Accepted"})
    assert session.receive_call(status)
    session.accept_call(status, 0.0)  # allowed: the boot it waited for was Accepted


def test_the_bucket_lets_a_burst_through_then_spaces_calls_by_the_rate() -> None:
    rate = CallRate(per_s=10.0, burst=3)
    assert [rate.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rate.take(100.0) == pytest.approx(0.1)  # the fourth at once: a tenth later
    # The caller waited that tenth: the next one waits a tenth more, no debt grows.
    assert rate.take(100.1) == pytest.approx(0.1)
    assert rate.take(100.2 + 1.0) == 0.0  # after a quiet second the bucket refilled
    assert [rate.take(101.2) for _ in range(2)] == [0.0, 0.0]
    assert rate.take(101.2) > 0


def test_the_bucket_never_holds_more_than_the_burst() -> None:
    rate = CallRate(per_s=1.0, burst=2)
    rate.take(0.0)
    assert rate.take(10_000.0) == 0.0
    assert rate.take(10_000.0) == 0.0
    assert rate.take(10_000.0) == pytest.approx(1.0)


def test_answers_to_nothing_are_logged_once_a_minute_with_their_count() -> None:
    session = Session("S")
    assert session.unmatched_answer(1000.0) == 1  # the first at once
    assert [session.unmatched_answer(1000.0 + n) for n in range(1, 30)] == [None] * 29
    assert session.unmatched_answer(1000.0 + UNMATCHED_LOG_INTERVAL_S) == 30
    assert session.unmatched_answer(1000.0 + UNMATCHED_LOG_INTERVAL_S + 1) is None
