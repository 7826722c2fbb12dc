"""Which frames a fleet checks against the 1.6 schemas."""

from __future__ import annotations

import pytest

from simulator.frames import CALL, CALLRESULT
from simulator.validation import Validation


def test_modes() -> None:
    assert all(Validation("all").wanted(CALL, "Heartbeat") for _ in range(10))
    assert not Validation("off").wanted(CALL, "Heartbeat")
    first = Validation("first", first=2)
    assert [first.wanted(CALL, "Heartbeat") for _ in range(3)] == [True, True, False]
    assert first.wanted(CALLRESULT, "Heartbeat")  # counted per message type and action
    with pytest.raises(ValueError, match="all, first or off"):
        Validation("some")
