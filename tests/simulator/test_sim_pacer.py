"""The pacer's token bucket: round-robin turns, never more sends than the rate allows."""

from __future__ import annotations

from time import monotonic

from simulator.pacer import Pacer
from simulator.stats import Stats


async def test_turns_go_round_robin_and_declined_turns_send_nothing() -> None:
    offered: list[int] = []

    def decline(index: int, now: float) -> bool:
        offered.append(index)
        return False

    pacer = Pacer(200.0, Stats())
    start = monotonic()
    await pacer.run(3, decline, measure_from=start, end=start + 0.2)
    assert offered and offered == [n % 3 for n in range(len(offered))]
    assert pacer.sent == 0 and pacer.achieved_rate() == 0.0


async def test_sends_never_exceed_the_rate() -> None:
    stats = Stats()
    pacer = Pacer(100.0, stats)
    start = monotonic()
    await pacer.run(5, lambda index, now: True, measure_from=start, end=start + 0.3)
    assert pacer.sent >= 1 and stats.pacer_skips == 0  # every token was taken
    # At most the rate over the measured time plus the bucket's burst (about two ticks).
    assert pacer.sent <= pacer.rate * pacer.measured_s + 3
