"""The gateway's backlog (gateway/backlog.py): calls count from sent to answered, a session's
end forgets its calls, a call never answered stops counting after FORGET_AFTER_S, and
handshakes waiting for admission count too."""

from __future__ import annotations

from gateway.backlog import FORGET_AFTER_S, Backlog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_calls_count_until_answered_or_their_session_ends() -> None:
    backlog = Backlog(Clock())
    backlog.call_sent("s1", "a")
    backlog.call_sent("s1", "b")
    backlog.call_sent("s2", "a")
    assert backlog.size() == 3
    backlog.call_answered("s1", "a")
    backlog.call_answered("s1", "a")  # a second reply (redelivery) changes nothing
    assert backlog.size() == 2
    backlog.session_ended("s1", ["b", "never-sent"])
    assert backlog.size() == 1
    backlog.admitting += 2
    assert backlog.size() == 3


def test_a_call_never_answered_is_forgotten_after_the_horizon() -> None:
    clock = Clock()
    backlog = Backlog(clock)
    backlog.call_sent("s1", "old")
    clock.now += 10
    backlog.call_sent("s2", "new")
    clock.now += 10
    backlog.call_sent("s1", "old")  # sent again (same id): counts from now, once
    assert backlog.size() == 2
    clock.now += FORGET_AFTER_S - 9
    assert backlog.size() == 1  # "new" is past the horizon; "old" was resent later
    clock.now += FORGET_AFTER_S
    assert backlog.size() == 0
