"""The pacer of profile ``realistic``: send turns at ``rate`` per second across a fleet.

A token bucket: every tick adds ``elapsed * rate`` tokens (capped at about two ticks' worth),
and each token is offered, round-robin, to the chargers in turn until one sends a CALL on it
(``turn(index, now)`` returns True); a charger that is busy (a CALL outstanding or queued,
not Accepted) or offline declines.  Tokens no charger took in a tick are counted in
``Stats.pacer_skips``: the offered load was not achieved.  Counting (:attr:`Pacer.sent`,
skips, :attr:`Pacer.measured_s`) starts at ``measure_from``, after the connect ramp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import monotonic as clock

from simulator.stats import Stats


class Pacer:
    """Hands out send turns at :attr:`rate` per second; see the module docstring."""

    def __init__(self, rate: float, stats: Stats) -> None:
        self.rate = rate  # read every tick: a benchmark may change it during a run
        self.sent = 0  # CALLs sent on the pacer's turns since measuring began
        self.measured_s = 0.0  # how long the pacer measured (0 until it ends)
        self._stats = stats

    def achieved_rate(self) -> float:
        """CALLs per second sent on the pacer's turns while it measured (0 before the end)."""
        return self.sent / self.measured_s if self.measured_s > 0 else 0.0

    async def run(
        self, count: int, turn: Callable[[int, float], bool], *, measure_from: float, end: float
    ) -> None:
        """Offer turns to chargers ``0 .. count-1`` until ``end`` (or until cancelled)."""
        if count == 0:
            return
        stats = self._stats
        tokens = 0.0
        cursor = 0
        last = clock()
        measuring = False
        try:
            while True:
                rate = max(self.rate, 1e-3)
                tick = min(0.02, max(0.002, 1.0 / rate))
                await asyncio.sleep(tick)
                now = clock()
                if now >= end:
                    return
                if not measuring and now >= measure_from:
                    measuring = True
                    measure_from = now
                    self.sent = 0
                    stats.pacer_skips = 0
                tokens = min(tokens + (now - last) * rate, max(2.0, rate * tick * 2))
                last = now
                scans = 0
                scan_limit = min(count, int(tokens) * 4 + 64)
                while tokens >= 1.0 and scans < scan_limit:
                    index = cursor
                    cursor = cursor + 1 if cursor + 1 < count else 0
                    scans += 1
                    if turn(index, now):
                        tokens -= 1.0
                        self.sent += 1
                if tokens >= 1.0:
                    skipped = int(tokens)
                    stats.pacer_skips += skipped
                    tokens -= skipped
        finally:
            self.measured_s = max(clock() - measure_from, 0.0) if measuring else 0.0


__all__ = ["Pacer"]
