"""The live progress line."""

from __future__ import annotations

import io

from simulator.progress import ProgressLine
from simulator.stats import Stats


def test_one_line_rewritten_in_place_then_ended() -> None:
    stats = Stats(expected_chargers=2, started_at=100.0)
    stats.connected()
    stats.boot_status("A", "Accepted", 100.5)
    stats.call_sent("Heartbeat")
    stats.call_done("Heartbeat", 0.004, "ok")
    stream = io.StringIO()
    line = ProgressLine(stream)
    line.print(stats, 101.0)
    line.print(stats, 102.0, final=True)
    first, second = stream.getvalue().split("\r\x1b[2K")[1:]
    assert first.startswith("[   1.0s] open 1/2 accepted 1 | sent 1")
    assert "p99 4.0 ms" in first and not first.endswith("\n")
    assert "(0/s)" in second and "p99 -" in second and second.endswith("\n")
